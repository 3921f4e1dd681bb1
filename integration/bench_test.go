package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"aileron.dev/aileron/cas"
	"aileron.dev/aileron/manifest"
	"aileron.dev/aileron/sdk/abi"
	"aileron.dev/aileron/supervisor"
	"aileron.dev/aileron/worker"
	"aileron.dev/aileron/worker/host"
)

// benchSetup is an AILERON_HOME with the noop connector installed and a
// one-step action calling it, and a supervisor library instance on it.
type benchSetup struct {
	home   string
	sup    *supervisor.Supervisor
	plan   *supervisor.Plan
	action *manifest.Action
}

func newBenchSetup(tb testing.TB, iso supervisor.Isolation, pool int) *benchSetup {
	return newBenchSetupFor(tb, "noop", "noop", "", iso, pool)
}

// newBenchSetupFor is newBenchSetup for one intent of any packed test
// connector, with an optional [limits] table for the action.
func newBenchSetupFor(tb testing.TB, connector, intent, limits string, iso supervisor.Isolation, pool int, opts ...func(*supervisor.Config)) *benchSetup {
	tb.Helper()
	home := tb.TempDir()
	store, err := cas.Open(filepath.Join(home, "store"))
	require.NoError(tb, err)
	pkg, err := cas.ReadDir(pkgDirs[connector])
	require.NoError(tb, err)
	_, err = store.Put(pkg)
	require.NoError(tb, err)
	m := packages[connector]
	src := limits + `
[action]
name = "bench"
version = "0.1.0"
[[requires.connectors]]
name = "` + m.Connector.Name.String() + `"
version = "` + m.Connector.Version + `"
hash = "` + m.Connector.ProvenanceHash + `"
capabilities = []
[[steps]]
id = "only"
connector = "` + m.Connector.Name.String() + `"
intent = "` + intent + `"
`
	a, err := manifest.ParseAction("bench.toml", []byte(src))
	require.NoError(tb, err)
	cfg := supervisor.Config{
		Home:       home,
		WorkerPath: filepath.Join(binDir, "aileron-worker"),
		BrokerPath: filepath.Join(binDir, "aileron"),
		BrokerArgs: []string{"broker"},
		Isolation:  iso,
		PoolSize:   pool,
	}
	for _, o := range opts {
		o(&cfg)
	}
	sup, err := supervisor.New(cfg)
	require.NoError(tb, err)
	tb.Cleanup(func() { sup.Close() })
	p, err := sup.Prepare(a, nil)
	require.NoError(tb, err)
	// First run: start the broker, compile the module into the cache.
	_, err = sup.RunPlan(context.Background(), p)
	if limits == "" {
		require.NoError(tb, err)
	}
	return &benchSetup{home: home, sup: sup, plan: p, action: a}
}

// noIsolation disables every layer that can be disabled.
var noIsolation = supervisor.Isolation{UnsafeDisable: []string{"userns", "cgroup", "landlock", "seccomp"}}

