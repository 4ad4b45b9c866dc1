//go:build lua && linux

package luarun

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mb "github.com/simonvetter/modbus"

	"github.com/edk-go/edk/mqttapi"
)

// manyWindow is how long BenchmarkManyBlueprints measures, after every
// instance has sent its first telemetry. Ten seconds is ten polls per
// instance: enough to see a missed second, short enough for CI-sized runs.
const manyWindow = 10 * time.Second

// cadenceSink counts one instance's telemetry and the largest gap between
// two messages, instead of keeping them: at N=1000 a recording sink would
// measure itself.
type cadenceSink struct {
	mu       sync.Mutex
	measure  bool
	count    int // messages while measuring
	last     time.Time
	maxGap   time.Duration // while measuring
	anyTelem bool
}

func (s *cadenceSink) SendTelemetry(context.Context, mqttapi.Telemetry) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.measure {
		s.count++
		if g := now.Sub(s.last); g > s.maxGap {
			s.maxGap = g
		}
	}
	s.last = now
	s.anyTelem = true
	return nil
}

func (s *cadenceSink) SendProperties(context.Context, mqttapi.Properties) error { return nil }
func (s *cadenceSink) SendLog(context.Context, mqttapi.Log) error               { return nil }

func (s *cadenceSink) started() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.anyTelem
}

// setMeasure starts or ends the window; the first gap counted is from the
// message before the window opened.
func (s *cadenceSink) setMeasure(on bool) (count int, maxGap time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.measure = on
	return s.count, s.maxGap
}

// BenchmarkManyBlueprints hosts N instances of Enapter's
// crowcon_xgard_bright_v3, unmodified, in this one process, each its own
// Runtime (Lua state, goroutine, Modbus TCP connection) on the blueprint's
// own 1 Hz telemetry schedule, all polling one in-process Modbus TCP
// simulator on loopback. The sink counts telemetry rather than publishing
// it (the MQTT side is the device runtime's cost, measured elsewhere).
// After every instance has sent once, it measures manyWindow of steady
// state and reports the process's CPU per blueprint-second (rusage; it
// includes the simulator answering each read), RSS per blueprint, the
// telemetry rate achieved against N/s, and how many instances missed their
// cadence (a gap over 1.5 s, or fewer messages than whole seconds minus
// one). Run it with -benchtime=1x: one iteration is the whole measurement.
// EDK_BENCH_BLUEPRINTS=5000,9000 replaces the counts (each instance needs
// two file descriptors here: its connection and the simulator's end).
// Memory one size frees is not all returned to the OS, so a later size's
// RSS per blueprint reads low: give one count per process for that figure.
func BenchmarkManyBlueprints(b *testing.B) {
	counts := []int{10, 100, 1000}
	if env := os.Getenv("EDK_BENCH_BLUEPRINTS"); env != "" {
		counts = nil
		for _, f := range strings.Split(env, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("EDK_BENCH_BLUEPRINTS=%q: want counts like 5000,9000", env)
			}
			counts = append(counts, n)
		}
	}
	for _, n := range counts {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			for range b.N {
				manyBlueprints(b, n)
			}
		})
	}
}

func manyBlueprints(b *testing.B, n int) {
	bp, err := LoadBlueprint(marketplace(&testing.T{}, "blueprints/gas_sensors/crowcon_xgard_bright_v3"))
	if err != nil {
		b.Fatal(err)
	}
	r := &regs{holdings: map[uint16]uint16{}}
	r.setFloat(1000, 12.5)
	addr := manyServer(b, r, n)

	rssBefore := vmRSS(b)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	sinks := make([]*cadenceSink, n)
	t0 := time.Now()
	for i := range sinks {
		sinks[i] = &cadenceSink{}
		rt, err := New(bp, Options{Sink: sinks[i], Config: map[string]map[string]any{
			"connection": {"address": int64(1), "conn_str": "tcp://" + addr},
		}})
		if err != nil {
			b.Fatalf("instance %d: %v", i, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := rt.Run(ctx); err != nil {
				b.Errorf("Run: %v", err)
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range sinks {
		for !s.started() {
			if time.Now().After(deadline) {
				b.Fatal("not every instance sent telemetry within 30 s")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	startup := time.Since(t0)

	b.ResetTimer()
	cpu0 := cpuTime(b)
	w0 := time.Now()
	for _, s := range sinks {
		s.setMeasure(true)
	}
	time.Sleep(manyWindow)
	total, late := 0, 0
	var worstGap time.Duration
	for _, s := range sinks {
		c, g := s.setMeasure(false)
		total += c
		worstGap = max(worstGap, g)
		if g > 1500*time.Millisecond || c < int(manyWindow/time.Second)-1 {
			late++
		}
	}
	wall := time.Since(w0)
	cpu := cpuTime(b) - cpu0
	rssAfter := vmRSS(b)
	b.StopTimer()

	secs := wall.Seconds()
	b.ReportMetric(cpu.Seconds()/(float64(n)*secs), "cpu-s/blueprint-s")
	b.ReportMetric(float64(rssAfter-rssBefore)/float64(n), "rss-bytes/blueprint")
	b.ReportMetric(float64(rssAfter), "rss-bytes")
	b.ReportMetric(float64(total)/secs, "telemetry/s")
	b.ReportMetric(float64(n), "expected-telemetry/s")
	b.ReportMetric(float64(late), "late-instances")
	b.ReportMetric(float64(worstGap.Milliseconds()), "max-gap-ms")
	b.ReportMetric(startup.Seconds(), "startup-s")
}

// manyServer is a Modbus TCP simulator that accepts one connection per
// instance (modbusServer's limit suits the tests, not N=1000).
func manyServer(b *testing.B, r *regs, n int) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	srv, err := mb.NewServer(&mb.ServerConfiguration{URL: "tcp://" + addr, MaxClients: uint(n + 16), Timeout: time.Minute, Logger: log.New(io.Discard, "", 0)}, r)
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Stop() })
	return addr
}

// cpuTime is the user plus system CPU this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// vmRSS is the process's resident set (VmRSS in /proc/self/status), bytes.
func vmRSS(b *testing.B) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				b.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb * 1024
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}
