// Command fileread is a test connector that tries to read a host file. Its
// module imports WASI filesystem functions that no capability grants, so the
// installer refuses it and, if the install check were bypassed, the worker
// refuses to instantiate it.
package main

import (
	"os"

	"aileron.dev/aileron/sdk"
)

type none struct{}

func main() {
	sdk.Handle("read_file", func(c *sdk.Call, _ none) (any, error) {
		b, err := os.ReadFile("/etc/passwd")
		if err != nil {
			return nil, sdk.Errorf("read_failed", "%v", err)
		}
		return string(b), nil
	})
	sdk.Main()
}
