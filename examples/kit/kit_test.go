package kit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The Makefile and BuildWorker must build the same worker and drop the
// same linker notices: the integration tests' fallback build and the
// escape-probe worker use BuildWorker.
func TestMakefileBuildsWorkerLikeBuildWorker(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(RepoRoot(), "Makefile"))
	require.NoError(t, err)
	vars := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if name, value, ok := strings.Cut(line, " := "); ok {
			vars[name] = value
		}
	}
	require.Equal(t, `-tags `+WorkerTags+` -ldflags "`+WorkerLDFlags+`"`, vars["WORKER_FLAGS"])
	unescaped := strings.NewReplacer(`\#`, `#`, `$$`, `$`).Replace(vars["STATIC_LINK_NOTICES"])
	require.Equal(t, StaticLinkNotices, unescaped)
	require.Contains(t, string(b), "$(WORKER_FLAGS) -o $(BIN)/aileron-worker ./cmd/aileron-worker")
}

func TestStaticLinkNotices(t *testing.T) {
	for _, line := range []string{
		"# aileron.dev/aileron/cmd/aileron-worker",
		"/usr/bin/ld: /x/libwasmtime.a(wasmtime.o): in function `directories_next::ProjectDirs::from':",
		"wasmtime.o:(.text+0x5c8): warning: Using 'getpwuid_r' in statically linked applications requires at runtime the shared libraries from the glibc version used for linking",
		"/usr/bin/ld: /x/libwasmtime.a(wasmtime.o): in function `<std::sys::net::connection::socket::LookupHost as core::convert::TryFrom<(&str,u16)>>::try_from::{{closure}}':",
		"mod.rs:332: warning: Using 'getaddrinfo' in statically linked applications requires at runtime the shared libraries from the glibc version used for linking",
		"/usr/bin/ld: /x/libwasmtime.a(jitprofiling.o): in function `loadiJIT_Funcs':",
		"jitprofiling.c:(.text+0x60): warning: Using 'dlopen' in statically linked applications requires at runtime the shared libraries from the glibc version used for linking",
	} {
		require.True(t, staticLinkNotices.MatchString(line), line)
	}
	for _, line := range []string{
		"x.c:(.text+0x1): warning: Using 'gethostbyname' in statically linked applications requires at runtime the shared libraries",
		"/usr/bin/ld: x.o: in function `main': undefined reference to `nowhere'",
		"# aileron.dev/aileron/cmd/aileron",
	} {
		require.False(t, staticLinkNotices.MatchString(line), line)
	}
}
