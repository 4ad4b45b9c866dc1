package device_test

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

// BenchmarkCommandFlood sends a device 10 000 command requests at once
// (QoS 0, as fast as the client writes) whose handler does not return
// until the flood is over, as a sender far faster than the device would:
// it reports how much the heap and goroutine stacks of the process (the
// device, and the in-process broker and sender) grew by the time every
// request had arrived, with the intake bound off and at its default.
func BenchmarkCommandFlood(b *testing.B) {
	const flood = 10_000
	for _, bc := range []struct {
		name string
		max  int
	}{{"bound=off", -1}, {"bound=default", device.DefaultMaxOpenRequests}} {
		b.Run(bc.name, func(b *testing.B) {
			brk := testutil.StartBroker(b)
			var peak uint64
			for b.Loop() {
				release := make(chan struct{})
				var calls atomic.Int64
				r := startDevice(b, testConfig(b, brk.Addr()), func(d *device.Device) {
					d.Handle("slow", func(ctx context.Context, _ *device.Command) (any, error) {
						calls.Add(1)
						select {
						case <-release:
						case <-ctx.Done():
						}
						return nil, nil
					})
				}, device.WithMaxOpenRequests(bc.max), device.WithLogger(slog.New(slog.DiscardHandler)))
				cloud := testutil.Connect(b, brk.Addr())
				runtime.GC()
				var before runtime.MemStats
				runtime.ReadMemStats(&before)
				topic := mqttapi.Topic{Direction: mqttapi.ToDevice, HardwareID: testHW, ChannelID: testCH, Kind: mqttapi.KindCommandRequests}.String()
				for i := range flood {
					cloud.Publish(topic, 0, false, fmt.Sprintf(`{"id":"f%d","name":"slow"}`, i))
				}
				deadline := time.Now().Add(time.Minute)
				for calls.Load()+int64(r.Stats().RequestsDropped) < flood {
					if time.Now().After(deadline) {
						b.Fatalf("%d handled and %d dropped of %d", calls.Load(), r.Stats().RequestsDropped, flood)
					}
					time.Sleep(time.Millisecond)
				}
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse+ms.StackInuse-before.HeapInuse-before.StackInuse)
				close(release)
				if err := r.stop(b); err != nil {
					b.Fatal(err)
				}
				cloud.Disconnect(0)
			}
			b.ReportMetric(float64(peak)/(1<<20), "MB-grown")
		})
	}
}
