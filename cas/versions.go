package cas

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	"golang.org/x/mod/semver"

	"aileron.dev/aileron/manifest"
)

// Limits on a version index.
const (
	MaxIndexBytes    = 64 << 10
	MaxIndexVersions = 1000
)

// ErrBadIndex is returned (wrapped) for a version index that is not
// exactly what [ParseVersionIndex] accepts.
var ErrBadIndex = errors.New("bad version index")

// versionIndex is versions.json:
//
//	{"connector": "github://org/repo", "versions": ["1.0.0", "1.1.0"]}
//
// It is not signed: it only tells `aileron connector check` and `aileron
// action update` what to look for. Whatever they then install is fetched
// and verified like any other package.
type versionIndex struct {
	Connector string   `json:"connector"`
	Versions  []string `json:"versions"`
}

// ParseVersionIndex parses the version index of connector f strictly: one
// JSON object with exactly the fields "connector" (which must be f) and
// "versions" (1 to [MaxIndexVersions] distinct versions, each valid by
// [manifest.ValidateVersion], so none can steer a download URL). It returns
// the versions in ascending semver order.
func ParseVersionIndex(f manifest.FQN, b []byte) ([]string, error) {
	if len(b) > MaxIndexBytes {
		return nil, fmt.Errorf("%w: %s is over %d bytes", ErrBadIndex, IndexFile, MaxIndexBytes)
	}
	var ix versionIndex
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ix); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadIndex, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrBadIndex)
	}
	if ix.Connector != f.String() {
		return nil, fmt.Errorf("%w: it is the index of %q, not of %s", ErrBadIndex, ix.Connector, f)
	}
	if len(ix.Versions) == 0 || len(ix.Versions) > MaxIndexVersions {
		return nil, fmt.Errorf("%w: it must list 1 to %d versions, not %d", ErrBadIndex, MaxIndexVersions, len(ix.Versions))
	}
	seen := map[string]bool{}
	for _, v := range ix.Versions {
		// Security: a name like "../../x" or "1.0.0/../evil" would
		// otherwise reach a download URL.
		if err := manifest.ValidateVersion(v); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadIndex, err)
		}
		if seen[v] {
			return nil, fmt.Errorf("%w: version %s is listed twice", ErrBadIndex, v)
		}
		seen[v] = true
	}
	out := append([]string(nil), ix.Versions...)
	sortVersions(out)
	return out, nil
}

// EncodeVersionIndex returns the versions.json of f listing versions, for
// publishers (and tests).
func EncodeVersionIndex(f manifest.FQN, versions []string) []byte {
	b, _ := json.MarshalIndent(versionIndex{Connector: f.String(), Versions: versions}, "", "  ")
	return append(b, '\n')
}

// sortVersions sorts valid versions in ascending semver order.
func sortVersions(vs []string) {
	sort.Slice(vs, func(i, j int) bool { return semver.Compare("v"+vs[i], "v"+vs[j]) < 0 })
}

// CompareVersions compares two valid versions by semver precedence: -1, 0
// or +1.
func CompareVersions(a, b string) int { return semver.Compare("v"+a, "v"+b) }

// Newer returns the versions in available that are newer than current, in
// ascending order. Pre-releases count only when current is one itself:
// someone on 1.2.0 is not offered 1.3.0-rc.1.
func Newer(current string, available []string) []string {
	pre := semver.Prerelease("v"+current) != ""
	var out []string
	for _, v := range available {
		if CompareVersions(v, current) > 0 && (pre || semver.Prerelease("v"+v) == "") {
			out = append(out, v)
		}
	}
	sortVersions(out)
	return out
}

// Versions downloads and parses the version index of f.
func (in *Installer) Versions(ctx context.Context, f manifest.FQN) ([]string, error) {
	if !Remote(f) || in.Fetcher == nil {
		return nil, fmt.Errorf("%s: %w: only remote connectors have a version index", f, ErrBadSource)
	}
	u, err := in.Fetcher.Bases().IndexURL(f)
	if err != nil {
		return nil, err
	}
	var vs []string
	_, err = in.Fetcher.Get(ctx, u, IndexFile, MaxIndexBytes, func(b []byte) error {
		vs, err = ParseVersionIndex(f, b)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f, err)
	}
	return vs, nil
}

// Available is what `aileron connector check` reports for one connector.
type Available struct {
	// Connector is the FQN.
	Connector string `json:"connector"`
	// Installed are its installed versions, ascending.
	Installed []string `json:"installed"`
	// Newer are published versions newer than the newest installed one
	// (see [Newer]), ascending.
	Newer []string `json:"newer"`
	// Error says why the index could not be read; empty if it could.
	Error string `json:"error,omitempty"`
}

// Check lists, for every installed remote connector, the newer versions
// its source publishes. It installs nothing. A connector whose index cannot
// be read is reported with its error; the others are still checked.
func (in *Installer) Check(ctx context.Context) ([]Available, error) {
	entries, err := in.Store.Entries()
	if err != nil {
		return nil, err
	}
	byFQN := map[string]*Available{}
	var order []string
	fqns := map[string]manifest.FQN{}
	for _, e := range entries {
		r, err := manifest.ParseRef(e.Ref)
		if err != nil || !Remote(r.FQN) {
			continue
		}
		k := r.FQN.String()
		if byFQN[k] == nil {
			byFQN[k] = &Available{Connector: k}
			order = append(order, k)
			fqns[k] = r.FQN
		}
		byFQN[k].Installed = append(byFQN[k].Installed, r.Version)
	}
	sort.Strings(order)
	out := make([]Available, 0, len(order))
	for _, k := range order {
		a := byFQN[k]
		sortVersions(a.Installed)
		vs, err := in.Versions(ctx, fqns[k])
		if err != nil {
			a.Error = err.Error()
		} else {
			a.Newer = Newer(a.Installed[len(a.Installed)-1], vs)
		}
		out = append(out, *a)
	}
	return out, nil
}
