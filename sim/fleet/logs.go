package fleet

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// errorLog is the slog handler every simulated device logs to. A fleet of
// 10 000 devices cannot print each one's lines, so it counts the warnings
// and errors, remembers the last one, and tells apart connections that the
// broker closed before answering CONNECT: that is what a hub over its
// connection caps does (it closes them at accept), and it needs its own hint.
type errorLog struct {
	errors  atomic.Uint64
	closed  atomic.Uint64 // connect attempts the broker closed unanswered
	refused atomic.Uint64 // connect attempts nobody accepted (nothing listens)

	mu   sync.Mutex
	last string
	// next, when set, also gets every record (--log-level on the command line).
	next slog.Handler
}

func (h *errorLog) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || (h.next != nil && h.next.Enabled(ctx, l))
}

func (h *errorLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.count(r)
	}
	if h.next != nil && h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

// WithAttrs drops the attributes (each device adds its hardware id): the
// counts are the fleet's, and the last message is enough to say what failed.
func (h *errorLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *errorLog) WithGroup(string) slog.Handler      { return h }

func (h *errorLog) count(r slog.Record) {
	h.errors.Add(1)
	var cause error
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "error" || a.Key == "err" {
			if e, ok := a.Value.Any().(error); ok {
				cause = e
			}
			b.WriteString(": ")
			b.WriteString(a.Value.String())
		}
		return true
	})
	if strings.HasPrefix(r.Message, "cannot connect") {
		switch {
		case isRefused(cause):
			h.refused.Add(1)
		case isClosed(cause):
			h.closed.Add(1)
		}
	}
	h.mu.Lock()
	h.last = b.String()
	h.mu.Unlock()
}

func (h *errorLog) lastError() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

func isRefused(err error) bool {
	return err != nil && (errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connection refused"))
}

// isClosed reports a connection that the far end closed before it answered:
// paho sees EOF or a reset while it waits for CONNACK.
func isClosed(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "EOF") || strings.Contains(s, "connection reset") || strings.Contains(s, "broken pipe")
}
