package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"aileron.dev/aileron/manifest"
	"aileron.dev/aileron/supervisor"
	"aileron.dev/aileron/supervisor/serve/client"
)

// API error codes (client.Error.Code) other than a failed step's own.
const (
	codeUnauthenticated  = "unauthenticated"
	codeBadRequest       = "bad_request"
	codeUnsupportedMedia = "unsupported_media_type"
	codeTooLarge         = "request_too_large"
	codeNotFound         = "not_found"
	codeMethod           = "method_not_allowed"
	codeActionNotFound   = "action_not_found"
	codeCannotRun        = "cannot_run"
	codeQuota            = "quota_exceeded"
	codeOverloaded       = "overloaded"
	codeShuttingDown     = "shutting_down"
	codeIsolation        = "isolation_unavailable"
	codeCancelled        = "cancelled"
	codeRunFailed        = "run_failed"
)

// listenerKey is the context key of the listener's name.
type listenerKey struct{}

func withListener(h http.Handler, name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), listenerKey{}, name)))
	})
}

// apiHandler serves the API listeners.
func (s *Server) apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(client.PathRuns, s.method(http.MethodPost, s.handleRun))
	mux.HandleFunc(client.PathActions, s.method(http.MethodGet, s.handleActions))
	mux.HandleFunc(client.PathHealth, s.method(http.MethodGet, s.handleHealth))
	mux.HandleFunc(client.PathReady, s.method(http.MethodGet, s.handleReady))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, &client.Error{Code: codeNotFound, Message: fmt.Sprintf("no such endpoint %s: the API is POST %s, GET %s, GET %s, GET %s", r.URL.Path, client.PathRuns, client.PathActions, client.PathHealth, client.PathReady)})
	})
	return s.accessLog(mux)
}

func (s *Server) method(m string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != m {
			w.Header().Set("Allow", m)
			writeError(w, http.StatusMethodNotAllowed, &client.Error{Code: codeMethod, Message: fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, m)})
			return
		}
		h(w, r)
	}
}

// statusWriter remembers the status and the log fields of one request.
type statusWriter struct {
	http.ResponseWriter
	status int
	tenant string
	runID  string
	code   string
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (s *Server) accessLog(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = 499 // the client went away before an answer
		}
		args := []any{logMethod, r.Method, logPath, r.URL.Path, logStatus, sw.status, logDuration, float64(time.Since(start).Microseconds()) / 1000}
		if sw.tenant != "" {
			args = append(args, logTenant, sw.tenant)
		}
		if sw.runID != "" {
			args = append(args, logRunID, sw.runID)
		}
		if sw.code != "" {
			args = append(args, logCode, sw.code)
		}
		// Shed requests are counted in the metrics; logging each one would
		// let a flood cost the server its log too.
		if sw.status == http.StatusTooManyRequests || sw.code == codeOverloaded {
			s.log.Debug("request", args...)
			return
		}
		s.log.Info("request", args...)
	})
}

