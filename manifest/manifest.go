package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"aileron.dev/aileron/sdk/abi"
)

// Limits on manifest contents. They are far above what a real connector
// needs and keep consent prompts readable.
const (
	maxHosts       = 64
	maxScopes      = 64
	maxScopeLen    = 256
	maxImports     = 64
	maxIntents     = 256
	maxIdentLen    = 64
	maxDescription = 1024
	maxSchemaBytes = 64 << 10
)

// Manifest is a parsed, validated connector manifest (manifest.toml). It
// holds exactly what the connector asked for; the runtime grants nothing
// else. The JSON encoding (for --json output) mirrors the TOML, except that
// the credential's comma-separated "scope" string is the list "scopes".
type Manifest struct {
	// Connector identifies the artifact.
	Connector Connector `json:"connector"`
	// Capabilities is everything the connector may use.
	Capabilities Capabilities `json:"capabilities"`
	// Provides lists the connector's intents.
	Provides Provides `json:"provides"`
	// Intents holds the optional [intents.NAME] tables, keyed by intent.
	// Every key is in Provides.Intents. Nil when there are none.
	Intents map[string]Intent `json:"intents,omitempty"`
}

// Connector is the [connector] table.
type Connector struct {
	// Name is the connector's FQN.
	Name FQN `json:"name"`
	// Version is a semantic version without a leading "v".
	Version string `json:"version"`
	// ProvenanceHash is "sha256:" and the 64 lowercase hex digits of the
	// sha256 of connector.wasm.
	ProvenanceHash string `json:"provenance_hash"`
}

// Capabilities is the [capabilities] table.
type Capabilities struct {
	// Network is [capabilities.network]; no hosts means no egress.
	Network Network `json:"network"`
	// Credential is [capabilities.credential]; nil when the connector
	// uses no credential.
	Credential *Credential `json:"credential,omitempty"`
	// Runtime is [capabilities.runtime]; no imports means only
	// [abi.BaseImports].
	Runtime Runtime `json:"runtime"`
}

// Network is [capabilities.network].
type Network struct {
	// Hosts are the destinations the connector may reach through the
	// broker, in file order. Nil when there are none.
	Hosts []HostPort `json:"hosts"`
}

// Credential is [capabilities.credential].
type Credential struct {
	// Kind is the credential kind the connector expects.
	Kind CredentialKind `json:"kind"`
	// Scopes is the "scope" string split at commas, in file order. Nil
	// when the credential has no scopes (an API key, for example).
	Scopes []string `json:"scopes"`
}

// Runtime is [capabilities.runtime].
type Runtime struct {
	// Imports are capability IDs, keys of [abi.ImportTable], in file
	// order. Nil when there are none.
	Imports []string `json:"imports"`
}

// Provides is [provides].
type Provides struct {
	// Intents are the operation names the connector implements, in file
	// order; never empty in a valid manifest.
	Intents []string `json:"intents"`
}

// Intent is an optional [intents.NAME] table.
type Intent struct {
	// Description is one line for people and agents.
	Description string `json:"description,omitempty"`
	// Scopes are the credential scopes the intent needs, a subset of the
	// credential's. Nil means "not declared" (the step may then use the
	// action's whole capability list); an empty, non-nil list means the
	// intent needs no scope at all.
	Scopes []string `json:"scopes"`
	// Input is the JSON Schema of the intent's input, a JSON object in
	// compact form. It is written in TOML as a JSON string (JSON Schema
	// needs null and arbitrary keys, which TOML tables cannot express
	// faithfully). The runtime shows it to agents; it does not enforce it.
	Input json.RawMessage `json:"input,omitempty"`
}

// CredentialKind is a kind of vault credential. The zero value is no
// credential.
type CredentialKind string

