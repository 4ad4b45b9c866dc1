package device

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/edk-go/edk/mqttapi"
)

const logQueueSize = 256

// publishingHandler passes every record on to next and also queues those at
// level and above for v3/logs. It never blocks: when the queue is full
// (offline, or a burst) the record is only logged locally.
type publishingHandler struct {
	next  slog.Handler
	level slog.Level
	queue chan<- mqttapi.Log
	attrs []slog.Attr
}

func (h *publishingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level || h.next.Enabled(ctx, l)
}

func (h *publishingHandler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if h.next.Enabled(ctx, r.Level) {
		err = h.next.Handle(ctx, r)
	}
	if r.Level >= h.level {
		select {
		case h.queue <- mqttapi.Log{Timestamp: r.Time.Unix(), Message: h.format(r), Severity: severity(r.Level)}:
		default:
		}
	}
	return err
}

// format renders the message with its attributes, skipping the ids that
// every record of this device carries anyway.
func (h *publishingHandler) format(r slog.Record) string {
	var b strings.Builder
	b.WriteString(r.Message)
	write := func(a slog.Attr) bool {
		if a.Key == "hardware_id" || a.Key == "channel_id" {
			return true
		}
		b.WriteString(" ")
		b.WriteString(a.Key)
		b.WriteString("=")
		b.WriteString(a.Value.Resolve().String())
		return true
	}
	for _, a := range h.attrs {
		write(a)
	}
	r.Attrs(write)
	return b.String()
}

func (h *publishingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(attrs)
	c.attrs = append(append([]slog.Attr{}, h.attrs...), attrs...)
	return &c
}

func (h *publishingHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}

func severity(l slog.Level) mqttapi.Severity {
	switch {
	case l >= slog.LevelError:
		return mqttapi.SeverityError
	case l >= slog.LevelWarn:
		return mqttapi.SeverityWarning
	case l >= slog.LevelInfo:
		return mqttapi.SeverityInfo
	}
	return mqttapi.SeverityDebug
}

// publishLogs drains the log queue to v3/logs until ctx is done. Failures
// are dropped silently: logging them would feed the queue again.
func (d *Device) publishLogs(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case l := <-d.logQueue:
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			_ = d.SendLog(pctx, l)
			cancel()
		}
	}
}
