//go:build linux

package modbus_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	mb "github.com/simonvetter/modbus"

	"github.com/edk-go/edk/driver"
	"github.com/edk-go/edk/driver/modbus"
)

// The RTU tests run the driver over a pseudo-terminal pair made by socat,
// against a second Modbus implementation: pymodbus's RTU server
// (testdata/rtu_server.py). Nothing touches a real serial port: both pty
// ends live in the test's temp dir. A pty carries bytes, not characters on
// a wire, so baud, parity and stop bits are set (the kernel checks them)
// but a mismatch between the two ends would go unnoticed.
//
// Without socat or a python3 with pymodbus the tests skip, unless CI=true
// or EDK_REQUIRE_RTU=1, where they fail. EDK_PYTHON names the interpreter
// to use when the python3 on PATH lacks pymodbus (Debian's python3-pymodbus
// installs for /usr/bin/python3, which a pyenv or venv python3 does not see).

const rtuMap = `
modbus:
  address: "rtu://DEV?baud=19200&parity=N&stop_bits=2"
  unit_id: 7
  timeout: 300ms
  poll: 1s
telemetry:
  u16:      {register: 0}
  i16:      {register: 1, type: int16}
  i32_high: {register: 2, type: int32}
  i32_low:  {register: 4, type: int32, word_order: little}
  f32:      {register: 6, type: float32}
  setpoint: {register: 10}
  trim:     {register: 12, type: int32, word_order: little}
  u32_in:   {register: 0, table: input, type: uint32}
  f32_in:   {register: 2, table: input, type: float32}
  u64_in:   {register: 4, table: input, type: uint64}
  running:  {register: 0, table: coil}
  door:     {register: 1, table: discrete_input}
properties:
  serial:   {register: 8, table: input, type: uint32}
  missing:  {register: 100}
commands:
  set_setpoint:
    arguments: {value: {type: integer, min: 0, max: 1000}}
    write: {register: 10, value: value}
  set_trim:
    arguments: {value: {type: integer}}
    write: {register: 12, type: int32, word_order: little, value: value}
  stop:
    write: {table: coil, register: 0, value: false}
alerts:
  stopped: {when: "running == false"}
`

// rtuWant is what testdata/rtu_server.py serves at start.
var rtuWant = map[string]any{
	"u16": uint64(1234), "i16": int64(-5), "i32_high": int64(-123456), "i32_low": int64(-123456),
	"f32": 230.5, "setpoint": uint64(0), "trim": int64(0),
	"u32_in": uint64(70000), "f32_in": -12.25, "u64_in": uint64(1<<40 | 7),
	"running": true, "door": true,
}