// Credential kinds the broker knows how to attach.
const (
	// CredentialOAuth2 is an OAuth 2 access token, refreshed by the broker.
	CredentialOAuth2 CredentialKind = "oauth2"
	// CredentialAPIKey is a static API key.
	CredentialAPIKey CredentialKind = "api_key"
	// CredentialBasic is an HTTP basic-auth user and password.
	CredentialBasic CredentialKind = "basic"
	// CredentialSigningKey is a key the broker signs requests with; it
	// never leaves the broker.
	CredentialSigningKey CredentialKind = "signing_key"
)

// credentialKinds is the allowlist of kinds, one per line.
var credentialKinds = []CredentialKind{
	CredentialOAuth2,
	CredentialAPIKey,
	CredentialBasic,
	CredentialSigningKey,
}

// Valid reports whether k is a kind the broker knows.
func (k CredentialKind) Valid() bool { return slices.Contains(credentialKinds, k) }

// CredentialKinds lists the known kinds, for messages.
func CredentialKinds() string { return strings.Join(kindNames(), ", ") }

func kindNames() []string {
	names := make([]string, len(credentialKinds))
	for i, k := range credentialKinds {
		names[i] = string(k)
	}
	return names
}

// ParseManifest parses and validates a manifest. filename is used only in
// error messages. On failure the error is an [ErrorList] with every
// problem found, each an [*Error] with its position.
func ParseManifest(filename string, data []byte) (*Manifest, error) {
	doc, ix, err := parseTOML(filename, data)
	if err != nil {
		return nil, err
	}
	d := &decoder{file: filename, ix: ix}
	m := d.manifest(doc)
	if err := d.errs.err(); err != nil {
		return nil, err
	}
	return m, nil
}

// LoadManifest reads and parses the manifest at path.
func LoadManifest(path string) (*Manifest, error) {
	data, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseManifest(path, data)
}

func (d *decoder) manifest(doc map[string]any) *Manifest {
	m := &Manifest{}
	root := tbl{where: "at the top level", m: doc}
	d.fields(root, "connector", "capabilities", "provides", "intents")

	if c, present, ok := d.child(root, "connector"); !present {
		d.missing(root, "connector", "add a [connector] table with name, version and provenance_hash")
	} else if ok {
		d.fields(c, "name", "version", "provenance_hash")
		m.Connector.Name, _ = d.fqn(c, "name")
		m.Connector.Version, _ = d.version(c, "version")
		m.Connector.ProvenanceHash, _ = d.hash(c, "provenance_hash")
	}

	var scopeSet map[string]bool
	if caps, _, ok := d.child(root, "capabilities"); ok {
		d.fields(caps, "network", "credential", "runtime")
		if n, _, ok := d.child(caps, "network"); ok {
			d.fields(n, "hosts")
			if _, present := n.m["hosts"]; !present {
				d.missing(n, "hosts", "list the host:port pairs the connector reaches, or remove the table")
			}
			m.Capabilities.Network.Hosts = d.hosts(n, "hosts")
		}
		if c, _, ok := d.child(caps, "credential"); ok {
			d.fields(c, "kind", "scope")
			m.Capabilities.Credential = d.credential(c)
			scopeSet = set(m.Capabilities.Credential.Scopes)
		}
		if r, _, ok := d.child(caps, "runtime"); ok {
			d.fields(r, "imports")
			if _, present := r.m["imports"]; !present {
				d.missing(r, "imports", "list capability IDs, or remove the table")
			}
			m.Capabilities.Runtime.Imports = d.imports(r, "imports")
		}
		d.coherent(caps)
	}

	if p, present, ok := d.child(root, "provides"); !present {
		d.missing(root, "provides", "add [provides] with intents = [\"...\"]")
	} else if ok {
		d.fields(p, "intents")
		intents, idx, present := d.strs(p, "intents", maxIntents)
		if !present {
			d.missing(p, "intents", "list the intents the connector implements")
		} else if raw, _ := p.m["intents"].([]any); len(raw) == 0 {
			d.failVal(joinPath(p.path, "intents"), ErrMissing, "must list at least one intent")
		}
		m.Provides.Intents = d.uniqueIdents(joinPath(p.path, "intents"), intents, idx, "intent")
	}

	if it, _, ok := d.child(root, "intents"); ok {
		provided := set(m.Provides.Intents)
		for _, name := range d.sortedKeys(it) {
			t, _, ok := d.child(it, name)
			if !ok {
				continue
			}
			if !provided[name] {
				d.failKey(t.path, ErrInvalid, "intent %q is not in [provides] intents; add it there or remove [intents.%s]", name, name)
				continue
			}
			t.where = "in [intents." + name + "]"
			d.fields(t, "description", "scopes", "input")
			in := d.intent(t, m.Capabilities.Credential != nil, scopeSet)
			if m.Intents == nil {
				m.Intents = map[string]Intent{}
			}
			m.Intents[name] = in
		}
	}
	return m
}

