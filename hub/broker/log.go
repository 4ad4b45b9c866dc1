package broker

import (
	"context"
	"log/slog"
)

// levelHandler drops records below min before they reach next. mochi logs
// every attached hook, listener and client at Info/Debug; an embedding program
// only wants its warnings and errors.
type levelHandler struct {
	next slog.Handler
	min  slog.Level
}

func minLevel(next slog.Handler, min slog.Level) slog.Handler {
	return levelHandler{next: next, min: min}
}

func (h levelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.next.Enabled(ctx, l)
}

func (h levelHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.next.Handle(ctx, r)
}

func (h levelHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return levelHandler{next: h.next.WithAttrs(as), min: h.min}
}

func (h levelHandler) WithGroup(name string) slog.Handler {
	return levelHandler{next: h.next.WithGroup(name), min: h.min}
}
