package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"aead.dev/minisign"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"aileron.dev/aileron/cas"
	"aileron.dev/aileron/manifest"
	"aileron.dev/aileron/supervisor"
)

// EnvSignPassword holds the password of an encrypted signing key for
// `aileron connector pack --sign-key` in scripts.
const EnvSignPassword = "AILERON_SIGN_PASSWORD"

// maxPasswordBytes bounds a signing key's password typed at the terminal.
const maxPasswordBytes = 4096

func (a *app) connectorCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "connector", Short: "Install, inspect, check and publish connectors"}
	var yes, tofu bool
	install := &cobra.Command{
		Use:   "install FQN@VERSION | DIR | file:///DIR",
		Short: "Download, verify and install a connector package (after showing what it may do)",
		Long: `Install a connector. FQN@VERSION (github://org/repo@1.2.3, gitlab://..., hub://...)
is downloaded from its source, its manifest signature is checked with the key
pinned for the source's authority (see aileron trust), its module is checked
against the hash the manifest pins, and what it may do is shown before you
consent. A directory (or file:///dir) installs a local development package,
unsigned unless it carries a signature by a pinned key.

Without a terminal, pass --yes to consent. A publisher whose key is not
pinned is refused; at a terminal you are offered its key (trust on first
use), and scripts must pass --trust-on-first-use.`,
		Args: exactArgs(1, "install takes one FQN@VERSION or package directory"),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := a.installer(tofu)
			if err != nil {
				return err
			}
			defer in.close()
			f, err := in.resolve(cmd, args[0])
			if err != nil {
				return err
			}
			if f.Installed {
				fmt.Fprintf(a.stdout, "%s is already installed\n", f.Ref)
				return nil
			}
			if err := a.consent(f, yes); err != nil {
				return err
			}
			e, err := in.Commit(f)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "installed %s (%s)\n", e.Ref, e.Wasm)
			return nil
		},
	}
	install.Flags().BoolVarP(&yes, "yes", "y", false, "consent without a prompt (scripts); does not trust unknown publishers")
	install.Flags().BoolVar(&tofu, "trust-on-first-use", false, "pin the key an unknown publisher's source offers (shown), without a prompt")

	cmd.AddCommand(install, a.packCmd(), a.keygenCmd(), a.connectorListCmd(), a.inspectCmd(), a.checkCmd(), a.connectorRmCmd())
	return cmd
}

// installSession is an installer with the store it writes to.
type installSession struct {
	*cas.Installer
	a *app
	// home is the AILERON_HOME whose store the installer writes to.
	home string
}

func (s *installSession) close() {
	if s.Fetcher != nil {
		s.Fetcher.Close()
	}
}