// fqn decodes a required FQN field.
func (d *decoder) fqn(t tbl, key string) (FQN, bool) {
	s, ok := d.reqStr(t, key, `e.g. "github://org/repo"`)
	if !ok {
		return FQN{}, false
	}
	f, err := ParseFQN(s)
	if err != nil {
		d.failVal(joinPath(t.path, key), ErrInvalid, "%s", err.(*Error).Msg)
		return FQN{}, false
	}
	return f, true
}

// version decodes a required semantic version field.
func (d *decoder) version(t tbl, key string) (string, bool) {
	s, ok := d.reqStr(t, key, `e.g. "1.2.3"`)
	if !ok {
		return "", false
	}
	if msg := versionProblem(s); msg != "" {
		d.failVal(joinPath(t.path, key), ErrInvalid, "invalid version %q: %s", s, msg)
		return "", false
	}
	return s, true
}

// hash decodes a required "sha256:<hex>" field.
func (d *decoder) hash(t tbl, key string) (string, bool) {
	s, ok := d.reqStr(t, key, `the sha256 of connector.wasm: "sha256:<64 hex digits>"`)
	if !ok {
		return "", false
	}
	if msg := HashProblem(s); msg != "" {
		d.failVal(joinPath(t.path, key), ErrInvalid, "%s", msg)
		return "", false
	}
	return s, true
}

// HashProblem says what is wrong with s as a "sha256:<64 lowercase hex
// digits>" hash, "" if nothing: the grammar of provenance hashes, pins and
// the store's digests.
func HashProblem(s string) string {
	hex, ok := strings.CutPrefix(s, "sha256:")
	if !ok {
		return `must be "sha256:" followed by 64 lowercase hex digits`
	}
	if len(hex) != 64 {
		return fmt.Sprintf("must have 64 hex digits after \"sha256:\", not %d", len(hex))
	}
	for i := 0; i < len(hex); i++ {
		c := hex[i]
		switch {
		case c >= '0' && c <= '9' || c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F':
			return fmt.Sprintf("hex digits must be lowercase: write %q", "sha256:"+strings.ToLower(hex))
		default:
			return fmt.Sprintf("character %q is not a hex digit", rune(c))
		}
	}
	return ""
}

// hosts decodes a list of host:port entries, rejecting duplicates.
func (d *decoder) hosts(t tbl, key string) []HostPort {
	list, idx, _ := d.strs(t, key, maxHosts)
	path := joinPath(t.path, key)
	var out []HostPort
	seen := map[HostPort]int{}
	for i, s := range list {
		p := indexPath(path, idx[i])
		hp, msg := parseHostPort(s)
		if msg != "" {
			d.failVal(p, ErrInvalid, "invalid host %q: %s", s, msg)
			continue
		}
		if first, dup := seen[hp]; dup {
			d.failVal(p, ErrDuplicate, "duplicate host %q; it is already listed at line %d", s, d.ix.val(indexPath(path, first)).line)
			continue
		}
		seen[hp] = idx[i]
		out = append(out, hp)
	}
	return out
}