// note records log fields on the access log's writer.
func note(w http.ResponseWriter, tenant, runID, code string) {
	if sw, ok := w.(*statusWriter); ok {
		if tenant != "" {
			sw.tenant = tenant
		}
		if runID != "" {
			sw.runID = runID
		}
		if code != "" {
			sw.code = code
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"code":"internal","message":"cannot encode the answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, e *client.Error) {
	note(w, "", "", e.Code)
	writeJSON(w, status, e)
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// authenticate maps the request to its tenant, or answers 401 and returns
// nil.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) *tenant {
	id := identity{authorization: r.Header.Get("Authorization")}
	if uid, ok := r.Context().Value(peerKey{}).(uint32); ok {
		id.uid, id.hasUID = uid, true
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		id.cert = r.TLS.PeerCertificates[0]
	}
	name, err := s.set.Load().auth.authenticate(id)
	var t *tenant
	if err == nil {
		s.mu.Lock()
		t = s.tenants[name]
		s.mu.Unlock()
		if t == nil { // removed by a reload in between
			err = ErrUnauthenticated
		}
	}
	if err != nil {
		listener, _ := r.Context().Value(listenerKey{}).(string)
		s.met.authFailures.WithLabelValues(listener).Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="aileron"`)
		writeError(w, http.StatusUnauthorized, &client.Error{Code: codeUnauthenticated, Message: err.Error()})
		return nil
	}
	note(w, t.name, "", "")
	return t
}

func (s *Server) handleActions(w http.ResponseWriter, r *http.Request) {
	t := s.authenticate(w, r)
	if t == nil {
		return
	}
	g, done, ok := t.acquire(s.closeGen)
	if !ok {
		writeError(w, http.StatusUnauthorized, &client.Error{Code: codeUnauthenticated, Message: ErrUnauthenticated.Error()})
		return
	}
	defer done()
	out := client.ActionList{Actions: []client.ActionInfo{}}
	for _, n := range g.sup.ActionNames() {
		if !manifest.IsActionName(n) {
			continue
		}
		a, err := g.sup.LoadAction(n)
		if err != nil {
			continue
		}
		out.Actions = append(out.Actions, client.ActionInfo{Name: a.Name, Version: a.Version, Description: a.Description})
	}
	writeJSON(w, http.StatusOK, out)
}

// decodeRun reads and checks a run request's body.
func (s *Server) decodeRun(w http.ResponseWriter, r *http.Request) (*client.RunRequest, *client.Error, int) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, &client.Error{Code: codeUnsupportedMedia, Message: "send the request body as Content-Type: application/json"}, http.StatusUnsupportedMediaType
	}
	max := s.set.Load().maxBody
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, max))
	dec.DisallowUnknownFields()
	var req client.RunRequest
	err = dec.Decode(&req)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("data after the JSON object")
		}
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, &client.Error{Code: codeTooLarge, Message: fmt.Sprintf("request body larger than %d bytes", max)}, http.StatusRequestEntityTooLarge
	case err != nil:
		return nil, &client.Error{Code: codeBadRequest, Message: "invalid request body: " + err.Error()}, http.StatusBadRequest
	case req.Action == "":
		return nil, &client.Error{Code: codeBadRequest, Message: `invalid request body: "action" is required: the name of an installed action`}, http.StatusBadRequest
	case !manifest.IsActionName(req.Action):
		return nil, &client.Error{Code: codeBadRequest, Message: fmt.Sprintf("invalid request body: action %q is not an action name (a-z, 0-9 and '-', starting with a letter)", req.Action)}, http.StatusBadRequest
	}
	return &req, nil, 0
}

func (s *Server) handleRun(w http.ResponseWriter, r *http.Request) {
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	t := s.authenticate(w, r)
	if t == nil {
		return
	}
	if s.draining.Load() {
		s.met.admissionRejections.WithLabelValues(codeShuttingDown).Inc()
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusServiceUnavailable, &client.Error{Code: codeShuttingDown, Message: "the server is shutting down; retry against another instance"})
		return
	}
	req, e, status := s.decodeRun(w, r)
	if e != nil {
		writeError(w, status, e)
		return
	}

	// Quotas, then admission: a tenant over its own quota never takes a
	// server-wide slot, and a request the server sheds spends no rate
	// token of its tenant.
	release, qerr := t.quota.admit(t.name)
	if qerr != nil {
		s.refuseQuota(w, t, qerr)
		return
	}
	defer release()
	if !s.adm.enter() {
		s.met.admissionRejections.WithLabelValues(codeOverloaded).Inc()
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, &client.Error{Code: codeOverloaded, Message: fmt.Sprintf("the server is running its maximum of %d runs; retry shortly", s.adm.max)})
		return
	}
	defer s.adm.leave()
	if qerr := t.quota.take(t.name, time.Now()); qerr != nil {
		s.refuseQuota(w, t, qerr)
		return
	}

	g, done, ok := t.acquire(s.closeGen)
	if !ok { // removed by a reload since it authenticated
		writeError(w, http.StatusUnauthorized, &client.Error{Code: codeUnauthenticated, Message: ErrUnauthenticated.Error()})
		return
	}
	defer done()
	// Security: the action is looked up in this tenant's home only, so
	// another tenant's action is exactly as absent as a nonexistent one.
	a, err := g.sup.LoadAction(req.Action)
	if errors.Is(err, supervisor.ErrActionNotFound) {
		s.met.runs.WithLabelValues(t.name, outcomeRefused).Inc()
		writeError(w, http.StatusNotFound, &client.Error{Code: codeActionNotFound, Message: fmt.Sprintf("action %q is not installed", req.Action)})
		return
	}
	if err != nil {
		s.met.runs.WithLabelValues(t.name, outcomeRefused).Inc()
		writeError(w, http.StatusInternalServerError, &client.Error{Code: codeCannotRun, Message: fmt.Sprintf("action %q cannot be read: %v", req.Action, err)})
		return
	}
	plan, err := g.sup.Prepare(a, req.Inputs)
	if err != nil {
		s.met.runs.WithLabelValues(t.name, outcomeRefused).Inc()
		writeError(w, http.StatusBadRequest, &client.Error{Code: codeCannotRun, Message: err.Error()})
		return
	}

	// The run ends when the caller goes away or when the drain deadline
	// passes, whichever comes first; either kills its workers.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.runCtx, cancel)
	defer stop()
	gauge := s.met.inFlight.WithLabelValues(t.name)
	gauge.Inc()
	start := time.Now()
	res, err := g.sup.RunPlan(ctx, plan)
	gauge.Dec()
	s.met.duration.WithLabelValues(t.name).Observe(time.Since(start).Seconds())
	if err == nil {
		s.met.runs.WithLabelValues(t.name, outcomeOK).Inc()
		note(w, "", res.RunID, "")
		writeJSON(w, http.StatusOK, res)
		return
	}
	var se *supervisor.StepError
	switch {
	case errors.As(err, &se):
		s.met.runs.WithLabelValues(t.name, outcomeStepFailed).Inc()
		note(w, "", se.RunID, "")
		writeError(w, http.StatusUnprocessableEntity, &client.Error{RunID: se.RunID, Code: se.Code, Message: se.Message, Step: se.Step, Connector: se.Connector, Intent: se.Intent, Log: se.Log})
	case errors.Is(err, supervisor.ErrCancelled) || ctx.Err() != nil:
		s.met.runs.WithLabelValues(t.name, outcomeCancelled).Inc()
		if s.runCtx.Err() != nil {
			writeError(w, http.StatusServiceUnavailable, &client.Error{Code: codeShuttingDown, Message: "the server is shutting down: the run was cancelled and its workers killed"})
			return
		}
		// The caller went away: nobody reads this answer.
		writeError(w, 499, &client.Error{Code: codeCancelled, Message: "run cancelled"})
	case errors.Is(err, supervisor.ErrIsolation):
		s.met.runs.WithLabelValues(t.name, outcomeIsolation).Inc()
		writeError(w, http.StatusServiceUnavailable, &client.Error{Code: codeIsolation, Message: err.Error()})
	default:
		s.met.runs.WithLabelValues(t.name, outcomeError).Inc()
		s.log.Warn("run failed", logTenant, t.name, logAction, req.Action, logError, err)
		writeError(w, http.StatusInternalServerError, &client.Error{Code: codeRunFailed, Message: err.Error()})
	}
}

func (s *Server) refuseQuota(w http.ResponseWriter, t *tenant, e *quotaError) {
	s.met.quotaRejections.WithLabelValues(t.name, e.quota).Inc()
	w.Header().Set("Retry-After", strconv.Itoa(int(max(1, roundUp(e.retryAfter)/time.Second))))
	writeError(w, http.StatusTooManyRequests, &client.Error{Code: codeQuota, Message: e.msg})
}