// installer builds the installer from the home directory's settings. With
// tofu, an unknown publisher's key is trusted without a prompt (and shown);
// without it, one is asked at a terminal and refused elsewhere.
func (a *app) installer(tofu bool) (*installSession, error) {
	home, err := a.homeDir()
	if err != nil {
		return nil, err
	}
	settings, err := supervisor.LoadSettings(home)
	if err != nil {
		return nil, err
	}
	scfg, err := settings.SourceConfig(os.Getenv)
	if err != nil {
		return nil, err
	}
	scfg.Progress = a.progress()
	fetcher, err := cas.NewFetcher(scfg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	store, err := cas.Open(supervisor.StoreDir(home))
	if err != nil {
		return nil, err
	}
	in := &cas.Installer{
		Store:   store,
		Trust:   cas.OpenTrust(home),
		Fetcher: fetcher,
		Warn:    func(msg string) { fmt.Fprintln(a.stderr, "aileron:", msg) },
	}
	in.TrustOnFirstUse = func(authority string, key minisign.PublicKey, from string) error {
		fmt.Fprintf(a.stderr, "\nNo key is pinned for %s. Its source offers this key:\n  key ID      %s\n  public key  %s\n  from        %s\n", authority, cas.KeyID(key.ID()), key.String(), from)
		if tofu {
			fmt.Fprintf(a.stderr, "aileron: WARNING: trusting it on first use (--trust-on-first-use): every package of %s must be signed by it from now on\n", authority)
			return nil
		}
		f, ok := a.stdinTerminal()
		if !ok {
			return fmt.Errorf("%w: %s; compare the key with the one the publisher announces, then run `aileron trust add %s %s`, or pass --trust-on-first-use", cas.ErrUnknownAuthority, authority, authority, key.String())
		}
		if err := a.ask(f, "Trust this key for every package of "+authority+"? Compare it with the one the publisher announces."); err != nil {
			return fmt.Errorf("key for %s not trusted; nothing was installed", authority)
		}
		return nil
	}
	return &installSession{Installer: in, a: a, home: home}, nil
}

// resolve fetches and verifies what arg names: FQN@VERSION, file:///dir or
// a directory.
func (s *installSession) resolve(cmd *cobra.Command, arg string) (*cas.Fetched, error) {
	if dir, ok := strings.CutPrefix(arg, "file://"); ok {
		if _, err := manifest.ParseFQN(arg); err != nil {
			return nil, usageError{err}
		}
		return s.Local(dir)
	}
	if strings.Contains(arg, "://") {
		ref, err := manifest.ParseRef(arg)
		if err != nil {
			return nil, usageError{err}
		}
		return s.Fetch(cmd.Context(), ref, "")
	}
	f, err := s.Local(arg)
	if err != nil {
		return nil, fmt.Errorf("install %s: %w", arg, err)
	}
	return f, nil
}

// consent shows what the package may do and asks; --yes answers for
// scripts. Without a terminal and without --yes it fails, never waits.
func (a *app) consent(f *cas.Fetched, yes bool) error {
	signed := "signed by the key pinned for " + f.Ref.FQN.Authority()
	if f.NewKey != nil {
		signed = "signed by the key you just trusted for " + f.Ref.FQN.Authority()
	}
	if !f.Signed {
		signed = "UNSIGNED development package"
	}
	fmt.Fprintf(a.stderr, "\n%s\nsource: %s\n(%s)\n\n", manifest.Describe(f.Manifest), f.Source, signed)
	return a.confirm(yes, "Install "+f.Ref.String()+"?")
}

// confirm asks a yes/no question on the terminal. Without a terminal it
// never waits: it needs --yes.
func (a *app) confirm(yes bool, question string) error {
	if yes {
		return nil
	}
	f, ok := a.stdinTerminal()
	if !ok {
		return usageError{errors.New("no terminal to ask for consent: review the summary above and pass --yes")}
	}
	if err := a.ask(f, question); err != nil {
		return errors.New("not confirmed; nothing was installed")
	}
	return nil
}

// ask asks question at the terminal f; anything but yes is an error.
func (a *app) ask(f *os.File, question string) error {
	fmt.Fprintf(a.stderr, "%s [y/N] ", question)
	var answer string
	fmt.Fscanln(f, &answer)
	if answer != "y" && answer != "Y" && answer != "yes" {
		return errors.New("not confirmed")
	}
	return nil
}

// progress returns a progress display for downloads when stderr is a
// terminal, else nil.
func (a *app) progress() func(name string, size int64) io.WriteCloser {
	f, ok := a.stderr.(*os.File)
	if !ok || !isTerminal(f) {
		return nil
	}
	return func(name string, size int64) io.WriteCloser {
		return progressbar.NewOptions64(size,
			progressbar.OptionSetWriter(f),
			progressbar.OptionSetDescription(name),
			progressbar.OptionShowBytes(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetWidth(30),
		)
	}
}

func (a *app) packCmd() *cobra.Command {
	var manifestPath, wasmPath, out, signKey string
	pack := &cobra.Command{
		Use:   "pack --manifest FILE --wasm FILE --out DIR [--sign-key FILE]",
		Short: "Make a connector package: fill in provenance_hash, check the module's imports, sign (publishers)",
		Long: `Make a connector package in DIR: manifest.toml with provenance_hash set to the
module's hash, and connector.wasm. With --sign-key (a minisign private key,
e.g. from aileron connector keygen), also manifest.toml.minisig and the public
key as minisign.pub. An encrypted key's password is read from the terminal or
from $` + EnvSignPassword + `. Attach the files to the release tagged vVERSION.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if manifestPath == "" || wasmPath == "" || out == "" {
				return usageError{errors.New("pack needs --manifest, --wasm and --out")}
			}
			var key minisign.PrivateKey
			if signKey != "" {
				var err error
				if key, err = a.loadSignKey(signKey); err != nil {
					return err
				}
			}
			m, err := cas.Pack(manifestPath, wasmPath, out)
			if err != nil {
				return err
			}
			if signKey != "" {
				if _, err := cas.SignPackage(out, key); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "packed and signed %s into %s (%s, key %s)\n", m.Ref(), out, m.Connector.ProvenanceHash, cas.KeyID(key.ID()))
				return nil
			}
			fmt.Fprintf(a.stdout, "packed %s into %s (%s); unsigned: pass --sign-key to publish it\n", m.Ref(), out, m.Connector.ProvenanceHash)
			return nil
		},
	}
	pack.Flags().StringVar(&manifestPath, "manifest", "", "manifest.toml (its provenance_hash is replaced)")
	pack.Flags().StringVar(&wasmPath, "wasm", "", "the built module")
	pack.Flags().StringVar(&out, "out", "", "output directory")
	pack.Flags().StringVar(&signKey, "sign-key", "", "minisign private key to sign the manifest with")
	return pack
}

// loadSignKey reads a private key, asking for its password if needed.
func (a *app) loadSignKey(path string) (minisign.PrivateKey, error) {
	pw := os.Getenv(EnvSignPassword)
	if pw == "" && cas.IsEncryptedKeyFile(path) {
		if _, ok := a.stdinTerminal(); !ok {
			return minisign.PrivateKey{}, usageError{fmt.Errorf("%s is encrypted: set %s or run at a terminal", path, EnvSignPassword)}
		}
		b, err := a.readHidden("password for "+path+": ", maxPasswordBytes)
		if err != nil {
			return minisign.PrivateKey{}, fmt.Errorf("read password: %w", err)
		}
		pw = string(b)
	}
	return cas.LoadPrivateKey(path, pw)
}

func (a *app) keygenCmd() *cobra.Command {
	var priv, pub string
	var noPassword bool
	cmd := &cobra.Command{
		Use:   "keygen --private FILE --public FILE",
		Short: "Make a minisign key pair to sign connector packages (publishers)",
		Long: `Make a minisign key pair. The private key is encrypted with a password read
from the terminal or $` + EnvSignPassword + ` (encrypting takes a few seconds
and 1 GiB of memory, by design); --no-password writes it unencrypted. Users
pin the public key with aileron trust add AUTHORITY KEY.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if priv == "" || pub == "" {
				return usageError{errors.New("keygen needs --private and --public")}
			}
			pw := os.Getenv(EnvSignPassword)
			if pw == "" && !noPassword {
				if _, ok := a.stdinTerminal(); !ok {
					return usageError{fmt.Errorf("no terminal to read a password: set %s or pass --no-password", EnvSignPassword)}
				}
				b, err := a.readHidden("password for the new key: ", maxPasswordBytes)
				if err != nil {
					return fmt.Errorf("read password: %w", err)
				}
				if pw = string(b); pw == "" {
					return usageError{errors.New("empty password: pass --no-password for an unencrypted key")}
				}
			}
			if noPassword {
				pw = ""
			}
			k, err := cas.GenerateKeyFiles(priv, pub, pw)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "key %s\npublic key %s\n", cas.KeyID(k.ID()), k.String())
			return nil
		},
	}
	cmd.Flags().StringVar(&priv, "private", "", "where to write the private key (never overwritten)")
	cmd.Flags().StringVar(&pub, "public", "", "where to write the public key (minisign.pub)")
	cmd.Flags().BoolVar(&noPassword, "no-password", false, "write the private key unencrypted")
	return cmd
}