func (d *decoder) credential(t tbl) *Credential {
	c := &Credential{}
	if s, ok := d.reqStr(t, "kind", "one of "+kindList()); ok {
		if !CredentialKind(s).Valid() {
			d.failVal(joinPath(t.path, "kind"), ErrInvalid, "unknown credential kind %q; known kinds: %s", s, kindList())
		} else {
			c.Kind = CredentialKind(s)
		}
	}
	s, ok := d.str(t, "scope")
	if !ok || s == "" {
		return c
	}
	path := joinPath(t.path, "scope")
	parts := strings.Split(s, ",")
	if len(parts) > maxScopes {
		d.failVal(path, ErrTooLarge, "has %d scopes; at most %d are allowed", len(parts), maxScopes)
		return c
	}
	seen := map[string]bool{}
	for _, sc := range parts {
		if msg := scopeProblem(sc); msg != "" {
			d.failVal(path, ErrInvalid, "%s; write scopes separated by \",\" without spaces, e.g. \"chat:write,channels:read\"", msg)
			continue
		}
		if seen[sc] {
			d.failVal(path, ErrDuplicate, "duplicate scope %q", sc)
			continue
		}
		seen[sc] = true
		c.Scopes = append(c.Scopes, sc)
	}
	return c
}

func kindList() string {
	names := kindNames()
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// scopeProblem checks one OAuth scope token. The charset is RFC 6749
// section 3.3's scope-token (printable ASCII except space, '"' and '\')
// minus ',', which separates scopes in a manifest.
func scopeProblem(s string) string {
	switch {
	case s == "":
		return "empty scope"
	case len(s) > maxScopeLen:
		return fmt.Sprintf("scope is longer than %d bytes", maxScopeLen)
	}
	for _, c := range s {
		if unicode.IsSpace(c) {
			return fmt.Sprintf("scope %q contains whitespace", s)
		}
		// Security: non-ASCII look-alikes ("chat:wr\u0456te") would show
		// as a scope the user recognizes but never match it.
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' || c == ',' {
			return fmt.Sprintf("scope %q has character %q; scopes are printable ASCII without '\"', '\\' or ','", s, c)
		}
	}
	return ""
}

// imports decodes [capabilities.runtime] imports.
func (d *decoder) imports(t tbl, key string) []string {
	list, idx, _ := d.strs(t, key, maxImports)
	path := joinPath(t.path, key)
	var out []string
	seen := map[string]int{}
	for i, s := range list {
		p := indexPath(path, idx[i])
		if _, ok := abi.ImportTable[s]; !ok {
			d.failVal(p, ErrInvalid, "unknown import %q; known imports: %s", s, strings.Join(abi.CapabilityIDs(), ", "))
			continue
		}
		if first, dup := seen[s]; dup {
			d.failVal(p, ErrDuplicate, "duplicate import %q; it is already listed at line %d", s, d.ix.val(indexPath(path, first)).line)
			continue
		}
		seen[s] = idx[i]
		out = append(out, s)
	}
	return out
}

// coherent rejects capabilities that cannot be used as declared, so the
// consent prompt never shows a grant that means nothing. It looks at the
// raw lists, so an entry that was already reported as invalid still counts
// as written and does not cause a second, misleading error.
func (d *decoder) coherent(caps tbl) {
	runtime := joinPath(joinPath(caps.path, "runtime"), "imports")
	httpAt := -1
	if r, ok := caps.m["runtime"].(map[string]any); ok {
		if list, ok := r["imports"].([]any); ok {
			httpAt = slices.Index(list, any(abi.CapHTTP))
		}
	}
	hosts := false
	if n, ok := caps.m["network"].(map[string]any); ok {
		v, present := n["hosts"]
		list, isList := v.([]any)
		hosts = present && (!isList || len(list) > 0)
	}
	switch {
	case httpAt >= 0 && !hosts:
		d.failVal(indexPath(runtime, httpAt), ErrInvalid, "import %q needs at least one host in [capabilities.network] hosts", abi.CapHTTP)
	case hosts && httpAt < 0:
		d.failVal(joinPath(joinPath(caps.path, "network"), "hosts"), ErrInvalid, "hosts are reachable only through the %q import; add it to [capabilities.runtime] imports", abi.CapHTTP)
	}
	if _, ok := caps.m["credential"]; ok && httpAt < 0 {
		d.failKey(joinPath(caps.path, "credential"), ErrInvalid, "a credential is only attached to HTTP requests; add %q to [capabilities.runtime] imports, or remove [capabilities.credential]", abi.CapHTTP)
	}
}

