// Command notes is the example connector of the walking skeleton. It talks to
// the notes service (examples/services/notes) with an API key it never sees:
// it writes the credential placeholder into the X-Api-Key header and the
// broker puts the key there, host-side.
package main

import (
	"aileron.dev/aileron/sdk"
)

const api = "https://notes.example.com/v1/notes"

type createInput struct {
	Title string `json:"title"`
	Body  string `json:"body"`
}

type listInput struct{}

func main() {
	sdk.Handle("create_note", func(c *sdk.Call, in createInput) (any, error) {
		if in.Title == "" {
			return nil, sdk.Errorf("invalid_input", "title is required")
		}
		resp, err := c.HTTP.PostJSON(api, map[string]string{"X-Api-Key": sdk.Credential()}, in)
		if err != nil {
			return nil, err
		}
		if resp.Status != 201 {
			return nil, sdk.Errorf("service_error", "notes service answered %d: %s", resp.Status, resp.Body)
		}
		c.Log.Info("note created")
		return resp.JSON()
	})
	sdk.Handle("list_notes", func(c *sdk.Call, _ listInput) (any, error) {
		resp, err := c.HTTP.Get(api, map[string]string{"X-Api-Key": sdk.Credential()})
		if err != nil {
			return nil, err
		}
		if resp.Status != 200 {
			return nil, sdk.Errorf("service_error", "notes service answered %d: %s", resp.Status, resp.Body)
		}
		return resp.JSON()
	})
	sdk.Main()
}