// openStore opens the store without starting anything else.
func (a *app) openStore() (*cas.Store, string, error) {
	home, err := a.homeDir()
	if err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, "", err
	}
	s, err := cas.Open(supervisor.StoreDir(home))
	return s, home, err
}

func (a *app) connectorListCmd() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List installed connectors",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			store, _, err := a.openStore()
			if err != nil {
				return err
			}
			es, err := store.Entries()
			if err != nil {
				return err
			}
			if jsonOut {
				if es == nil {
					es = []cas.Entry{}
				}
				return writeJSON(a.stdout, es)
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CONNECTOR\tWASM\tSIGNED BY\tSOURCE")
			for _, e := range es {
				by := "UNSIGNED"
				if e.Signature != "" {
					by = e.KeyFingerprint
					if f := strings.Fields(by); len(f) == 3 {
						by = "key " + f[1]
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Ref, e.Wasm.Hex()[:12], by, e.Source)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return cmd
}

func (a *app) inspectCmd() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "inspect PATH | FQN[@VERSION]",
		Short: "Show what a connector may do: a manifest file, a package directory, or an installed connector",
		Args:  exactArgs(1, "inspect takes one manifest file, package directory or FQN[@VERSION]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.inspectTarget(args[0])
			if err != nil {
				return err
			}
			if jsonOut {
				return writeJSON(a.stdout, m)
			}
			_, err = io.WriteString(a.stdout, manifest.Describe(m))
			return err
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print the manifest as JSON")
	return cmd
}

func (a *app) inspectTarget(arg string) (*manifest.Manifest, error) {
	if !strings.Contains(arg, "://") {
		st, err := os.Stat(arg)
		if err != nil {
			return nil, err
		}
		if st.IsDir() {
			pkg, err := cas.ReadDir(arg)
			if err != nil {
				return nil, err
			}
			return pkg.Manifest, nil
		}
		return manifest.LoadManifest(arg)
	}
	store, _, err := a.openStore()
	if err != nil {
		return nil, err
	}
	ref := arg
	if !strings.Contains(arg[strings.Index(arg, "://"):], "@") {
		f, err := manifest.ParseFQN(arg)
		if err != nil {
			return nil, usageError{err}
		}
		es, err := store.Entries()
		if err != nil {
			return nil, err
		}
		var versions []string
		for _, e := range es {
			if v, ok := strings.CutPrefix(e.Ref, f.String()+"@"); ok {
				versions = append(versions, v)
			}
		}
		if len(versions) == 0 {
			return nil, fmt.Errorf("%s: %w; install it with `aileron connector install %s@VERSION`", f, cas.ErrNotFound, f)
		}
		ref = f.String() + "@" + slices.MaxFunc(versions, cas.CompareVersions)
	} else if _, err := manifest.ParseRef(arg); err != nil {
		return nil, usageError{err}
	}
	inst, err := store.Connector(ref)
	if err != nil {
		return nil, err
	}
	return inst.Manifest, nil
}

func (a *app) checkCmd() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "List newer published versions of installed connectors (installs nothing)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := a.installer(false)
			if err != nil {
				return err
			}
			defer in.close()
			av, err := in.Check(cmd.Context())
			if err != nil {
				return err
			}
			failed := 0
			for _, x := range av {
				if x.Error != "" {
					failed++
				}
			}
			if jsonOut {
				if err := writeJSON(a.stdout, av); err != nil {
					return err
				}
			} else {
				for _, x := range av {
					installed := x.Installed[len(x.Installed)-1]
					switch {
					case x.Error != "":
						fmt.Fprintf(a.stderr, "aileron: %s %s: cannot check: %s\n", x.Connector, installed, x.Error)
					case len(x.Newer) == 0:
						fmt.Fprintf(a.stdout, "%s %s: up to date\n", x.Connector, installed)
					default:
						fmt.Fprintf(a.stdout, "%s %s: newer: %s\n", x.Connector, installed, strings.Join(x.Newer, ", "))
					}
				}
				if len(av) == 0 {
					fmt.Fprintln(a.stdout, "no connectors from remote sources are installed")
				}
			}
			if failed > 0 {
				return fmt.Errorf("could not check %d connector(s)", failed)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return cmd
}

func (a *app) connectorRmCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rm FQN@VERSION",
		Short: "Uninstall a connector version (aileron store gc frees its space)",
		Args:  exactArgs(1, "rm takes one FQN@VERSION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := manifest.ParseRef(args[0])
			if err != nil {
				return usageError{err}
			}
			store, home, err := a.openStore()
			if err != nil {
				return err
			}
			if users := supervisor.ActionsRequiring(supervisor.ActionsDir(home), ref.String()); len(users) > 0 && !force {
				return fmt.Errorf("%s is required by the installed action(s) %s: remove them first or pass --force", ref, strings.Join(users, ", "))
			}
			if err := store.RemoveConnector(ref.String()); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "removed %s; run `aileron store gc` to free its space\n", ref)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "remove it even if installed actions require it")
	return cmd
}
