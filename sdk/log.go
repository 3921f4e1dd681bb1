package sdk

import (
	"encoding/json"

	"aileron.dev/aileron/sdk/abi"
)

// Logger writes structured records through the host's log import. Records
// end up in the supervisor's log for the run, tagged with the connector and
// intent. Never log secret material; the connector has none to log anyway.
type Logger struct{}

// Debug logs at debug level; kv are alternating keys and values.
func (l *Logger) Debug(msg string, kv ...any) { l.log("debug", msg, kv) }

// Info logs at info level; kv are alternating keys and values.
func (l *Logger) Info(msg string, kv ...any) { l.log("info", msg, kv) }

// Warn logs at warn level; kv are alternating keys and values.
func (l *Logger) Warn(msg string, kv ...any) { l.log("warn", msg, kv) }

// Error logs at error level; kv are alternating keys and values.
func (l *Logger) Error(msg string, kv ...any) { l.log("error", msg, kv) }

func (l *Logger) log(level, msg string, kv []any) {
	rec := abi.LogRecord{Level: level, Msg: msg}
	if len(kv) > 0 {
		rec.Fields = make(map[string]any, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			k, ok := kv[i].(string)
			if !ok {
				k = "!badkey"
			}
			rec.Fields[k] = kv[i+1]
		}
	}
	b, err := json.Marshal(rec)
	if err != nil || len(b) > abi.MaxLogRecordBytes {
		b, _ = json.Marshal(abi.LogRecord{Level: level, Msg: "log record dropped: too large or not encodable"})
	}
	_ = logRecord(b)
}

func auditEmit(ev abi.AuditEvent) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if len(b) > abi.MaxLogRecordBytes {
		return &abi.Error{Code: abi.ErrnoTooLarge.String(), Message: "audit event exceeds the ABI size limit"}
	}
	return audit(b)
}
