package member

import (
	"context"
	"fmt"
	"log/slog"
)

// raftLogger is raft's Logger on a slog.Logger. raft's Fatal and Panic
// panic, as raft expects them to (it calls them on broken invariants).
type raftLogger struct{ l *slog.Logger }

func (r raftLogger) logf(level slog.Level, format string, v ...any) {
	if r.l.Enabled(context.Background(), level) {
		r.l.Log(context.Background(), level, fmt.Sprintf(format, v...))
	}
}

func (r raftLogger) Debug(v ...any)                 { r.logf(slog.LevelDebug, "%s", fmt.Sprint(v...)) }
func (r raftLogger) Debugf(format string, v ...any) { r.logf(slog.LevelDebug, format, v...) }
func (r raftLogger) Info(v ...any)                  { r.logf(slog.LevelInfo, "%s", fmt.Sprint(v...)) }
func (r raftLogger) Infof(format string, v ...any)  { r.logf(slog.LevelInfo, format, v...) }
func (r raftLogger) Warning(v ...any)               { r.logf(slog.LevelWarn, "%s", fmt.Sprint(v...)) }
func (r raftLogger) Warningf(format string, v ...any) {
	r.logf(slog.LevelWarn, format, v...)
}
func (r raftLogger) Error(v ...any)                 { r.logf(slog.LevelError, "%s", fmt.Sprint(v...)) }
func (r raftLogger) Errorf(format string, v ...any) { r.logf(slog.LevelError, format, v...) }
func (r raftLogger) Fatal(v ...any)                 { r.Panic(v...) }
func (r raftLogger) Fatalf(format string, v ...any) { r.Panicf(format, v...) }
func (r raftLogger) Panic(v ...any) {
	s := fmt.Sprint(v...)
	r.logf(slog.LevelError, "%s", s)
	panic(s)
}
func (r raftLogger) Panicf(format string, v ...any) {
	s := fmt.Sprintf(format, v...)
	r.logf(slog.LevelError, "%s", s)
	panic(s)
}