func TestRTU(t *testing.T) {
	tools := rtuTools(t)
	dir := t.TempDir()
	a, b := startPTYPair(t, tools, dir)
	srv := startRTUServer(t, tools, b, 19200, "N", 2)

	m, err := modbus.Parse("rtu.yaml", []byte(strings.ReplaceAll(rtuMap, "DEV", a)))
	if err != nil {
		t.Fatal(err)
	}
	d, err := modbus.New(m, modbus.Options{Backoff: backoff.NewConstantBackOff(time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	ctx := ctxT(t)

	t.Run("telemetry", func(t *testing.T) {
		start := time.Now()
		r, err := d.Telemetry(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(r.Values, rtuWant) {
			t.Errorf("values:\n got %#v\nwant %#v", r.Values, rtuWant)
		}
		if len(r.Alerts) != 0 {
			t.Errorf("alerts %v, want none", r.Alerts)
		}
		t.Logf("%d requests in %s:\n%s", d.Stats().Requests, time.Since(start).Round(time.Millisecond), d.Plan())
	})

	t.Run("exception", func(t *testing.T) {
		start := time.Now()
		_, err := d.ReadRegisters(ctx, 7, modbus.Holding, 100, 1)
		if !errors.Is(err, mb.ErrIllegalDataAddress) || !modbus.IsException(err) {
			t.Fatalf("read of a missing register: %v, want an illegal data address exception", err)
		}
		if el := time.Since(start); el > 250*time.Millisecond {
			t.Errorf("the exception took %s: it should come back at once, not after the timeout", el)
		}
		// the properties with a missing register: the other one is still read,
		// and the link stays up (no reconnect)
		connects := d.Stats().Connects
		props, err := d.Properties(ctx)
		if !modbus.IsException(err) {
			t.Errorf("properties: error %v, want the exception", err)
		}
		if want := map[string]any{"serial": uint64(123456789)}; !reflect.DeepEqual(props, want) {
			t.Errorf("properties %v, want %v", props, want)
		}
		if got := d.Stats().Connects; got != connects {
			t.Errorf("an exception reconnected: %d connects, were %d", got, connects)
		}
	})

	t.Run("commands", func(t *testing.T) {
		p, err := d.Execute(ctx, "set_setpoint", map[string]any{"value": 321.0})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"writes": []any{map[string]any{"table": "holding", "register": 10, "raw": []int{321}}}}
		if !reflect.DeepEqual(p, want) {
			t.Errorf("payload %v, want %v", p, want)
		}
		if _, err := d.Execute(ctx, "set_trim", map[string]any{"value": -70000.0}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Execute(ctx, "stop", nil); err != nil {
			t.Fatal(err)
		}
		r, err := d.Telemetry(ctx) // every group is read again after a command
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range map[string]any{"setpoint": uint64(321), "trim": int64(-70000), "running": false, "u16": uint64(1234)} {
			if r.Values[k] != v {
				t.Errorf("after the commands %s = %#v, want %#v", k, r.Values[k], v)
			}
		}
		if !slices.Equal(r.Alerts, []string{"stopped"}) {
			t.Errorf("alerts %v, want [stopped]", r.Alerts)
		}
		// the raw registers, as a probing tool reads them: low word first
		words, err := d.ReadRegisters(ctx, 7, modbus.Holding, 12, 2)
		if err != nil {
			t.Fatal(err)
		}
		trim := int32(-70000)
		if raw := uint32(trim); !slices.Equal(words, []uint16{uint16(raw), uint16(raw >> 16)}) {
			t.Errorf("registers 12..13 = %#04x, want low word first of -70000", words)
		}
	})

	t.Run("timeout and recovery", func(t *testing.T) {
		srv.stop(t)
		start := time.Now()
		r, err := d.Poll(ctx, time.Second) // the group is not due: read it now
		el := time.Since(start)
		if err == nil {
			t.Fatal("telemetry without a server: no error")
		}
		if !errors.Is(err, mb.ErrRequestTimedOut) {
			t.Errorf("error %v, want a request timeout", err)
		}
		if !strings.Contains(err.Error(), "check the unit id, wiring and serial settings") {
			t.Errorf("error %q lacks the wiring hint", err)
		}
		if !slices.Contains(r.Alerts, driver.CommunicationError) {
			t.Errorf("alerts %v, want %s", r.Alerts, driver.CommunicationError)
		}
		if len(r.Values) != 0 {
			t.Errorf("values %v of a failed read, want none", r.Values)
		}
		// one timeout, then the rest of the group is skipped: not one timeout per request
		if el < 250*time.Millisecond || el > 2*time.Second {
			t.Errorf("a failed poll took %s, want about the 300ms timeout", el)
		}
		// a failed group is read again on every call, and still fails
		if r, err := d.Telemetry(ctx); err == nil || !slices.Contains(r.Alerts, driver.CommunicationError) {
			t.Errorf("second poll without a server: %v, alerts %v", err, r.Alerts)
		}

		srv = startRTUServer(t, tools, b, 19200, "N", 2)
		connects := d.Stats().Connects
		start = time.Now()
		r, err = d.Telemetry(ctx)
		if err != nil {
			t.Fatalf("after the server came back: %v", err)
		}
		t.Logf("recovered in %s", time.Since(start).Round(time.Millisecond))
		if !reflect.DeepEqual(r.Values, rtuWant) { // a fresh server: values as at start
			t.Errorf("values after recovery:\n got %#v\nwant %#v", r.Values, rtuWant)
		}
		if len(r.Alerts) != 0 {
			t.Errorf("alerts after recovery %v, want none", r.Alerts)
		}
		if d.Stats().Connects <= connects {
			t.Errorf("recovered without reconnecting (%d connects)", d.Stats().Connects)
		}
	})
}

// TestRTUSerialSettings runs the driver at the settings of the meter in
// docs/modbus.md, 9600 8E1, with the scheme written in capitals (URL
// schemes are case-insensitive: the map loads, so the driver must connect).
// A pty carries bytes, not parity bits: Linux drops PARENB on a pty (and
// some kernels refuse, with EINVAL, a tcsetattr whose only change is
// PARENB, which pyserial makes), so the server end stays at 8N1.
func TestRTUSerialSettings(t *testing.T) {
	tools := rtuTools(t)
	a, b := startPTYPair(t, tools, t.TempDir())
	startRTUServer(t, tools, b, 9600, "N", 1)
	m, err := modbus.Parse(

		"rtu.yaml", []byte(fmt.Sprintf(`
modbus: {address: "RTU://%s?baud=9600&parity=E&stop_bits=1", timeout: 300ms}
telemetry:
  f32: {register: 6, type: float32}
  u32_in: {register: 0, table: input, type: uint32}
`, a)))

	if err != nil {
		t.Fatal(err)
	}
	if c := m.Connection; c.Baud != 9600 || c.Parity != 1 || c.StopBits != 1 || c.DataBits != 8 {
		t.Fatalf("parsed %+v, want 9600 8E1", c)
	}
	d, err := modbus.New(m, modbus.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	r, err := d.Telemetry(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"f32": 230.5, "u32_in": uint64(70000)}; !reflect.DeepEqual(r.Values, want) {
		t.Errorf("values %v, want %v", r.Values, want)
	}
}

type rtuToolset struct {
	socat  string
	python string // an interpreter that imports pymodbus
}

// rtuTools finds socat and a python3 with pymodbus, or skips (fails in CI).
func rtuTools(t *testing.T) rtuToolset {
	t.Helper()
	var missing []string
	socat, err := exec.LookPath("socat")
	if err != nil {
		missing = append(missing, "socat")
	}
	python, why := findPymodbus()
	if python == "" {
		missing = append(missing, "python3 with pymodbus ("+why+")")
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("RTU tests need %s: apt-get install socat python3-pymodbus (or set EDK_PYTHON to a python3 that has pymodbus)", strings.Join(missing, " and "))
		if os.Getenv("CI") == "true" || os.Getenv("EDK_REQUIRE_RTU") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return rtuToolset{socat: socat, python: python}
}

var pymodbusOnce = sync.OnceValues(func() (string, string) {
	var cands []string
	if p := os.Getenv("EDK_PYTHON"); p != "" {
		cands = append(cands, p)
	}
	cands = append(cands, "python3", "/usr/bin/python3")
	var why []string
	for _, c := range cands {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, c, "-c",
			"import sys, pymodbus.server.async_io, serial_asyncio; print(sys.executable)").Output()
		cancel()
		if err == nil {
			if exe := strings.TrimSpace(string(out)); exe != "" {
				return exe, "" // the real binary, not a pyenv shim
			}
		}
		why = append(why, fmt.Sprintf("%s: %v", c, err))
	}
	return "", strings.Join(why, "; ")
})

func findPymodbus() (string, string) { return pymodbusOnce() }

// procAttr makes the kernel kill a child if the test binary dies without
// running its cleanups (as internal/testutil does for mosquitto).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// syncBuffer collects a child's output; ready is closed when a line equal
// to mark has been written.
type syncBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	mark  string
	ready chan struct{}
}

func newSyncBuffer(mark string) *syncBuffer {
	return &syncBuffer{mark: mark, ready: make(chan struct{})}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if b.mark != "" && slices.Contains(strings.Split(b.buf.String(), "\n"), b.mark) {
		close(b.ready)
		b.mark = ""
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// child is a started process that is killed at the end of the test.
type child struct {
	cmd    *exec.Cmd
	name   string
	exited chan struct{}
	err    error
	once   sync.Once
}

func startChild(t *testing.T, cmd *exec.Cmd, name string) *child {
	t.Helper()
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	c := &child{cmd: cmd, name: name, exited: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(c.kill)
	return c
}

// kill ends the process and waits for it (and for its output to be copied).
func (c *child) kill() {
	c.once.Do(func() {
		c.cmd.Process.Kill()
		<-c.exited
	})
}

// startPTYPair starts socat joining two ptys, linked as dir/a and dir/b,
// and waits until socat has opened both and is copying between them.
func startPTYPair(t *testing.T, tools rtuToolset, dir string) (a, b string) {
	t.Helper()
	a, b = filepath.Join(dir, "a"), filepath.Join(dir, "b")
	stderr := newSyncBuffer("")
	cmd := exec.Command(tools.socat, "-d", "-d",
		"pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b)
	cmd.Stderr = stderr
	c := startChild(t, cmd, "socat")
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, errA := os.Stat(a)
		_, errB := os.Stat(b)
		if errA == nil && errB == nil && strings.Contains(stderr.String(), "starting data transfer loop") {
			return a, b
		}
		select {
		case <-c.exited:
			t.Fatalf("socat exited (%v):\n%s", c.err, stderr)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("socat made no pty pair in 10s:\n%s", stderr)
		}
	}
}

type rtuServer struct{ *child }

// stop kills the server and waits until it is gone.
func (s *rtuServer) stop(t *testing.T) {
	t.Helper()
	s.kill()
}

// startRTUServer starts testdata/rtu_server.py on dev and waits for its
// "ready" line.
func startRTUServer(t *testing.T, tools rtuToolset, dev string, baud int, parity string, stopBits int) *rtuServer {
	t.Helper()
	stdout, stderr := newSyncBuffer("ready"), newSyncBuffer("")
	cmd := exec.Command(tools.python, filepath.Join("testdata", "rtu_server.py"),
		dev, fmt.Sprint(baud), parity, fmt.Sprint(stopBits))
	cmd.Stdout, cmd.Stderr = stdout, stderr
	start := time.Now()
	c := startChild(t, cmd, "rtu_server.py")
	select {
	case <-stdout.ready:
		t.Logf("pymodbus RTU server ready on %s (%d %s %d) in %s", filepath.Base(dev), baud, parity, stopBits, time.Since(start).Round(time.Millisecond))
	case <-c.exited:
		t.Fatalf("rtu_server.py exited (%v):\n%s%s", c.err, stdout, stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("rtu_server.py not ready in 30s:\n%s%s", stdout, stderr)
	}
	return &rtuServer{c}
}
