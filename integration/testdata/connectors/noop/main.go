// Command noop is the benchmark connector: it does nothing but answer, so a
// run measures the cost of the runtime itself.
package main

import "aileron.dev/aileron/sdk"

type none struct{}

func main() {
	sdk.Handle("noop", func(c *sdk.Call, _ none) (any, error) {
		return map[string]bool{"ok": true}, nil
	})
	sdk.Main()
}
