package redact_test

import (
	"encoding/base64"
	"fmt"

	"aileron.dev/aileron/broker/redact"
)

func ExampleRedactor_Bytes() {
	tok := "xoxb-123-456-abcdef"
	r, err := redact.New([][]byte{[]byte("Bearer " + tok), []byte(tok)})
	if err != nil {
		panic(err)
	}
	echo := `{"headers":{"Authorization":"Bearer ` + tok + `"},"b64":"` +
		base64.StdEncoding.EncodeToString([]byte("token="+tok)) + `"}`
	out, n := r.Bytes([]byte(echo))
	fmt.Println(n, string(out))
	// Output:
	// 2 {"headers":{"Authorization":"[REDACTED]"},"b64":"dG9rZW49[REDACTED]"}
}
