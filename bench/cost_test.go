//go:build linux

// The cost benchmark reads /proc and Linux's rusage, so it is Linux-only,
// like the devices it is meant to describe.

package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/internal/testutil"
)

const (
	// defaultCostCommands is how many set_power commands each run pipelines:
	// enough that the command phase dominates the CPU read in it (see
	// clockTicksPerSecond for the resolution).
	defaultCostCommands = 5000
	// costWindow bounds the requests in flight. Without a bound the device
	// would be measured queueing thousands of messages (and mosquitto would
	// drop beyond max_queued_messages); with one, both devices see the same
	// steady pipelined load.
	costWindow = 200
	// costRuns is how many times each binary runs per comparison; the
	// median of each figure is reported, which removes a slow outlier.
	costRuns = 5
	// clockTicksPerSecond is USER_HZ, the unit of utime and stime in
	// /proc/<pid>/stat. It is a fixed 100 in the kernel ABI on every
	// architecture Go supports on Linux (getconf CLK_TCK says so); reading
	// it with sysconf would need cgo or golang.org/x/sys, which this module
	// does not have. The resolution is therefore 10 ms per reading, about
	// 7% of a 5000-command phase at 30 µs/command: raise the command count
	// (EDK_COST_COMMANDS) for finer figures.
	clockTicksPerSecond = 100
	// costChannel is the channel id both devices use.
	costChannel = "primary"
	// Bounds on each phase, so that a broken device fails the benchmark
	// instead of hanging it.
	startupTimeout  = 15 * time.Second
	commandsTimeout = 2 * time.Minute
	stopTimeout     = 15 * time.Second
)

var costCommandsFlag = flag.Int("cost.commands", 0,
	"set_power commands per run in BenchmarkCost (default EDK_COST_COMMANDS or 5000)")

// costCommands returns the command count: the -cost.commands flag, else
// EDK_COST_COMMANDS, else defaultCostCommands.
func costCommands(b *testing.B) int {
	if *costCommandsFlag > 0 {
		return *costCommandsFlag
	}
	if s := os.Getenv("EDK_COST_COMMANDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("EDK_COST_COMMANDS=%q: want a positive integer", s)
		}
		return n
	}
	return defaultCostCommands
}

// costSample is what one run of one binary measured.
type costSample struct {
	startup   time.Duration // process start to first properties message
	cmdCPU    time.Duration // user+sys CPU during the command phase
	cmdWall   time.Duration // wall time of the command phase
	totalCPU  time.Duration // user+sys CPU of the whole process lifetime
	maxRSS    int64         // peak resident set (VmHWM), bytes
	commands  int
	exitState string
}

func (s costSample) cpuPerCmd() time.Duration  { return s.cmdCPU / time.Duration(s.commands) }
func (s costSample) wallPerCmd() time.Duration { return s.cmdWall / time.Duration(s.commands) }

// BenchmarkCost compares the inverter on the edk runtime with the bare paho
// device in bench/baseline, side by side against one mosquitto: start-up
// time to the first properties message, CPU time per pipelined command and
// peak RSS. One b.N iteration is one full comparison (costRuns runs of each
// binary, interleaved); run it with -benchtime=1x. Its ns/op means nothing;
// the reported metrics are the result.
func BenchmarkCost(b *testing.B) {
	m := testutil.StartMosquitto(b, testutil.MosquittoOptions{}) // skips without mosquitto
	n := costCommands(b)

	// Build once, outside the measured runs: both are ordinary `go build`
	// binaries, as a user would deploy them.
	dir := b.TempDir()
	bins := []struct{ name, path string }{
		{"baseline", buildBinary(b, dir, "baseline", "github.com/edk-go/edk/bench/baseline")},
		{"edk", buildBinary(b, dir, "inverter", edkPackage())},
	}

	ctrl := testutil.Connect(b, m.Addr)
	samples := map[string][]costSample{}
	for b.Loop() {
		for run := range costRuns {
			// Alternate which binary goes first, so that a drift in the
			// machine's load (or a warm page cache) favours neither.
			order := []int{0, 1}
			if run%2 == 1 {
				order = []int{1, 0}
			}
			for _, i := range order {
				s := runDevice(b, ctrl, m.Addr, bins[i].name, bins[i].path, n)
				samples[bins[i].name] = append(samples[bins[i].name], s)
			}
		}
	}
	reportCost(b, n, samples["baseline"], samples["edk"])
}

// edkPackage is the edk side of the comparison: examples/inverter, or the
// import path in EDK_COST_EDK_PKG, so that a variant (one built with
// profiling, or with a runtime change under test) can be measured against
// the same baseline without editing this file.
func edkPackage() string {
	if p := os.Getenv("EDK_COST_EDK_PKG"); p != "" {
		return p
	}
	return "github.com/edk-go/edk/examples/inverter"
}

