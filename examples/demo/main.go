// Command demo runs Aileron end to end on a built-in example, with the real
// binaries: it packs the example notes connector, starts the fake notes
// service on loopback (HTTPS, with a throw-away CA), installs the connector,
// stores the service's API key in the vault, adds the example action, runs it
// and prints the result, then shows what the service received.
//
//	go run ./examples/demo -bin bin
package main

import (
	"bytes"
	"context"
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
	"aileron.dev/aileron/examples/services/notes"
	"aileron.dev/aileron/examples/services/testca"
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

	step("pack the example connector (GOOS=wasip1 go build, then fill in provenance_hash)")
	m, err := kit.PackConnector(ctx, "examples/connectors/notes", filepath.Join(build, "notes"))
	if err != nil {
		return err
	}
	fmt.Printf("    %s@%s %s\n", m.Connector.Name, m.Connector.Version, m.Connector.ProvenanceHash)
	action := filepath.Join(build, "add-note.toml")
	if err := kit.PinAction(filepath.Join(kit.RepoRoot(), "examples/actions/add-note.toml"), action, m); err != nil {
		return err
	}

	step("start the fake notes service on loopback (HTTPS, certificate for notes.example.com)")
	const apiKey = "demo-key-7f3a9c"
	svc := notes.New(apiKey)
	ca, err := testca.New()
	if err != nil {
		return err
	}
	tlsCfg, err := ca.ServerConfig("notes.example.com")
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: svc, TLSConfig: tlsCfg, ReadHeaderTimeout: 5 * time.Second}
	go srv.ServeTLS(ln, "", "")
	defer srv.Close()
	fmt.Printf("    notes.example.com:443 -> %s\n", ln.Addr())

	caPath := filepath.Join(home, "demo-ca.pem")
	if err := os.WriteFile(caPath, ca.PEM, 0o600); err != nil {
		return err
	}
	config := fmt.Sprintf(`# Demo only: the fake service runs on loopback behind a real-looking name.
[broker]
unsafe_allow_loopback = true
extra_root_cas = [%q]
[broker.routes]
"notes.example.com:443" = %q
`, caPath, ln.Addr().String())
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

	step("install the connector (shows what it may do; --yes consents)")
	out, err := aileron("", "connector", "install", "--yes", filepath.Join(build, "notes"))
	if err != nil {
		return err
	}
	fmt.Print(indent(out))

	step("store the service's API key in the vault, bound to the connector (read from stdin)")
	if out, err = aileron(apiKey+"\n", "vault", "set", "notes-key", "--kind", "api_key", "--connector", "github://aileron-examples/notes"); err != nil {
		return err
	}
	fmt.Print(indent(out))

	step("add the example action")
	if out, err = aileron("", "action", "add", action); err != nil {
		return err
	}
	fmt.Print(indent(out))

	step("run it: supervisor -> broker + one sandboxed worker -> fake service")
	start := time.Now()
	out, err = aileron("", "run", "add-note", "--input", "title=Ship v0.1", "--input", "body=Walking skeleton works end to end")
	if err != nil {
		return err
	}
	fmt.Printf("    result (%s):\n%s", time.Since(start).Round(time.Millisecond), indent(out))

	step("what the notes service received")
	for _, s := range svc.Seen() {
		key := s.Header.Get("X-Api-Key")
		fmt.Printf("    %s %s  X-Api-Key: %s\n", s.Method, s.Path, mask(key))
	}
	if len(svc.Seen()) == 0 || svc.Seen()[0].Header.Get("X-Api-Key") != apiKey {
		return fmt.Errorf("the service did not receive the API key the broker should have attached")
	}
	fmt.Println("\nThe connector only ever wrote the placeholder {{aileron.credential}}; the broker put the key there.")
	return nil
}

func step(s string) { fmt.Printf("\n==> %s\n", s) }

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n"
}

func mask(s string) string {
	if len(s) < 6 {
		return "(missing)"
	}
	return s[:4] + strings.Repeat("*", len(s)-4) + " (attached by the broker)"
}
