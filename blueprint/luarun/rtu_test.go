//go:build lua

package luarun

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edk-go/edk/internal/testutil"
)

// rtuPort starts socat joining two ptys and driver/modbus's pymodbus RTU
// server (testdata/rtu_server.py: holding 0 = 1234) on one end, 9600 8N1,
// and returns the other end. It skips without socat or pymodbus, except in
// CI (EDK_REQUIRE_RTU=1), where .ci/run installs them.
func rtuPort(t *testing.T) string {
	t.Helper()
	socat, err1 := exec.LookPath("socat")
	python := os.Getenv("EDK_PYTHON")
	if python == "" {
		python = "/usr/bin/python3"
	}
	err2 := exec.Command(python, "-c", "import pymodbus.server.async_io, serial_asyncio").Run()
	if err1 != nil || err2 != nil {
		msg := "RTU test needs socat and python3-pymodbus (apt-get install socat python3-pymodbus)"
		if os.Getenv("EDK_REQUIRE_RTU") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	pty := exec.Command(socat, "pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b)
	startProc(t, pty)
	testutil.Eventually(t, "pty pair", func() bool {
		_, ea := os.Stat(a)
		_, eb := os.Stat(b)
		return ea == nil && eb == nil
	})
	srv := exec.Command(python, filepath.Join("..", "..", "driver", "modbus", "testdata", "rtu_server.py"), b, "9600", "N", "1")
	out, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	startProc(t, srv)
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) == "ready" {
				ready <- true
				break
			}
		}
		for sc.Scan() {
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("rtu_server.py not ready in 30s")
	}
	return a
}

// startProc starts cmd, killed (with the test binary, too) at the end.
func startProc(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
}

// v1 RTU: rs485.init, then the modbus globals, over a pty to pymodbus; and
// v3 modbus.new('port://rs485') on the same mapped port.
func TestRTUOverMappedPort(t *testing.T) {
	dev := rtuPort(t)
	dir := writeBlueprint(t, v1Manifest, `
local unmapped = rs232.init(9600, 8, 'N', 1)
local init = rs485.init(9600, 8, 'N', 1)
scheduler.add(50, function()
  local data, code = modbus.read_holdings(1, 0, 1, 1000)
  local _, bad = modbus.read_holdings(1, 500, 1, 1000)
  local c = modbus.new('port://rs485')
  local v3, err = c:read_holdings(1, 0, 1, 1000)
  enapter.send_telemetry({ init = init, unmapped = unmapped, reg = data and data[1], code = code, bad = bad, v3 = v3 and v3[1] })
end)
`)
	_, sk := start(t, dir, Options{Ports: map[string]SerialPort{"rs485": {Device: dev, Baud: 9600, DataBits: 8, Parity: "N", StopBits: 1}}})
	testutil.Eventually(t, "telemetry", func() bool { return sk.count() >= 1 })
	got := sk.telemetryJSON(t, 0)[0]
	for k, w := range map[string]any{"init": 0.0, "unmapped": 5.0, "reg": 1234.0, "code": 0.0, "bad": 12.0, "v3": 1234.0} {
		if got[k] != w {
			t.Errorf("%s = %v, want %v (all %v)", k, got[k], w, got)
		}
	}
}

// serial.new on a mapped port: write reaches the other end of a pty pair,
// read returns what it sends, a short read times out.
func TestSerialOverMappedPort(t *testing.T) {
	socat, err := exec.LookPath("socat")
	if err != nil {
		if os.Getenv("EDK_REQUIRE_RTU") == "1" {
			t.Fatal("serial test needs socat")
		}
		t.Skip("serial test needs socat")
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	startProc(t, exec.Command(socat, "pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b))
	testutil.Eventually(t, "pty pair", func() bool {
		_, ea := os.Stat(a)
		_, eb := os.Stat(b)
		return ea == nil && eb == nil
	})
	peer, err := os.OpenFile(b, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	// the peer answers "pong\n" to each "ping"
	go func() {
		buf := make([]byte, 4)
		for {
			if _, err := io.ReadFull(peer, buf); err != nil {
				return
			}
			if string(buf) == "ping" {
				_, _ = peer.Write([]byte("pong\n"))
			}
		}
	}()
	script := writeBlueprint(t, v1Manifest, `
enapter.register_command_handler('ping', function()
  local c, err = serial.new('port://rs232')
  if not c then return { err = err } end
  local data, err = c:transaction(function()
    c:flush()
    c:write('ping')
    return c:read(5, 2000)
  end)
  local _, short = c:read(10, 50)
  local _, unmapped = serial.new('port://rs485')
  return { data = data, err = err, short = short, unmapped = unmapped }
end)
`)
	rt, _ := start(t, script, Options{Ports: map[string]SerialPort{"rs232": {Device: a, Baud: 9600, DataBits: 8, Parity: "N", StopBits: 1}}})
	res, err := rt.Command(context.Background(), "ping", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := res.(map[string]any)
	if m["data"] != "pong\n" || m["err"] != nil {
		t.Errorf("data = %q, err = %v (all %v)", m["data"], m["err"], m)
	}
	if s, _ := m["short"].(string); !strings.Contains(s, "timeout") {
		t.Errorf("short read = %v", m["short"])
	}
	if s, _ := m["unmapped"].(string); !strings.Contains(s, "not available on this host") {
		t.Errorf("unmapped = %v", m["unmapped"])
	}
}
