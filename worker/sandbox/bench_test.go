//go:build linux

package sandbox

import (
	"slices"
	"testing"
	"time"
)

// BenchmarkSpawn measures what SpawnConfig.Apply adds to starting a worker:
// the test binary is started as a trivial child (exec, Go runtime start,
// exit 0) plainly and with each spawn configuration, interleaved, at least
// 30 times each. It reports the medians and their ratio to the plain spawn
// measured in the same run:
//
//	go test -run '^$' -bench BenchmarkSpawn -benchtime 30x ./worker/sandbox/
func BenchmarkSpawn(b *testing.B) {
	requireRoot(b)
	requireNamespaces(b)
	configs := []struct {
		name, helper string
		spawn        *SpawnConfig
	}{
		{"plain", "exit0", nil},
		{"setuid", "exit0", &SpawnConfig{}},                     // Apply without namespaces: new uid, session
		{"namespaces", "exit0", &SpawnConfig{Namespaces: true}}, // the strict default
		// The whole worker-side cost too: Init (fresh /proc, rlimits,
		// capabilities via libpsx) and Lockdown (Landlock, seccomp).
		{"namespaces+lockdown", "lockdown-exit", &SpawnConfig{Namespaces: true}},
	}
	n := max(b.N, 30)
	samples := make([][]time.Duration, len(configs))
	helperBinary(b) // copy outside the timing
	b.ResetTimer()
	for range n {
		for i, c := range configs {
			cmd := helperCmd(b, c.helper, c.spawn, "")
			start := time.Now()
			if err := cmd.Run(); err != nil {
				b.Fatalf("%s: %v", c.name, err)
			}
			samples[i] = append(samples[i], time.Since(start))
		}
	}
	b.StopTimer()
	median := func(d []time.Duration) float64 {
		s := slices.Clone(d)
		slices.Sort(s)
		return float64(s[len(s)/2]) / float64(time.Millisecond)
	}
	plain := median(samples[0])
	for i, c := range configs {
		m := median(samples[i])
		b.ReportMetric(m, c.name+"-median-ms")
		if i > 0 {
			b.ReportMetric(m/plain, c.name+"/plain")
		}
	}
	b.ReportMetric(float64(n), "samples")
}

func init() {
	helpers["lockdown-exit"] = func(string) int {
		if err := Init(InitConfig{}); err != nil {
			return fail("Init: %v", err)
		}
		if _, err := Lockdown(LockdownConfig{Landlock: LandlockBestEffort}); err != nil {
			return fail("Lockdown: %v", err)
		}
		return 0
	}
}
