package abi

import "sort"

// WASIModule is the import module of WASI preview 1.
const WASIModule = "wasi_snapshot_preview1"

// Import is one function import of a module: module and name.
type Import struct {
	Module string `json:"module"`
	Name   string `json:"name"`
}

// String returns "module.name".
func (i Import) String() string { return i.Module + "." + i.Name }

// Capability IDs a manifest may list in [capabilities.runtime] imports. Each
// grants exactly the function imports listed for it in [ImportTable].
const (
	// CapHTTP grants outgoing HTTP through the broker. The name is the one
	// the product specification uses.
	CapHTTP = "wasi:http/outgoing-handler"
	// CapLog grants structured logging.
	CapLog = "aileron:log"
	// CapAudit grants appending connector events to the audit log.
	CapAudit = "aileron:audit"
	// CapClocks grants reading wall-clock and monotonic time.
	CapClocks = "wasi:clocks"
	// CapRandom grants random bytes.
	CapRandom = "wasi:random"
)

// BaseImports are linked for every connector without a declaration: what a
// WASI command needs to read its stdin, write its stdout and stderr, and exit.
// None of them reaches anything outside the instance: there are no preopened
// directories, the environment and arguments are empty, and poll_oneoff only
// sleeps (there are no sockets or files to poll).
var BaseImports = []Import{
	{WASIModule, "args_get"},
	{WASIModule, "args_sizes_get"},
	{WASIModule, "environ_get"},
	{WASIModule, "environ_sizes_get"},
	{WASIModule, "fd_read"},
	{WASIModule, "fd_write"},
	{WASIModule, "fd_close"},
	{WASIModule, "fd_fdstat_get"},
	{WASIModule, "fd_fdstat_set_flags"},
	{WASIModule, "fd_prestat_get"},      // always EBADF: no preopens
	{WASIModule, "fd_prestat_dir_name"}, // always EBADF: no preopens
	{WASIModule, "proc_exit"},
	{WASIModule, "sched_yield"},
	{WASIModule, "poll_oneoff"}, // Go's scheduler sleeps through it
}

// ImportTable maps each capability ID to the imports it grants. It is data,
// one entry per line; docs/ABI.md prints the same table.
var ImportTable = map[string][]Import{
	CapHTTP:   {{ModuleName, FuncHTTPSend}, {ModuleName, FuncResultRead}},
	CapLog:    {{ModuleName, FuncLog}},
	CapAudit:  {{ModuleName, FuncAuditEmit}},
	CapClocks: {{WASIModule, "clock_time_get"}, {WASIModule, "clock_res_get"}},
	CapRandom: {{WASIModule, "random_get"}},
}

// CapabilityIDs returns the known capability IDs, sorted.
func CapabilityIDs() []string {
	ids := make([]string, 0, len(ImportTable))
	for id := range ImportTable {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Granted returns the set of imports a module may have when the manifest
// declares caps: the base imports plus each capability's imports. Unknown
// capability IDs grant nothing (the manifest parser rejects them earlier).
func Granted(caps []string) map[Import]string {
	g := make(map[Import]string, len(BaseImports)+8)
	for _, imp := range BaseImports {
		g[imp] = "base"
	}
	for _, c := range caps {
		for _, imp := range ImportTable[c] {
			g[imp] = c
		}
	}
	return g
}

// CapabilityFor returns the capability ID that grants imp, if any, so an
// error about an undeclared import can say what to declare.
func CapabilityFor(imp Import) (string, bool) {
	for _, id := range CapabilityIDs() {
		for _, g := range ImportTable[id] {
			if g == imp {
				return id, true
			}
		}
	}
	return "", false
}
