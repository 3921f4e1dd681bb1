// Package notes is a small fake notes service: the example connector of the
// walking skeleton talks to it. It checks the API key on every request, so a
// request that reaches it without the broker's credential fails, and it
// records what it received so tests can assert on it.
package notes

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Note is one stored note.
type Note struct {
	ID      string `json:"id"`
	Title   string `json:"title"`
	Body    string `json:"body"`
	Created string `json:"created"`
}

// Seen is one request as the service received it.
type Seen struct {
	Method string
	Path   string
	Header http.Header
	Body   string
}

// Service is the fake notes service. Create it with New.
type Service struct {
	apiKey string

	mu    sync.Mutex
	notes []Note
	seen  []Seen
}

// New returns a service that accepts apiKey in the X-Api-Key header.
func New(apiKey string) *Service { return &Service{apiKey: apiKey} }

// Seen returns the requests received so far.
func (s *Service) Seen() []Seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Seen(nil), s.seen...)
}

// ServeHTTP implements http.Handler.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body strings.Builder
	if r.Body != nil {
		dec := http.MaxBytesReader(w, r.Body, 1<<20)
		buf := make([]byte, 4096)
		for {
			n, err := dec.Read(buf)
			body.Write(buf[:n])
			if err != nil {
				break
			}
		}
	}
	s.mu.Lock()
	s.seen = append(s.seen, Seen{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body.String()})
	s.mu.Unlock()

	if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-Api-Key")), []byte(s.apiKey)) != 1 {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid or missing X-Api-Key"})
		return
	}
	switch {
	case r.URL.Path == "/v1/notes" && r.Method == http.MethodPost:
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{"error": "Content-Type must be application/json"})
			return
		}
		var in struct {
			Title string `json:"title"`
			Body  string `json:"body"`
		}
		if err := json.Unmarshal([]byte(body.String()), &in); err != nil || in.Title == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be JSON with a non-empty title"})
			return
		}
		s.mu.Lock()
		n := Note{ID: fmt.Sprintf("note_%d", len(s.notes)+1), Title: in.Title, Body: in.Body, Created: time.Now().UTC().Format(time.RFC3339)}
		s.notes = append(s.notes, n)
		s.mu.Unlock()
		writeJSON(w, http.StatusCreated, n)
	case r.URL.Path == "/v1/notes" && r.Method == http.MethodGet:
		s.mu.Lock()
		list := append([]Note{}, s.notes...)
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"notes": list, "count": len(list)})
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such endpoint"})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
