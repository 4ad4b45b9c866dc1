package buffer_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/edk-go/edk/buffer"
)

// BenchmarkPut measures keeping one 200-byte telemetry message: one SQLite
// transaction in WAL mode, synchronous=NORMAL.
func BenchmarkPut(b *testing.B) {
	buf, err := buffer.Open(b.TempDir(), buffer.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer buf.Close()
	m := buffer.Message{Topic: "v1/from/hw/primary/v1/telemetry", QoS: 1, Payload: bytes.Repeat([]byte("x"), 200)}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := buf.Put(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPeekAck measures taking messages out in the forwarder's batches
// of 64: one Peek and one Ack per batch, per message reported.
func BenchmarkPeekAck(b *testing.B) {
	buf, err := buffer.Open(b.TempDir(), buffer.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer buf.Close()
	m := buffer.Message{Topic: "v1/from/hw/primary/v1/telemetry", QoS: 1, Payload: bytes.Repeat([]byte("x"), 200)}
	ctx := context.Background()
	ids := make([]int64, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		for range 64 {
			if err := buf.Put(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		msgs, err := buf.Peek(ctx, 64)
		if err != nil || len(msgs) != 64 {
			b.Fatalf("peek: %d, %v", len(msgs), err)
		}
		ids = ids[:0]
		for _, m := range msgs {
			ids = append(ids, m.ID)
		}
		if err := buf.Ack(ctx, ids); err != nil {
			b.Fatal(err)
		}
	}
}
