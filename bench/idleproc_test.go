//go:build linux

package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/edk-go/edk/internal/testutil"
)

// BenchmarkIdleProcess is the issue's own measurement: what one device
// process costs over its whole life (start-up, EDK_IDLE_SECONDS (default
// 30) of 1 Hz telemetry, SIGTERM), bench/baseline against
// examples/inverter (or EDK_COST_EDK_PKG). EDK_IDLE_PROCS (default 3)
// processes of each kind run side by side against one mosquitto, so that
// a change in the machine's load hits both kinds alike; the figure is the
// median of the lifetime CPU time from each process's exit rusage (µs
// resolution; /proc's 10 ms ticks would make a 30 s idle process a one- or
// two-tick figure). Run it with -benchtime=1x.
func BenchmarkIdleProcess(b *testing.B) {
	m := testutil.StartMosquitto(b, testutil.MosquittoOptions{})
	procs := envInt(b, "EDK_IDLE_PROCS", 3)
	life := time.Duration(envInt(b, "EDK_IDLE_SECONDS", 30)) * time.Second
	dir := b.TempDir()
	bins := []struct{ name, path string }{
		{"baseline", buildBinary(b, dir, "baseline", "github.com/edk-go/edk/bench/baseline")},
		{"edk", buildBinary(b, dir, "inverter", edkPackage())},
	}
	cpu := map[string][]time.Duration{}
	for b.Loop() {
		type running struct {
			name string
			proc *deviceProc
		}
		var all []running
		for i := range procs {
			for _, bin := range bins {
				hw := fmt.Sprintf("idle-%s-%d-%d", bin.name, os.Getpid(), costSeq.Add(1))
				p := startDevice(b, bin.path, configBlob(b, m.Addr, hw), filepath.Join(dir, fmt.Sprintf("%s-%d.log", bin.name, i)))
				all = append(all, running{bin.name, p})
			}
		}
		time.Sleep(life) // the figure is of an idle life; nothing to poll for
		for _, r := range all {
			st := r.proc.stop(b)
			if !st.Success() {
				b.Fatalf("%s did not exit cleanly: %s\n%s", r.name, st, r.proc.logTail())
			}
			ru, ok := st.SysUsage().(*syscall.Rusage)
			if !ok {
				b.Fatalf("%s: no rusage", r.name)
			}
			cpu[r.name] = append(cpu[r.name], time.Duration(syscall.TimevalToNsec(ru.Utime)+syscall.TimevalToNsec(ru.Stime)))
		}
	}
	med := func(ds []time.Duration) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[len(s)/2]
	}
	base, edk := med(cpu["baseline"]), med(cpu["edk"])
	b.Logf("lifetime CPU over %v: baseline %v, edk %v", life, cpu["baseline"], cpu["edk"])
	b.ReportMetric(float64(base)/float64(time.Millisecond), "baseline-cpu-ms")
	b.ReportMetric(float64(edk)/float64(time.Millisecond), "edk-cpu-ms")
	b.ReportMetric(float64(edk)/float64(base), "cpu-ratio")
}
