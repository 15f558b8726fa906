package whatsapp

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	waLog "go.mau.fi/whatsmeow/util/log"
)

// slogLogger bridges whatsmeow's logger to log/slog at a quiet level:
// whatsmeow's Debug and Info are chatty protocol detail and go to slog
// Debug; Warn and Error keep their level.
type slogLogger struct {
	log    *slog.Logger
	module string
}

var _ waLog.Logger = (*slogLogger)(nil)

func newSlogLogger(l *slog.Logger) *slogLogger { return &slogLogger{log: l} }

func (l *slogLogger) Sub(module string) waLog.Logger {
	if l.module != "" {
		module = l.module + "/" + module
	}
	return &slogLogger{log: l.log, module: module}
}

// rawNodes reports whether the module logs whole protocol nodes at debug
// level ("Client/Send", "Client/Recv": client.go sendNodeAndGetData). Those
// hold pairing keys and ciphertext, so they are not passed on at all.
func (l *slogLogger) rawNodes() bool {
	return strings.HasSuffix(l.module, "/Send") || strings.HasSuffix(l.module, "/Recv")
}

func (l *slogLogger) Debugf(msg string, args ...any) {
	if !l.rawNodes() {
		l.emit(slog.LevelDebug, msg, args)
	}
}

func (l *slogLogger) Infof(msg string, args ...any) {
	if !l.rawNodes() {
		l.emit(slog.LevelDebug, msg, args)
	}
}

func (l *slogLogger) Warnf(msg string, args ...any)  { l.emit(slog.LevelWarn, msg, args) }
func (l *slogLogger) Errorf(msg string, args ...any) { l.emit(slog.LevelError, msg, args) }

func (l *slogLogger) emit(level slog.Level, msg string, args []any) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	l.log.Log(ctx, level, fmt.Sprintf(msg, args...), "component", "whatsmeow", "module", l.module)
}
