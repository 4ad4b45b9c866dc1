//go:build lua

package luarun

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edk-go/edk/internal/testutil"
)

// linkedPtys starts socat joining two ptys and returns their paths and
// the socat process (killing it takes both ends away). It skips without
// socat, except in CI (EDK_REQUIRE_RTU=1).
func linkedPtys(t *testing.T) (string, string, *exec.Cmd) {
	t.Helper()
	socat, err := exec.LookPath("socat")
	if err != nil {
		if os.Getenv("EDK_REQUIRE_RTU") == "1" {
			t.Fatal("serial test needs socat")
		}
		t.Skip("serial test needs socat (apt-get install socat)")
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	cmd := exec.Command(socat, "pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b)
	startProc(t, cmd)
	testutil.Eventually(t, "pty pair", func() bool {
		_, ea := os.Stat(a)
		_, eb := os.Stat(b)
		return ea == nil && eb == nil
	})
	return a, b, cmd
}

const rawSerialScript = `
local init = rs232.init(9600, 8, 'N', 1)
enapter.register_command_handler('talk', function(ctx, args)
  local sent = rs232.send(args.data)
  local data, code = rs232.receive(2000)
  return { init = init, sent = sent, data = data, code = code }
end)
enapter.register_command_handler('quiet', function()
  local data, code = rs232.receive(50)
  return { data = data, code = code, msg = rs232.err_to_str(code) }
end)
enapter.register_command_handler('bad', function()
  local _, negative = rs232.receive(-1)
  local _, unmapped_recv = rs485.receive(10)
  return {
    oversize = rs232.send(string.rep('x', 5000)),
    not_string = rs232.send({}),
    negative = negative,
    unmapped_init = rs485.init(9600, 8, 'N', 1),
    unmapped_send = rs485.send('x'),
    unmapped_recv = unmapped_recv,
    msg = rs485.err_to_str(5),
  }
end)
`

// v1 rs232.send / rs232.receive on a mapped port reach a peer at the other
// end of a pty pair; bad input, an unmapped port, silence and the peer
// going away answer their codes.
func TestV1RawSerial(t *testing.T) {
	a, b, socat := linkedPtys(t)
	peer, err := os.OpenFile(b, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	// the peer answers each line with "got " and the line
	go func() {
		var line []byte
		buf := make([]byte, 64)
		for {
			n, err := peer.Read(buf)
			if err != nil {
				return
			}
			line = append(line, buf[:n]...)
			if i := bytes.IndexByte(line, '\n'); i >= 0 {
				_, _ = peer.Write(append([]byte("got "), line[:i+1]...))
				line = line[i+1:]
			}
		}
	}()
	dir := writeBlueprint(t, v1Manifest, rawSerialScript)
	rt, sk := start(t, dir, Options{Ports: map[string]SerialPort{"rs232": {Device: a, Baud: 9600, DataBits: 8, Parity: "N", StopBits: 1}}})
	ctx := context.Background()
	call := func(name string, args map[string]any) map[string]any {
		t.Helper()
		res, err := rt.Command(ctx, name, args, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return res.(map[string]any)
	}
	check := func(what string, got map[string]any, want map[string]any) {
		t.Helper()
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s: %s = %#v, want %#v (all %v)", what, k, got[k], w, got)
			}
		}
	}

	check("talk", call("talk", map[string]any{"data": "ping\n"}), map[string]any{"init": int64(0), "sent": int64(0), "data": "got ping\n", "code": int64(0)})
	// the answer comes as one piece even when it is long
	long := strings.Repeat("0123456789", 100) + "\n"
	check("long talk", call("talk", map[string]any{"data": long}), map[string]any{"data": "got " + long, "code": int64(0)})
	check("quiet", call("quiet", nil), map[string]any{"data": nil, "code": int64(1), "msg": "timeout"})
	got := call("bad", nil)
	check("bad", got, map[string]any{"oversize": int64(4), "not_string": int64(4), "negative": int64(4),
		"unmapped_init": int64(5), "unmapped_send": int64(5), "unmapped_recv": int64(5)})
	if m, _ := got["msg"].(string); !strings.Contains(m, "not available on this host") || !strings.Contains(m, "--port") {
		t.Errorf("err_to_str(5) = %q", got["msg"])
	}
	if !strings.Contains(sk.logText(), "rs485 is not available on this host (map it to a serial device with --port rs485=") {
		t.Errorf("no warning about the unmapped port in the logs:\n%s", sk.logText())
	}

	// the peer goes away: a connection failure, never a crash
	_ = socat.Process.Kill()
	got = call("talk", map[string]any{"data": "ping\n"})
	check("peer gone", got, map[string]any{"data": nil, "code": int64(2)})
	if s := got["sent"]; s != int64(0) && s != int64(2) {
		t.Errorf("send with the peer gone = %v", s)
	}
}

// v1 modbusrtu.new(device, options) on a --port mapped device: the
// modbustcp methods with their codes, read_timeout as the default
// timeout; an unmapped device answers code 5 on every call.
func TestV1ModbusRTUNew(t *testing.T) {
	dev := rtuPort(t)
	dir := writeBlueprint(t, v1Manifest, `
local opts = { baud_rate = 9600, parity = 'N', stop_bits = '1', data_bits = 8, read_timeout = 1000 }
local unmapped = modbusrtu.new('/dev/ttyS9', opts)
scheduler.add(50, function()
  local c = modbusrtu.new('/dev/ttyUSB0', opts)
  local data, code = c:read_holdings(1, 0, 1)
  local _, bad = c:read_holdings(1, 500, 1, 1000)
  local wrote = c:write_holding(1, 10, 77)
  local back = c:read_holdings(1, 10, 1, 1000)
  local _, un = unmapped:read_holdings(1, 0, 1, 100)
  enapter.send_telemetry({ reg = data and data[1], code = code, bad = bad, wrote = wrote, back = back and back[1],
    un = un, un_write = unmapped:write_holding(1, 0, 5), msg = modbusrtu.err_to_str(un) })
end)
`)
	_, sk := start(t, dir, Options{Ports: map[string]SerialPort{"/dev/ttyUSB0": {Device: dev, Baud: 9600, DataBits: 8, Parity: "N", StopBits: 1}}})
	testutil.Eventually(t, "telemetry", func() bool { return sk.count() >= 1 })
	got := sk.telemetryJSON(t, 0)[0]
	for k, w := range map[string]any{"reg": 1234.0, "code": 0.0, "bad": 12.0, "wrote": 0.0, "back": 77.0, "un": 5.0, "un_write": 5.0} {
		if got[k] != w {
			t.Errorf("%s = %v, want %v (all %v)", k, got[k], w, got)
		}
	}
	if m, _ := got["msg"].(string); !strings.Contains(m, "not available on this host") {
		t.Errorf("err_to_str = %q", got["msg"])
	}
	if !strings.Contains(sk.logText(), "modbusrtu.new: /dev/ttyS9 is not available on this host (map it to a serial device with --port /dev/ttyS9=") {
		t.Errorf("logs:\n%s", sk.logText())
	}
}
