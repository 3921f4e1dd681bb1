package supervisor

import "github.com/hashicorp/go-hclog"

// killNoise are go-plugin messages that only say a child was killed the way
// the supervisor always kills children (SIGKILL, no graceful exit): they are
// demoted to debug so they do not drown real warnings.
var killNoise = map[string]bool{
	"error closing client during Kill": true,
	"plugin failed to exit gracefully": true,
	"plugin process exited":            true,
}

// pluginLogger wraps the logger handed to go-plugin clients.
type pluginLogger struct{ hclog.Logger }

func quietKills(l hclog.Logger) hclog.Logger { return pluginLogger{l} }

func (l pluginLogger) Warn(msg string, args ...any) {
	if killNoise[msg] {
		l.Logger.Debug(msg, args...)
		return
	}
	l.Logger.Warn(msg, args...)
}

func (l pluginLogger) Error(msg string, args ...any) {
	if killNoise[msg] {
		l.Logger.Debug(msg, args...)
		return
	}
	l.Logger.Error(msg, args...)
}

func (l pluginLogger) Named(name string) hclog.Logger { return pluginLogger{l.Logger.Named(name)} }
func (l pluginLogger) ResetNamed(name string) hclog.Logger {
	return pluginLogger{l.Logger.ResetNamed(name)}
}
func (l pluginLogger) With(args ...any) hclog.Logger { return pluginLogger{l.Logger.With(args...)} }
