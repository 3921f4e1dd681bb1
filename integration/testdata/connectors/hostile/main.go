// Command hostile is a test connector that misbehaves on purpose, one intent
// per attack. The integration tests run it through the real supervisor,
// worker and broker and check that each attack fails safely.
package main

import (
	"errors"
	"os"
	"strings"
	"time"

	"aileron.dev/aileron/sdk"
	"aileron.dev/aileron/sdk/abi"
)

type none struct{}

type urlInput struct {
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
}

// reqInput is one request as the action spells it.
type reqInput struct {
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

func (r reqInput) request() sdk.Request {
	return sdk.Request{Method: r.Method, URL: r.URL, Headers: r.Headers, Body: []byte(r.Body)}
}

func main() {
	// request sends one request, placeholders and all, and returns exactly
	// what the connector sent and what it got back.
	sdk.Handle("request", func(c *sdk.Call, in reqInput) (any, error) {
		resp, err := c.HTTP.Do(in.request())
		if err != nil {
			return nil, err
		}
		return map[string]any{"sent_headers": in.Headers, "status": resp.Status, "body": string(resp.Body), "response_headers": resp.Headers}, nil
	})
	// try sends each request in turn and reports every outcome, refusals
	// included, without failing.
	sdk.Handle("try", func(c *sdk.Call, in struct {
		Requests []reqInput `json:"requests"`
	}) (any, error) {
		out := make([]map[string]any, 0, len(in.Requests))
		for _, r := range in.Requests {
			resp, err := c.HTTP.Do(r.request())
			var ae *abi.Error
			switch {
			case errors.As(err, &ae):
				out = append(out, map[string]any{"url": r.URL, "code": ae.Code, "message": ae.Message})
			case err != nil:
				out = append(out, map[string]any{"url": r.URL, "code": "other", "message": err.Error()})
			default:
				out = append(out, map[string]any{"url": r.URL, "status": resp.Status, "location": resp.Header("Location"), "bytes": len(resp.Body)})
			}
		}
		return out, nil
	})
	// flood sends the same request n times and fails on the first refusal.
	sdk.Handle("flood", func(c *sdk.Call, in struct {
		URL string `json:"url"`
		N   int    `json:"n"`
	}) (any, error) {
		for i := 0; i < in.N; i++ {
			if _, err := c.HTTP.Get(in.URL, nil); err != nil {
				return nil, err
			}
		}
		return in.N, nil
	})

	// inspect sends a request with the credential placeholder to an echo
	// service and returns what the connector sent and what it got back.
	sdk.Handle("inspect", func(c *sdk.Call, in urlInput) (any, error) {
		h := map[string]string{"Authorization": sdk.Bearer(), "X-Api-Key": sdk.Credential()}
		resp, err := c.HTTP.Get(in.URL, h)
		if err != nil {
			return nil, err
		}
		return map[string]any{"sent_headers": h, "status": resp.Status, "body": string(resp.Body), "response_headers": resp.Headers}, nil
	})
	// fetch sends one request and reports the outcome, error included.
	sdk.Handle("fetch", func(c *sdk.Call, in urlInput) (any, error) {
		resp, err := c.HTTP.Get(in.URL, in.Headers)
		if err != nil {
			return nil, err
		}
		return map[string]any{"status": resp.Status, "location": resp.Header("Location"), "bytes": len(resp.Body)}, nil
	})
	// big returns a string of n bytes; echo returns its input. Together
	// they move documents near the ABI's size limits through a run.
	sdk.Handle("big", func(c *sdk.Call, in struct {
		N int `json:"n"`
	}) (any, error) {
		return strings.Repeat("b", in.N), nil
	})
	sdk.Handle("echo", func(c *sdk.Call, in struct {
		S string `json:"s"`
	}) (any, error) {
		return in.S, nil
	})
	sdk.Handle("env", func(c *sdk.Call, _ none) (any, error) {
		return map[string]any{"environ": os.Environ(), "args": os.Args}, nil
	})
	sdk.Handle("spin", func(c *sdk.Call, _ none) (any, error) {
		n := 0
		for {
			n++
		}
	})
	sdk.Handle("sleep", func(c *sdk.Call, _ none) (any, error) {
		time.Sleep(time.Hour)
		return nil, nil
	})
	sdk.Handle("alloc_bomb", func(c *sdk.Call, _ none) (any, error) {
		var keep [][]byte
		for {
			keep = append(keep, make([]byte, 1<<20))
		}
	})
	sdk.Handle("garbage_stdout", func(c *sdk.Call, _ none) (any, error) {
		os.Stdout.WriteString("this is not a result document")
		os.Exit(0)
		return nil, nil
	})
	sdk.Handle("exit_code", func(c *sdk.Call, _ none) (any, error) {
		os.Stderr.WriteString("giving up\n")
		os.Exit(3)
		return nil, nil
	})
	sdk.Handle("flood_log", func(c *sdk.Call, _ none) (any, error) {
		line := strings.Repeat("x", 1000) + "\n"
		for i := 0; i < 10000; i++ {
			os.Stderr.WriteString(line)
		}
		return "done", nil
	})
	sdk.Main()
}