// buildBinary builds pkg into dir/name with the go command that runs this
// test, so both binaries come from the same toolchain.
func buildBinary(b *testing.B, dir, name, pkg string) string {
	b.Helper()
	out := filepath.Join(dir, name)
	cmd := exec.Command(goTool(), "build", "-o", out, pkg)
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build %s: %v\n%s", pkg, err, msg)
	}
	return out
}

// goTool finds the go command: $GOROOT/bin/go of the running toolchain
// when `go test` set GOROOT, else the one on PATH.
func goTool() string {
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); fileExists(p) {
			return p
		}
	}
	return "go"
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

var costSeq atomic.Int64

// runDevice starts the binary at path as a device of the broker at addr,
// times its start-up, pipelines n set_power commands through ctrl, stops it
// with SIGTERM and returns what it cost.
func runDevice(b *testing.B, ctrl mqtt.Client, addr, name, path string, n int) costSample {
	b.Helper()
	// A fresh hardware id per run: no retained state, no stale subscription
	// and no response from an earlier run can be mistaken for this one's.
	hw := fmt.Sprintf("cost-%s-%d-%d", name, os.Getpid(), costSeq.Add(1))
	from := "v1/from/" + hw + "/" + costChannel + "/"
	reqTopic := "v1/to/" + hw + "/" + costChannel + "/v1/command/requests"

	// Subscribe before the process exists, so that its first properties
	// message cannot be missed. Both topics are watched: Enapter's Python
	// SDK publishes properties on v1/register.
	firstProps := make(chan time.Time, 1)
	onProps := func(mqtt.Client, mqtt.Message) {
		select {
		case firstProps <- time.Now():
		default: // only the first one counts
		}
	}
	resp := newResponseCounter(n)
	subs := map[string]mqtt.MessageHandler{
		from + "v1/properties":        onProps,
		from + "v1/register":          onProps,
		from + "v1/command/responses": resp.onMessage,
	}
	for topic, h := range subs {
		if err := testutil.Wait(ctrl.Subscribe(topic, 1, h)); err != nil {
			b.Fatalf("subscribe to %s: %v", topic, err)
		}
	}
	defer func() {
		topics := make([]string, 0, len(subs))
		for t := range subs {
			topics = append(topics, t)
		}
		_ = testutil.Wait(ctrl.Unsubscribe(topics...))
	}()

	proc := startDevice(b, path, configBlob(b, addr, hw), filepath.Join(b.TempDir(), name+".log"))

	// Phase 1: start-up.
	var s costSample
	select {
	case t := <-firstProps:
		s.startup = t.Sub(proc.started)
	case <-proc.exited:
		b.Fatalf("%s exited during start-up (%s)\n%s", name, proc.cmd.ProcessState, proc.logTail())
	case <-time.After(startupTimeout):
		b.Fatalf("%s: no properties message within %v\n%s", name, startupTimeout, proc.logTail())
	}

	// Phase 2: n pipelined commands. The device subscribed to requests before
	// it published properties (both do), so none of these can be lost.
	cpu0 := proc.cpuTime(b)
	t0 := time.Now()
	deadline := time.After(commandsTimeout)
	for i := range n {
		select {
		case resp.window <- struct{}{}:
		case <-resp.failed:
			b.Fatalf("%s: %v", name, resp.err())
		case <-proc.exited:
			b.Fatalf("%s exited during the command phase (%s)\n%s", name, proc.cmd.ProcessState, proc.logTail())
		case <-deadline:
			b.Fatalf("%s: %d of %d commands answered after %v", name, resp.completed.Load(), n, commandsTimeout)
		}
		// Not waiting for the PUBACK is the point of pipelining; a lost
		// request shows up as a missing response below.
		ctrl.Publish(reqTopic, 1, false, fmt.Appendf(nil, `{"id":"%d","name":"set_power","arguments":{"power":1000}}`, i))
	}
	select {
	case <-resp.done:
	case <-resp.failed:
		b.Fatalf("%s: %v", name, resp.err())
	case <-proc.exited:
		b.Fatalf("%s exited during the command phase (%s)\n%s", name, proc.cmd.ProcessState, proc.logTail())
	case <-deadline:
		b.Fatalf("%s: %d of %d commands answered after %v", name, resp.completed.Load(), n, commandsTimeout)
	}
	s.cmdWall = time.Since(t0)
	s.cmdCPU = proc.cpuTime(b) - cpu0
	s.commands = n
	// Peak RSS is read now, from the live process, not from the exit
	// rusage: at exec Linux folds the high-water RSS of the address space
	// being replaced — the one the child inherited from this test process —
	// into ru_maxrss, so ru_maxrss reports the test process's RSS whenever
	// that is the larger (it is, by a few MiB, which hid the device's own
	// figure in a first version). VmHWM belongs to the device's image alone.
	// Shutdown, which follows, allocates next to nothing.
	s.maxRSS = proc.peakRSS(b)

	// Phase 3: a clean stop, which is also when the kernel hands over the
	// lifetime CPU time (rusage, in µs: finer than /proc's ticks).
	st := proc.stop(b)
	ru, ok := st.SysUsage().(*syscall.Rusage)
	if !ok {
		b.Fatalf("%s: no rusage", name)
	}
	if !st.Success() {
		b.Errorf("%s did not exit cleanly on SIGTERM: %s\n%s", name, st, proc.logTail())
	}
	s.totalCPU = time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
	s.exitState = st.String()
	return s
}

