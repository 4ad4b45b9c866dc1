//go:build lua

package luarun

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// benchRuntime loads crowcon_xgard_bright_v3 against a simulated sensor,
// connected, without starting Run's loop (the benchmark drives the jobs).
func benchRuntime(b *testing.B, addr string) *Runtime {
	bp, err := LoadBlueprint(marketplace(&testing.T{}, "blueprints/gas_sensors/crowcon_xgard_bright_v3"))
	if err != nil {
		b.Fatal(err)
	}
	rt, err := New(bp, Options{Sink: &discard{}, Config: map[string]map[string]any{
		"connection": {"address": int64(1), "conn_str": "tcp://" + addr},
	}})
	if err != nil {
		b.Fatal(err)
	}
	rt.ctx = context.Background()
	rt.s.GetGlobal("enapter")
	rt.s.RawGetField(-1, "main")
	if err := rt.s.Call(0, 0, time.Second); err != nil {
		b.Fatal(err)
	}
	rt.s.SetTop(0)
	return rt
}

type discard struct{ sink }

// BenchmarkBlueprintPoll is one telemetry poll of a real blueprint: the
// Lua job, a Modbus TCP read over loopback, float decoding in Lua, the
// telemetry table converted for the device. At 1 Hz, one core hosts about
// 1 s / (ns/op) such blueprints.
func BenchmarkBlueprintPoll(b *testing.B) {
	r := &regs{holdings: map[uint16]uint16{}}
	r.setFloat(1000, 12.5)
	addr, _ := modbusServer(&testing.T{}, r, "")
	rt := benchRuntime(b, addr)
	defer rt.s.Close()
	telemetry := rt.jobs[2]
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		telemetry.next = time.Time{}
		for _, j := range rt.jobs[:2] {
			j.next = time.Now().Add(time.Hour)
		}
		rt.runDue(time.Now())
	}
	b.StopTimer()
	if len(rt.opts.Sink.(*discard).telemetry) == 0 {
		b.Fatal("no telemetry sent")
	}
	b.ReportMetric(float64(rt.s.MemoryUsed()), "lua-bytes")
}

// BenchmarkBlueprintMemory is the memory one loaded blueprint costs (Lua
// state plus Go heap), the bound on how many one process can host.
func BenchmarkBlueprintMemory(b *testing.B) {
	r := &regs{holdings: map[uint16]uint16{}}
	r.setFloat(1000, 12.5)
	addr, _ := modbusServer(&testing.T{}, r, "")
	const n = 50
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rts := make([]*Runtime, n)
	luaBytes := 0
	for i := range rts {
		rts[i] = benchRuntime(b, addr)
		rts[i].runDue(time.Now().Add(time.Hour))
		luaBytes += rts[i].s.MemoryUsed()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	for b.Loop() {
	}
	b.ReportMetric(float64(luaBytes)/n, "lua-bytes/blueprint")
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "go-heap-bytes/blueprint")
	for _, rt := range rts {
		rt.s.Close()
		for _, c := range rt.tcpClients {
			c.shared = false
			c.Close()
		}
	}
}
