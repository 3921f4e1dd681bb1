package broker

import "aileron.dev/aileron/broker/audit"

// RecordRun implements Control: one audit record per action run, with the
// isolation mode and layers its workers had.
func (s *server) RecordRun(r RunRecord) error {
	cfg, err := s.configured()
	if err != nil {
		return err
	}
	decision := audit.DecisionAllow
	if r.Code != "ok" {
		decision = audit.DecisionDeny
	}
	fields := map[string]any{"isolation": r.Isolation, "layers": r.Layers}
	if len(r.Missing) > 0 {
		fields["missing"] = r.Missing
	}
	if len(r.PeakRSSKiB) > 0 {
		fields["worker_peak_rss_kib"] = r.PeakRSSKiB
	}
	if len(r.PeakMemoryKiB) > 0 {
		fields["worker_peak_memory_kib"] = r.PeakMemoryKiB
	}
	if len(r.CPUMS) > 0 {
		fields["worker_cpu_ms"] = r.CPUMS
	}
	return s.audit.Append(audit.Record{
		Kind: audit.KindRun, Decision: decision, Code: r.Code, Reason: r.Message,
		Tenant: cfg.Tenant, Action: r.Action, RunID: r.RunID, Via: r.Via,
		DurationMS: r.DurationMS, Fields: fields,
	})
}
