// Command noop is the benchmark connector: noop does nothing but answer, so
// a run measures the cost of the runtime itself; spin never returns, to
// measure how soon a deadline stops it.
package main

import "aileron.dev/aileron/sdk"

type none struct{}

func main() {
	sdk.Handle("noop", func(c *sdk.Call, _ none) (any, error) {
		return map[string]bool{"ok": true}, nil
	})
	sdk.Handle("spin", func(c *sdk.Call, _ none) (any, error) {
		for {
		}
	})
	sdk.Main()
}
