// Command demo runs Aileron end to end on a built-in example, with the real
// binaries: the daily-standup action, which lists a team's open issues in
// Linear and posts them to Slack, one sandboxed worker per connector. It
// packs the two example connectors, starts fake Linear and Slack services
// on loopback (HTTPS, with a throw-away CA, behind their real host names),
// installs the connectors, stores a Linear API key and a Slack OAuth token
// in the vault, adds the action, runs it and prints the result, then shows
// what the services received.
//
//	go run ./examples/demo -bin bin
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"aileron.dev/aileron/examples/kit"
	"aileron.dev/aileron/examples/services/linear"
	"aileron.dev/aileron/examples/services/slack"
	"aileron.dev/aileron/examples/services/testca"
	"aileron.dev/aileron/manifest"
)

// Demo credentials: the fake services accept them, the vault stores them,
// and the connectors never see them.
const (
	linearKey  = "lin_api_demo7f3a9c0000000000000000000000"
	slackToken = "xoxb-demo-1234-5678-8c2e4f"
)

func main() {
	bin := flag.String("bin", "bin", "directory holding aileron and aileron-worker")
	home := flag.String("home", ".aileron-demo", "AILERON_HOME for the demo (recreated)")
	flag.Parse()
	if err := demo(*bin, *home); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func demo(bin, home string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, _ = filepath.Abs(bin)
	home, _ = filepath.Abs(home)
	if err := os.RemoveAll(home); err != nil {
		return err
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	build := filepath.Join(home, "build")

	step("pack the Linear and Slack connectors (GOOS=wasip1 go build, then fill in provenance_hash)")
	var packed []*manifest.Manifest
	for _, name := range []string{"linear", "slack"} {
		m, err := kit.PackConnector(ctx, "examples/connectors/"+name, filepath.Join(build, name))
		if err != nil {
			return err
		}
		fmt.Printf("    %s@%s %s\n", m.Connector.Name, m.Connector.Version, m.Connector.ProvenanceHash)
		packed = append(packed, m)
	}
	action := filepath.Join(build, "daily-standup.toml")
	if err := kit.PinAction(filepath.Join(kit.RepoRoot(), "examples/actions/daily-standup.toml"), action, packed...); err != nil {
		return err
	}

	step("start fake Linear and Slack services on loopback (HTTPS, certificates for their real names)")
	lin := linear.New()
	lin.AddKey(linearKey, "read")
	lin.AddIssue("ENG", "Fix the login redirect loop", "In Progress", "ada@example.com", 1)
	lin.AddIssue("ENG", "Write the connector guide", "In Review", "grace@example.com", 3)
	lin.AddIssue("ENG", "Upgrade wasmtime", "Todo", "", 4)
	lin.AddIssue("ENG", "Ship v0.1", "Done", "ada@example.com", 2)
	slk := slack.New()
	slk.AddToken(slackToken, "chat:write", "channels:read")
	ca, err := testca.New()
	if err != nil {
		return err
	}
	routes := map[string]string{}
	for _, svc := range []struct {
		host string
		h    http.Handler
	}{{"api.linear.app", lin}, {"slack.com", slk}} {
		addr, stop, err := serve(ca, svc.host, svc.h)
		if err != nil {
			return err
		}
		defer stop()
		routes[svc.host+":443"] = addr
		fmt.Printf("    %s:443 -> %s\n", svc.host, addr)
	}

	caPath := filepath.Join(home, "demo-ca.pem")
	if err := os.WriteFile(caPath, ca.PEM, 0o600); err != nil {
		return err
	}
	config := fmt.Sprintf(`# Demo only: the fake services run on loopback behind real-looking names.
[broker]
unsafe_allow_loopback = true
extra_root_cas = [%q]
[broker.routes]
"api.linear.app:443" = %q
"slack.com:443" = %q
`, caPath, routes["api.linear.app:443"], routes["slack.com:443"])
	if err := os.WriteFile(filepath.Join(home, "config.toml"), []byte(config), 0o600); err != nil {
		return err
	}

	aileron := func(stdin string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "aileron"), args...)
		cmd.Env = append(os.Environ(), "AILERON_HOME="+home)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		fmt.Printf("    $ aileron %s\n", strings.Join(args, " "))
		err := cmd.Run()
		if errb.Len() > 0 {
			fmt.Print(indent(errb.String()))
		}
		if err != nil {
			return out.String(), fmt.Errorf("aileron %s: %w", args[0], err)
		}
		return out.String(), nil
	}

	step("install the connectors (each shows what it may do; --yes consents)")
	for _, name := range []string{"linear", "slack"} {
		out, err := aileron("", "connector", "install", "--yes", filepath.Join(build, name))
		if err != nil {
			return err
		}
		fmt.Print(indent(out))
	}

	step("store the credentials in the vault, each bound to its connector (read from stdin)")
	out, err := aileron(linearKey+"\n", "vault", "set", "linear-key", "--kind", "api_key", "--scope", "read",
		"--connector", "github://aileron-examples/linear")
	if err != nil {
		return err
	}
	fmt.Print(indent(out))
	token, _ := json.Marshal(map[string]string{"access_token": slackToken, "expiry": time.Now().Add(12 * time.Hour).UTC().Format(time.RFC3339)})
	if out, err = aileron(string(token), "vault", "set", "slack-bot", "--kind", "oauth2", "--scope", "chat:write",
		"--scope", "channels:read", "--connector", "github://aileron-examples/slack"); err != nil {
		return err
	}
	fmt.Print(indent(out))

	step("add the daily-standup action (two connectors, the second step uses the first's output)")
	if out, err = aileron("", "action", "add", action); err != nil {
		return err
	}
	fmt.Print(indent(out))

	step("run it: supervisor -> broker + one sandboxed worker per connector -> fake services")
	start := time.Now()
	if out, err = aileron("", "run", "daily-standup", "--input", "team=ENG"); err != nil {
		return err
	}
	fmt.Printf("    result (%s):\n%s", time.Since(start).Round(time.Millisecond), indent(out))

	step("what the services received")
	for _, r := range lin.Seen() {
		fmt.Printf("    Linear  %s %s %-10s Authorization: %s\n", r.Method, r.Path, r.OperationName, mask(r.Header.Get("Authorization")))
	}
	for _, r := range slk.Seen() {
		fmt.Printf("    Slack   %s %s  Authorization: %s\n", r.Method, r.Path, mask(r.Header.Get("Authorization")))
	}
	msgs := slk.Messages()
	if len(msgs) != 1 {
		return fmt.Errorf("the Slack service received %d messages, want 1", len(msgs))
	}
	fmt.Printf("    message posted to %s:\n%s", msgs[0].Channel, indent(indent(msgs[0].Text)))
	if got := lin.Seen()[0].Header.Get("Authorization"); got != linearKey {
		return fmt.Errorf("the Linear service did not receive the API key the broker should have attached")
	}
	if got := slk.Seen()[0].Header.Get("Authorization"); got != "Bearer "+slackToken {
		return fmt.Errorf("the Slack service did not receive the token the broker should have attached")
	}
	fmt.Println("\nThe connectors only ever wrote the placeholder {{aileron.credential}}; the broker put each credential there.")

	step("every egress decision is in the hash-chained audit log")
	if out, err = aileron("", "audit", "verify"); err != nil {
		return err
	}
	fmt.Print(indent(out))

	step("the isolation each worker had on this host")
	out, derr := aileron("", "doctor")
	fmt.Print(indent(out))
	if derr != nil {
		fmt.Println("    (some layers are unavailable here: workers ran with a warning; --isolation=strict would refuse)")
	}
	return nil
}

// serve starts h on loopback with a certificate for host; stop shuts it
// down.
func serve(ca *testca.CA, host string, h http.Handler) (addr string, stop func(), err error) {
	tlsCfg, err := ca.ServerConfig(host)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, TLSConfig: tlsCfg, ReadHeaderTimeout: 5 * time.Second}
	go srv.ServeTLS(ln, "", "")
	return ln.Addr().String(), func() { srv.Close() }, nil
}

func step(s string) { fmt.Printf("\n==> %s\n", s) }

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n"
}

// mask shows the start of a credential, e.g. "Bearer xoxb-d****".
func mask(s string) string {
	prefix, secret, found := strings.Cut(s, " ")
	if !found {
		prefix, secret = "", s
	} else {
		prefix += " "
	}
	if len(secret) < 8 {
		return "(missing)"
	}
	return prefix + secret[:6] + strings.Repeat("*", 8) + " (attached by the broker)"
}
