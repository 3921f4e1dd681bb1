// Command notes is the example connector of the walking skeleton: it talks to
// the notes service in examples/services/notes with an API key that only the
// broker ever holds.
package main

import (
	"aileron.dev/aileron/sdk"
)

type createInput struct {
	BaseURL string `json:"base_url"`
	Title   string `json:"title"`
	Body    string `json:"body"`
}

func main() {
	sdk.Handle("create_note", func(c *sdk.Call, in createInput) (any, error) {
		resp, err := c.HTTP.PostJSON(in.BaseURL+"/v1/notes", map[string]string{"X-Api-Key": sdk.Credential()}, map[string]string{"title": in.Title, "body": in.Body})
		if err != nil {
			return nil, err
		}
		if resp.Status != 201 {
			return nil, sdk.Errorf("service_error", "notes service answered %d: %s", resp.Status, resp.Body)
		}
		c.Log.Info("note created")
		return resp.JSON()
	})
	sdk.Main()
}
