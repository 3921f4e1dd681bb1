package supervisor

import "path/filepath"

// The layout of $AILERON_HOME. Commands that only read or write one part of
// it (list actions, open the store, read the audit log) use these instead
// of building a Supervisor.

// StoreDir is the content-addressed store of home.
func StoreDir(home string) string { return filepath.Join(home, "store") }

// ActionsDir holds home's installed action files, one per action name.
func ActionsDir(home string) string { return filepath.Join(home, "actions") }

// AuditPath is home's hash-chained audit log, which its broker appends to.
func AuditPath(home string) string { return filepath.Join(home, "audit.jsonl") }