// latencies runs fn n times and returns the sorted durations.
func latencies(tb testing.TB, n int, fn func() error) []time.Duration {
	tb.Helper()
	out := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		require.NoError(tb, fn())
		out = append(out, time.Since(start))
	}
	slices.Sort(out)
	return out
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(float64(len(d))*p+0.5) - 1
	return d[max(0, min(i, len(d)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// reportLatency adds p50/p90/p99 in milliseconds to a benchmark.
func reportLatency(b *testing.B, d []time.Duration) {
	b.ReportMetric(ms(pct(d, 0.5)), "p50-ms")
	b.ReportMetric(ms(pct(d, 0.9)), "p90-ms")
	b.ReportMetric(ms(pct(d, 0.99)), "p99-ms")
}

// floorRunner is the in-process baseline: the same compiled module run by
// worker/host with no processes at all.
func floorRunner(tb testing.TB, s *benchSetup) func() error {
	tb.Helper()
	inst := s.plan.Connectors[s.action.Steps[0].Connector.String()]
	engine := host.NewEngine()
	// The worker compiled it under its own configuration ID (a test
	// binary's build info differs); read the ID from the cache's sidecar.
	sidecars, err := filepath.Glob(filepath.Join(s.sup.Store().CompiledDir(), inst.Entry.Wasm.Hex()+"-*.json"))
	require.NoError(tb, err)
	require.Len(tb, sidecars, 1)
	var meta struct {
		ConfigID string `json:"config_id"`
	}
	b, err := os.ReadFile(sidecars[0])
	require.NoError(tb, err)
	require.NoError(tb, json.Unmarshal(b, &meta))
	path, err := s.sup.Store().Compiled(inst.Entry.Wasm, meta.ConfigID)
	require.NoError(tb, err)
	mod, err := host.Load(engine, path)
	require.NoError(tb, err)
	r, err := host.NewRunner(engine, mod, []string{abi.CapClocks, abi.CapRandom}, worker.Limits{}, nopServices{}, tb.TempDir())
	require.NoError(tb, err)
	inv, _ := json.Marshal(abi.Invocation{ABI: abi.Version, ID: "bench/only", Attempt: 1, Intent: "noop", Input: json.RawMessage(`{}`)})
	return func() error {
		out, err := r.Invoke(context.Background(), inv)
		if err == nil && !out.Result.OK {
			return out.Result.Error
		}
		return err
	}
}

type nopServices struct{}

func (nopServices) HTTP(context.Context, *abi.HTTPRequest) (*abi.HTTPResponse, error) {
	return nil, &host.CallError{Errno: abi.ErrnoDenied}
}
func (nopServices) Audit(context.Context, *abi.AuditEvent) error { return nil }
func (nopServices) Log(abi.LogRecord)                            {}

func (s *benchSetup) run() error {
	_, err := s.sup.RunPlan(context.Background(), s.plan)
	return err
}

func BenchmarkFloorInProcess(b *testing.B) {
	s := newBenchSetup(b, supervisor.Isolation{}, 0)
	fn := floorRunner(b, s)
	_ = fn()
	b.ResetTimer()
	reportLatency(b, latencies(b, b.N, fn))
}

func BenchmarkRunCold(b *testing.B) {
	s := newBenchSetup(b, supervisor.Isolation{}, 0)
	b.ResetTimer()
	reportLatency(b, latencies(b, b.N, s.run))
}

func BenchmarkRunColdNoIsolation(b *testing.B) {
	s := newBenchSetup(b, noIsolation, 0)
	b.ResetTimer()
	reportLatency(b, latencies(b, b.N, s.run))
}

func BenchmarkRunWarmPool(b *testing.B) {
	s := newBenchSetup(b, supervisor.Isolation{}, 4)
	b.ResetTimer()
	var d []time.Duration
	for i := 0; i < b.N; i++ {
		// Let the pool refill, as it would between requests; not timed.
		b.StopTimer()
		s.sup.WaitPoolReady(context.Background())
		b.StartTimer()
		d = append(d, latencies(b, 1, s.run)...)
	}
	slices.Sort(d)
	reportLatency(b, d)
}

// BenchmarkThroughput runs cold invocations from 2 and 8 concurrent
// callers and reports invocations per second and the machine CPU time each
// cost: with C cores, C÷(CPU per run) bounds the rate whatever the
// concurrency.
func BenchmarkThroughput(b *testing.B) {
	s := newBenchSetup(b, supervisor.Isolation{}, 0)
	for _, callers := range []int{2, 8} {
		b.Run("callers="+itoa(callers), func(b *testing.B) {
			before := cpuTime(b)
			b.ResetTimer()
			rate := throughput(b, s, callers, b.N)
			b.StopTimer()
			b.ReportMetric(rate, "runs/s")
			b.ReportMetric(ms(cpuTime(b)-before)/float64(b.N), "cpu-ms/run")
		})
	}
}

// cpuTime is the machine's busy CPU time so far (/proc/stat, all CPUs):
// the supervisor, its workers, the broker and the kernel's work for them,
// and whatever else runs, which makes a run's figure an upper bound.
func cpuTime(tb testing.TB) time.Duration {
	b, err := os.ReadFile("/proc/stat")
	require.NoError(tb, err)
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	require.Greater(tb, len(f), 8, "/proc/stat: %q", line)
	var busy int64
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		require.NoError(tb, err)
		if i != 3 && i != 4 && i < 8 { // not idle, not iowait; no guest time (counted in user)
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / 100 // USER_HZ
}

// throughput runs n invocations from callers goroutines and returns
// invocations per second.
func throughput(tb testing.TB, s *benchSetup, callers, n int) float64 {
	var wg sync.WaitGroup
	work := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		work <- struct{}{}
	}
	close(work)
	start := time.Now()
	errs := make(chan error, n)
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				if err := s.run(); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(tb, err)
	}
	return float64(n) / time.Since(start).Seconds()
}

// TestPerformanceReport is the benchmark driver behind `make bench`: it
// measures every figure of docs/PERFORMANCE.md in one run, so the ratios
// compare numbers taken on the same machine at the same time. It is skipped
// unless AILERON_BENCH=1.
func TestPerformanceReport(t *testing.T) {
	if os.Getenv("AILERON_BENCH") != "1" {
		t.Skip("set AILERON_BENCH=1 (make bench) to run the performance report")
	}
	n := 60
	floorS := newBenchSetup(t, supervisor.Isolation{}, 0)
	floor := floorRunner(t, floorS)
	_ = floor()
	cold := floorS
	bare := newBenchSetup(t, noIsolation, 0)
	pooled := newBenchSetup(t, supervisor.Isolation{}, 2)

	type row struct {
		name string
		d    []time.Duration
	}
	var rows []row
	// Interleave the measured paths so machine noise hits them alike.
	var dFloor, dCold, dBare, dPool []time.Duration
	// Each measurement starts from rest: the previous run's workers torn
	// down, the pool full. Throughput below measures the loaded case.
	settle := func() {
		for _, s := range []*benchSetup{cold, bare, pooled} {
			s.sup.WaitPoolReady(context.Background())
		}
	}
	for i := 0; i < n; i++ {
		settle()
		dFloor = append(dFloor, latencies(t, 1, floor)...)
		settle()
		dCold = append(dCold, latencies(t, 1, cold.run)...)
		settle()
		dBare = append(dBare, latencies(t, 1, bare.run)...)
		settle()
		dPool = append(dPool, latencies(t, 1, pooled.run)...)
	}
	for _, d := range [][]time.Duration{dFloor, dCold, dBare, dPool} {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	}
	rows = append(rows, row{"(a) floor: in-process instantiate + run", dFloor},
		row{"(b) cold run, full isolation", dCold},
		row{"    cold run, isolation disabled", dBare},
		row{"(c) warm pool, full isolation", dPool})
	t.Logf("%-42s %8s %8s %8s %8s", "n="+itoa(n), "p50 ms", "p90 ms", "p99 ms", "÷floor")
	for _, r := range rows {
		t.Logf("%-42s %8.2f %8.2f %8.2f %8.1f", r.name, ms(pct(r.d, .5)), ms(pct(r.d, .9)), ms(pct(r.d, .99)), float64(pct(r.d, .5))/float64(pct(dFloor, .5)))
	}
	t.Logf("isolation adds %.2f ms to a cold run (p50, same run)", ms(pct(dCold, .5)-pct(dBare, .5)))
	for _, c := range []int{2, 8} {
		t.Logf("(d) cold, %d concurrent callers: %.0f invocations/s", c, throughput(t, cold, c, 120))
	}
	for _, c := range []int{2, 8} {
		t.Logf("(d) warm pool of 2, %d concurrent callers: %.0f invocations/s", c, throughput(t, pooled, c, 120))
	}

	// (e) Peak resident memory and CPU time of each worker, from the run
	// records.
	require.NoError(t, cold.sup.Close())
	require.NoError(t, bare.sup.Close())
	rss, charged, cpuFull := workerStats(t, cold.home)
	_, _, cpuBare := workerStats(t, bare.home)
	t.Logf("(e) worker peak RSS (VmHWM, shared pages included) over %d workers: median %.1f MiB, max %.1f MiB", len(rss), rss[len(rss)/2]/1024, rss[len(rss)-1]/1024)
	t.Logf("    worker memory charged to its cgroup at peak: median %.1f MiB, max %.1f MiB", charged[len(charged)/2]/1024, charged[len(charged)-1]/1024)
	t.Logf("    worker CPU time (user+sys) per run: median %.1f ms with full isolation, %.1f ms without", cpuFull[len(cpuFull)/2], cpuBare[len(cpuBare)/2])

	// (f) How far past its deadline a spinning connector runs: in the
	// worker (epoch interruption) and end to end (the supervisor sees the
	// failure).
	const deadline = 200 * time.Millisecond
	spin := newBenchSetupFor(t, "noop", "spin", "[limits]\ndeadline = \"200ms\"\n", supervisor.Isolation{}, 1)
	var over []time.Duration
	for i := 0; i < 10; i++ {
		spin.sup.WaitPoolReady(context.Background())
		start := time.Now()
		_, err := spin.sup.RunPlan(context.Background(), spin.plan)
		require.ErrorContains(t, err, "deadline exceeded")
		over = append(over, time.Since(start)-deadline)
	}
	slices.Sort(over)
	t.Logf("(f) spinning connector with a 200 ms deadline: run returned %.1f ms (p50) / %.1f ms (max) after the deadline, including binding a pooled worker", ms(pct(over, .5)), ms(over[len(over)-1]))
}

// workerStats returns the sorted peak RSS (KiB), peak charged cgroup memory
// (KiB) and CPU time (ms) of every worker in a home's run records.
func workerStats(tb testing.TB, home string) (rss, charged, cpu []float64) {
	for _, rec := range readAudit(tb, home) {
		if rec["kind"] != "run" {
			continue
		}
		f := rec["fields"].(map[string]any)
		for key, out := range map[string]*[]float64{"worker_peak_rss_kib": &rss, "worker_peak_memory_kib": &charged, "worker_cpu_ms": &cpu} {
			if v, ok := f[key].([]any); ok {
				for _, x := range v {
					n, _ := x.(json.Number).Float64()
					*out = append(*out, n)
				}
			}
		}
	}
	slices.Sort(rss)
	slices.Sort(charged)
	slices.Sort(cpu)
	require.NotEmpty(tb, rss)
	require.NotEmpty(tb, cpu)
	if len(charged) == 0 {
		charged = []float64{0}
	}
	return rss, charged, cpu
}

func readAudit(tb testing.TB, home string) []map[string]any {
	b, err := os.ReadFile(filepath.Join(home, "audit.jsonl"))
	require.NoError(tb, err)
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		var r map[string]any
		require.NoError(tb, dec.Decode(&r))
		out = append(out, r)
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

func supIsolationDefault() supervisor.Isolation { return supervisor.Isolation{} }
