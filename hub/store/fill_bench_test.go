package store

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"
)

// BenchmarkAppendTelemetryFilled measures whether ingest slows down as the
// telemetry table grows: 1 000 devices send one 10-value message a second
// each, written 100 messages (100 devices) a transaction as hub/ingest
// writes them; the table is first filled with EDK_BENCH_FILL_VALUES values
// (default 3 000 000) the same way, and the rate of the first and of the
// last tenth of that fill is reported next to the rate measured after it
// (-v logs every tenth). The first tenth is cheaper: until each device has
// a page of rows of its own, one page holds several devices' rows.
func BenchmarkAppendTelemetryFilled(b *testing.B) {
	ctx := context.Background()
	const (
		devices = 1000
		batch   = 100
		attrs   = 10
	)
	fill := 3_000_000
	if v := os.Getenv("EDK_BENCH_FILL_VALUES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("EDK_BENCH_FILL_VALUES: %v", err)
		}
		fill = n
	}
	s := openTemp(b)
	ids := make([]string, devices)
	for i := range ids {
		ids[i] = mkDevice(b, s, i).ID
	}
	samples := make([]Sample, batch)
	for i := range samples {
		samples[i].Values = make(map[string]json.RawMessage, attrs)
	}
	msg := 0 // messages written so far; message m is device m%devices at second m/devices
	next := func() {
		for i := range samples {
			sm := &samples[i]
			sm.DeviceID = ids[msg%devices]
			sm.Time = t0.Add(time.Duration(msg/devices) * time.Second)
			for j := range attrs {
				sm.Values[fmt.Sprintf("attribute_%d", j)] = json.RawMessage(fmt.Sprintf("%d.%d", msg, j))
			}
			msg++
		}
		if _, err := s.AppendTelemetry(ctx, samples); err != nil {
			b.Fatal(err)
		}
	}
	batches := fill / (batch * attrs)
	tenth := max(batches/10, 1)
	var first, second, last float64
	for i := 0; i < batches; {
		start := time.Now()
		n := min(tenth, batches-i)
		for range n {
			next()
		}
		i += n
		rate := float64(n*batch*attrs) / time.Since(start).Seconds()
		switch {
		case first == 0:
			first = rate
		case second == 0:
			second = rate
		}
		last = rate
		b.Logf("after %d values: %.0f values/s", i*batch*attrs, rate)
	}
	b.ResetTimer()
	for b.Loop() {
		next()
	}
	b.ReportMetric(float64(b.N*batch*attrs)/b.Elapsed().Seconds(), "values/s")
	b.ReportMetric(first, "fill-first-tenth-values/s")
	b.ReportMetric(second, "fill-second-tenth-values/s")
	b.ReportMetric(last, "fill-last-tenth-values/s")
}