// uniqueIdents checks a list of intent identifiers.
func (d *decoder) uniqueIdents(path string, list []string, idx []int, what string) []string {
	var out []string
	seen := map[string]int{}
	for i, s := range list {
		p := indexPath(path, idx[i])
		if msg := identProblem(s); msg != "" {
			d.failVal(p, ErrInvalid, "invalid %s name %q: %s", what, s, msg)
			continue
		}
		if first, dup := seen[s]; dup {
			d.failVal(p, ErrDuplicate, "duplicate %s %q; it is already listed at line %d", what, s, d.ix.val(indexPath(path, first)).line)
			continue
		}
		seen[s] = idx[i]
		out = append(out, s)
	}
	return out
}

// identProblem checks an intent or input name: [a-z][a-z0-9_]{0,63}.
func identProblem(s string) string {
	return nameProblem(s, "_")
}

// nameProblem checks [a-z][a-z0-9<extra>]{0,63}.
// IsActionName reports whether s is a valid action name (the grammar of
// [action] name: a-z, 0-9 and '-', starting with a letter).
func IsActionName(s string) bool { return nameProblem(s, "-") == "" }

func nameProblem(s, extra string) string {
	if s == "" {
		return "must not be empty"
	}
	if len(s) > maxIdentLen {
		return fmt.Sprintf("longer than %d bytes", maxIdentLen)
	}
	if s[0] < 'a' || s[0] > 'z' {
		return "must start with a lowercase letter"
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune(extra, c)) {
			return fmt.Sprintf("character %q is not allowed; use a-z, 0-9 and %s", c, quoteChars(extra))
		}
	}
	return ""
}

func quoteChars(extra string) string {
	q := make([]string, len(extra))
	for i := range extra {
		q[i] = "'" + extra[i:i+1] + "'"
	}
	return strings.Join(q, " and ")
}

func (d *decoder) intent(t tbl, hasCredential bool, credScopes map[string]bool) Intent {
	var in Intent
	in.Description, _ = d.text(t, "description")
	if list, idx, present := d.strs(t, "scopes", maxScopes); present {
		in.Scopes = []string{}
		path := joinPath(t.path, "scopes")
		seen := map[string]bool{}
		for i, s := range list {
			p := indexPath(path, idx[i])
			switch msg := scopeProblem(s); {
			case msg != "":
				d.failVal(p, ErrInvalid, "%s", msg)
			case seen[s]:
				d.failVal(p, ErrDuplicate, "duplicate scope %q", s)
			case !hasCredential:
				d.failVal(p, ErrInvalid, "scope %q needs a credential; declare it in [capabilities.credential] scope or remove it here", s)
			case !credScopes[s]:
				d.failVal(p, ErrInvalid, "scope %q is not in [capabilities.credential] scope; add it there or remove it here", s)
			default:
				seen[s] = true
				in.Scopes = append(in.Scopes, s)
			}
		}
	}
	if v, ok := t.m["input"]; ok {
		if _, isStr := v.(string); !isStr {
			d.failVal(joinPath(t.path, "input"), ErrType, "must be a JSON Schema written as a JSON string, e.g. input = '{\"type\":\"object\"}', not %s", typeName(v))
		}
	}
	if s, ok := t.m["input"].(string); ok {
		path := joinPath(t.path, "input")
		var buf bytes.Buffer
		switch {
		case len(s) > maxSchemaBytes:
			d.failVal(path, ErrTooLarge, "schema is larger than %d bytes", maxSchemaBytes)
		case json.Compact(&buf, []byte(s)) != nil:
			d.failVal(path, ErrInvalid, "must be a JSON Schema written as a JSON string: %v", jsonErr(s))
		case buf.Len() == 0 || buf.Bytes()[0] != '{':
			d.failVal(path, ErrInvalid, "must be a JSON object, e.g. '{\"type\":\"object\"}'")
		default:
			in.Input = json.RawMessage(buf.Bytes())
		}
	}
	return in
}

