package broker

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edk-go/edk/internal/logfield"
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
	if closedConnNoise(r) {
		return nil
	}
	return h.next.Handle(ctx, errKey(cutLong(redactPackets(r))))
}

// errKey renames mochi's "error" attribute to "err", the key every other
// edk log line puts its error under, so that one filter finds them all.
func errKey(r slog.Record) slog.Record {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == "error"
		return !found
	})
	if !found {
		return r
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "error" {
			a.Key = "err"
		}
		out.AddAttrs(a)
		return true
	})
	return out
}

// cutLong cuts string attributes longer than logfield.MaxLen: mochi logs
// the client id with most lines, and a client may send 64 KiB of it.
func cutLong(r slog.Record) slog.Record {
	long := false
	r.Attrs(func(a slog.Attr) bool {
		long = a.Value.Kind() == slog.KindString && len(a.Value.String()) > logfield.MaxLen
		return !long
	})
	if !long {
		return r
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if a.Value.Kind() == slog.KindString {
			a.Value = slog.StringValue(logfield.Cut(a.Value.String()))
		}
		out.AddAttrs(a)
		return true
	})
	return out
}

// redactPackets replaces every MQTT packet mochi attaches to a record (a
// CONNECT carries the password, a PUBLISH the payload) with its type and
// topic: a log line must never hold a secret, and payloads are the
// device's data.
func redactPackets(r slog.Record) slog.Record {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		_, found = packetOf(a.Value)
		return !found
	})
	if !found {
		return r
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if pk, ok := packetOf(a.Value); ok {
			s := packets.PacketNames[pk.FixedHeader.Type]
			if pk.TopicName != "" {
				s += " " + pk.TopicName
			}
			a = slog.String(a.Key, s+" (contents not logged)")
		}
		out.AddAttrs(a)
		return true
	})
	return out
}

func packetOf(v slog.Value) (packets.Packet, bool) {
	if v.Kind() != slog.KindAny {
		return packets.Packet{}, false
	}
	switch pk := v.Any().(type) {
	case packets.Packet:
		return pk, true
	case *packets.Packet:
		if pk != nil {
			return *pk, true
		}
	}
	return packets.Packet{}, false
}

// closedConnNoise reports mochi's warning about a write to a connection
// that the client or Close had already shut: routine at disconnect, and
// mochi prints the whole packet with it.
func closedConnNoise(r slog.Record) bool {
	noise := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "error" {
			if err, ok := a.Value.Any().(error); ok && errors.Is(err, net.ErrClosed) {
				noise = true
			} else if strings.Contains(a.Value.String(), "use of closed network connection") {
				noise = true
			}
			return false
		}
		return true
	})
	return noise
}

func (h levelHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return levelHandler{next: h.next.WithAttrs(as), min: h.min}
}

func (h levelHandler) WithGroup(name string) slog.Handler {
	return levelHandler{next: h.next.WithGroup(name), min: h.min}
}