// configBlob is the v3 communication config for a device of hw on the
// broker at addr, as the hub would hand it out.
func configBlob(b *testing.B, addr, hw string) string {
	b.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		b.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	blob, err := commconfig.Config{
		Version: commconfig.Version3, HardwareID: hw, ChannelID: costChannel,
		Host: host, Port: p, Protocol: commconfig.ProtocolMQTT,
	}.Encode()
	if err != nil {
		b.Fatalf("encode config: %v", err)
	}
	return blob
}

// responseCounter collects the completed responses of one command phase.
// It runs in paho's router goroutine, so it must never block.
type responseCounter struct {
	n         int
	window    chan struct{} // one token per request in flight
	seen      []bool        // by request number: a duplicate is not counted twice
	completed atomic.Int64
	done      chan struct{} // closed when all n have completed
	failed    chan struct{} // closed on the first bad response

	mu      sync.Mutex
	failure error
}

func newResponseCounter(n int) *responseCounter {
	return &responseCounter{
		n: n, window: make(chan struct{}, costWindow), seen: make([]bool, n),
		done: make(chan struct{}), failed: make(chan struct{}),
	}
}

func (r *responseCounter) onMessage(_ mqtt.Client, m mqtt.Message) {
	var resp struct {
		ID      string          `json:"id"`
		State   string          `json:"state"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(m.Payload(), &resp); err != nil {
		r.fail(fmt.Errorf("undecodable response %q: %w", m.Payload(), err))
		return
	}
	switch resp.State {
	case "log":
		return // progress; set_power sends none, but it would be legal
	case "completed":
	default:
		r.fail(fmt.Errorf("request %s answered %s: %s", resp.ID, resp.State, resp.Payload))
		return
	}
	i, err := strconv.Atoi(resp.ID)
	if err != nil || i < 0 || i >= r.n {
		r.fail(fmt.Errorf("response to unknown request id %q", resp.ID))
		return
	}
	if r.seen[i] {
		return // the runtime may re-send a final response to a redelivered request
	}
	r.seen[i] = true
	select {
	case <-r.window:
	default:
	}
	if r.completed.Add(1) == int64(r.n) {
		close(r.done)
	}
}

func (r *responseCounter) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failure == nil {
		r.failure = err
		close(r.failed)
	}
}

func (r *responseCounter) err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failure
}

// deviceProc is a device binary running as a child process.
type deviceProc struct {
	cmd     *exec.Cmd
	started time.Time
	exited  chan struct{} // closed once cmd has been waited for
	logPath string
}

// startDevice starts the binary with the config in the environment and its
// output in logPath. The process is killed when the benchmark ends, and by
// the kernel if the test binary dies first.
func startDevice(b *testing.B, path, blob, logPath string) *deviceProc {
	b.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(path)
	// Only the config differs between the two: the same environment
	// otherwise, including any GOGC or GOMAXPROCS the caller set.
	cmd.Env = append(os.Environ(), commconfig.EnvConfig+"="+blob)
	// A file, not a pipe to this process: logging then costs the device what
	// it costs when systemd or docker collects stderr, not a context switch
	// into the benchmark.
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &deviceProc{cmd: cmd, exited: make(chan struct{}), logPath: logPath}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		b.Fatalf("start %s: %v", path, err)
	}
	go func() {
		_ = cmd.Wait() // the exit status is checked by stop
		logFile.Close()
		close(p.exited)
	}()
	b.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// cpuTime returns the process's user+system CPU time so far, from
// /proc/<pid>/stat (fields 14 and 15, in clock ticks).
func (p *deviceProc) cpuTime(b *testing.B) time.Duration {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		b.Fatalf("read CPU time: %v", err)
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// the fields after its closing parenthesis start at field 3.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		b.Fatalf("unexpected /proc/pid/stat: %q", data)
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 13 {
		b.Fatalf("unexpected /proc/pid/stat: %q", data)
	}
	var ticks int64
	for _, f := range fields[11:13] { // utime, stime
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			b.Fatalf("unexpected /proc/pid/stat: %q", data)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicksPerSecond
}

// peakRSS returns VmHWM from /proc/<pid>/status, in bytes.
func (p *deviceProc) peakRSS(b *testing.B) int64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		b.Fatalf("read peak RSS: %v", err)
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				break
			}
			return kib << 10
		}
	}
	b.Fatalf("no VmHWM in /proc/%d/status", p.cmd.Process.Pid)
	return 0
}

// stop sends SIGTERM, waits for the exit (killing after stopTimeout) and
// returns the process state.
func (p *deviceProc) stop(b *testing.B) *os.ProcessState {
	b.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		b.Fatalf("signal: %v", err)
	}
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
		b.Errorf("%s ignored SIGTERM for %v and was killed", p.cmd.Path, stopTimeout)
	}
	return p.cmd.ProcessState
}

// logTail returns the end of the device's log, for failure messages.
func (p *deviceProc) logTail() string {
	data, _ := os.ReadFile(p.logPath)
	const max = 4 << 10
	if len(data) > max {
		data = data[len(data)-max:]
	}
	return "device log (tail):\n" + string(data)
}

// reportCost reports the medians and their ratios as benchmark metrics and
// logs them as a table with the targets from the issue.
func reportCost(b *testing.B, n int, base, edk []costSample) {
	b.Helper()
	if len(base) == 0 || len(edk) == 0 {
		return
	}
	med := func(ss []costSample, f func(costSample) float64) float64 {
		v := make([]float64, len(ss))
		for i, s := range ss {
			v[i] = f(s)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	const mib = 1 << 20
	type figure struct {
		name, unit string
		f          func(costSample) float64
		target     float64 // largest allowed edk/baseline ratio; 0: none
	}
	figures := []figure{
		{"cpu", "us/cmd", func(s costSample) float64 { return float64(s.cpuPerCmd()) / 1e3 }, 1.3},
		{"rss", "MiB", func(s costSample) float64 { return float64(s.maxRSS) / mib }, 1.5},
		{"startup", "ms", func(s costSample) float64 { return float64(s.startup) / 1e6 }, 2},
		{"wall", "us/cmd", func(s costSample) float64 { return float64(s.wallPerCmd()) / 1e3 }, 0},
		{"total-cpu", "ms", func(s costSample) float64 { return float64(s.totalCPU) / 1e6 }, 0},
	}

	var tab bytes.Buffer
	w := tabwriter.NewWriter(&tab, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "figure (median of %d, %d commands)\tbaseline\tedk\tratio\ttarget\t\n", len(base), n)
	for _, fg := range figures {
		bv, ev := med(base, fg.f), med(edk, fg.f)
		ratio := ev / bv
		b.ReportMetric(bv, "baseline-"+fg.name+"-"+fg.unit)
		b.ReportMetric(ev, "edk-"+fg.name+"-"+fg.unit)
		verdict := "-"
		if fg.target > 0 {
			b.ReportMetric(ratio, fg.name+"-ratio")
			verdict = fmt.Sprintf("<= %.1fx ", fg.target)
			if ratio <= fg.target {
				verdict += "pass"
			} else {
				verdict += "FAIL"
			}
		}
		fmt.Fprintf(w, "%s (%s)\t%.2f\t%.2f\t%.2fx\t%s\t\n", fg.name, fg.unit, bv, ev, ratio, verdict)
	}
	w.Flush()
	// go test keeps only the first 10 lines of a benchmark's log unless -v,
	// so the table comes first and the per-run detail only with -v.
	if testing.Verbose() {
		fmt.Fprintf(&tab, "runs:\n")
		for _, bin := range []struct {
			name string
			runs []costSample
		}{{"baseline", base}, {"edk", edk}} {
			for _, s := range bin.runs {
				fmt.Fprintf(&tab, "  %-8s startup %-9v cpu/cmd %-9v wall/cmd %-10v rss %5.1f MiB  total cpu %-7v %s\n",
					bin.name, s.startup.Round(10*time.Microsecond), s.cpuPerCmd(), s.wallPerCmd().Round(10*time.Nanosecond),
					float64(s.maxRSS)/mib, s.totalCPU.Round(time.Millisecond), s.exitState)
			}
		}
	}
	b.Logf("edk inverter versus bare paho device, against mosquitto:\n%s", tab.String())
}