func jsonErr(s string) error {
	var v any
	return json.Unmarshal([]byte(s), &v)
}

// text decodes an optional one-line description.
func (d *decoder) text(t tbl, key string) (string, bool) {
	s, ok := d.str(t, key)
	if !ok {
		return "", false
	}
	if msg := textProblem(s); msg != "" {
		d.failVal(joinPath(t.path, key), ErrInvalid, "%s", msg)
		return "", false
	}
	return s, true
}

// textProblem checks text shown to people at a consent prompt.
func textProblem(s string) string {
	if len(s) > maxDescription {
		return fmt.Sprintf("longer than %d bytes", maxDescription)
	}
	for _, r := range s {
		// Security: control characters (terminal escapes, newlines) and
		// bidi overrides could forge or hide lines of a consent prompt.
		if unicode.IsControl(r) || isBidiControl(r) {
			return fmt.Sprintf("character %q is not allowed; descriptions are one line of plain text without control or bidi characters", r)
		}
	}
	return ""
}

func set(list []string) map[string]bool {
	s := make(map[string]bool, len(list))
	for _, x := range list {
		s[x] = true
	}
	return s
}

// Ref returns the connector's name and version.
func (m *Manifest) Ref() Ref { return Ref{FQN: m.Connector.Name, Version: m.Connector.Version} }

// Scopes returns the credential's scopes, or nil when there is no
// credential.
func (m *Manifest) Scopes() []string {
	if m.Capabilities.Credential == nil {
		return nil
	}
	return m.Capabilities.Credential.Scopes
}

// Encode returns the manifest as canonical TOML: fixed table and key order,
// lists in their order, intents tables in [provides] order. ParseManifest
// of the result gives a Manifest equal to m.
func (m *Manifest) Encode() []byte {
	var w tomlWriter
	w.table("connector")
	w.kv("name", quote(m.Connector.Name.String()))
	w.kv("version", quote(m.Connector.Version))
	w.kv("provenance_hash", quote(m.Connector.ProvenanceHash))
	if hosts := m.Capabilities.Network.Hosts; len(hosts) > 0 {
		strs := make([]string, len(hosts))
		for i, h := range hosts {
			strs[i] = h.String()
		}
		w.table("capabilities.network")
		w.kv("hosts", quoteList(strs))
	}
	if c := m.Capabilities.Credential; c != nil {
		w.table("capabilities.credential")
		w.kv("kind", quote(string(c.Kind)))
		if len(c.Scopes) > 0 {
			w.kv("scope", quote(strings.Join(c.Scopes, ",")))
		}
	}
	if imps := m.Capabilities.Runtime.Imports; len(imps) > 0 {
		w.table("capabilities.runtime")
		w.kv("imports", quoteList(imps))
	}
	w.table("provides")
	w.kv("intents", quoteList(m.Provides.Intents))
	for _, name := range m.Provides.Intents {
		in, ok := m.Intents[name]
		if !ok {
			continue
		}
		w.table("intents." + name)
		if in.Description != "" {
			w.kv("description", quote(in.Description))
		}
		if in.Scopes != nil {
			w.kv("scopes", quoteList(in.Scopes))
		}
		if len(in.Input) > 0 {
			w.kv("input", quote(string(in.Input)))
		}
	}
	return w.bytes()
}
