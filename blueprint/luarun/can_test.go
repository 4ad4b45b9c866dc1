//go:build lua

package luarun

import (
	"context"
	"strings"
	"testing"

	"github.com/edk-go/edk/driver/can"
	"github.com/edk-go/edk/driver/can/slcansim"
	"github.com/edk-go/edk/internal/testutil"
)

const canManifest = `blueprint_spec: device/3.0
display_name: t
runtime:
  type: lua
  options:
    file: firmware.lua
`

const canScript = `
local c, m, q, qn, marker
enapter.register_command_handler('setup', function()
  local err
  c, err = can.new('port://can-1')
  if not c then return { err = err } end
  m = c:monitor({ 0x100, 0x200 })
  q = c:queue({ 0x300 }, 2, can.DROP_OLDEST)
  qn = c:queue({ 0x300, 0x18FF50E5 }, 2, can.DROP_NEWEST)
  marker = c:monitor({ 0x7FF })
  return {}
end)
enapter.register_command_handler('send', function()
  return { std = c:send(0x213, 'Hello'), ext = c:send(0x18FF50E5, '\1\2'), empty = c:send(0x7FF, '') }
end)
enapter.register_command_handler('marker', function()
  local data, err = marker:pop({ 0x7FF })
  return { got = data and data[1], err = err }
end)
enapter.register_command_handler('pop', function()
  local first = m:pop({ 0x100, 0x200, 0x239 })
  local again = m:pop({ 0x100, 0x200 })
  return {
    first1 = first[1], first2 = first[2], first3 = first[3], again = #again,
    q = q:pop(0x300), q_after = #q:pop(0x300), q_drops = q:drops_count(0x300),
    qn = qn:pop(0x300), qn_drops = qn:drops_count(0x300), ext = qn:pop(0x18FF50E5),
  }
end)
enapter.register_command_handler('bad', function()
  local out = {}
  local ok, msg = pcall(c.send, c, 'x', 'y')
  out.send_type = msg
  ok, msg = pcall(c.send, c, 1)
  out.send_nodata = msg
  out.send_range = c:send(0x20000000, 'a')
  out.send_neg = c:send(-1, 'a')
  out.send_float = c:send(1.5, 'a')
  out.send_long = c:send(1, '123456789')
  ok, msg = pcall(c.monitor, c, 'ids')
  out.monitor_type = msg
  _, out.monitor_empty = c:monitor({})
  _, out.monitor_str = c:monitor({ 'a' })
  _, out.queue_size = c:queue({ 1 }, 0)
  _, out.queue_policy = c:queue({ 1 }, 1, 'bogus')
  _, out.queue_pop = q:pop(0x999)
  _, out.queue_drops = q:drops_count(0x999)
  ok, msg = pcall(c.send, 'not an object', 1, 'a')
  out.no_colon = msg
  _, out.unmapped = can.new('port://can-9')
  _, out.uri = can.new('tcp://10.0.0.1:502')
  return out
end)
enapter.register_command_handler('after', function()
  local _, pop = m:pop({ 0x100 })
  local _, qpop = q:pop(0x300)
  return { send = c:send(0x100, 'x'), pop = pop, qpop = qpop }
end)
enapter.register_command_handler('reconnect', function()
  local c2, err = can.new('port://can-1')
  if not c2 then return { err = err } end
  return { send = c2:send(0x101, 'y') }
end)
`

func canCommand(t *testing.T, rt *Runtime, name string) map[string]any {
	t.Helper()
	res, err := rt.Command(context.Background(), name, nil, nil)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return res.(map[string]any)
}

// The whole Lua path over a pty pair to a fake slcan adapter: send,
// monitor, queue (both policies), pop, drops_count, bad input, noise from
// the adapter, the adapter unplugged and plugged back.
func TestCANOverSLCAN(t *testing.T) {
	host, dev, unplug := testutil.PtyPair(t)
	sim, err := slcansim.Start(dev, slcansim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	name, port, isCAN, err := ParseCANPort("can-1=slcan:" + host + "?bitrate=125000")
	if !isCAN || err != nil {
		t.Fatal(isCAN, err)
	}
	rt, _ := start(t, writeBlueprint(t, canManifest, canScript), Options{CANPorts: map[string]CANPort{name: port}})
	if got := canCommand(t, rt, "setup"); got["err"] != nil {
		t.Fatalf("setup: %v", got)
	}
	if sim.Bitrate() != "4" || !sim.IsOpen() {
		t.Fatalf("adapter: bitrate S%s, open %v", sim.Bitrate(), sim.IsOpen())
	}

	if got := canCommand(t, rt, "send"); len(got) != 0 {
		t.Errorf("send errors: %v", got)
	}
	for _, want := range []string{"t213548656C6C6F", "T18FF50E520102", "t7FF0"} {
		if got := <-sim.Sent(); got != want {
			t.Errorf("adapter got %q, want %q", got, want)
		}
	}

	inject := func(id uint32, data string) {
		t.Helper()
		f, err := can.NewFrame(id, []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		if err := sim.InjectFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	inject(0x100, "a")
	if err := sim.Inject("noise\rt1\r\xff\xfe\rT1234\r"); err != nil {
		t.Fatal(err)
	}
	inject(0x100, "b")
	inject(0x200, "c")
	inject(0x555, "other")
	for _, d := range []string{"x1", "x2", "x3"} {
		inject(0x300, d)
	}
	inject(0x18FF50E5, "\x00\xff")
	inject(0x7FF, "end")
	// frames arrive in order, so once the marker is there all are
	testutil.Eventually(t, "the marker frame", func() bool {
		return canCommand(t, rt, "marker")["got"] == "end"
	})
	got := canCommand(t, rt, "pop")
	for k, want := range map[string]any{
		"first1": "b", "first2": "c", "first3": nil, "again": int64(0),
		"q_after": int64(0), "q_drops": int64(1), "qn_drops": int64(1),
	} {
		if got[k] != want {
			t.Errorf("%s = %#v, want %#v (all %v)", k, got[k], want, got)
		}
	}
	for k, want := range map[string]string{"q": "[x2 x3]", "qn": "[x1 x2]", "ext": "[\x00\xff]"} {
		if s := strings.TrimSpace(strings.ReplaceAll(fmtList(got[k]), "  ", " ")); s != want {
			t.Errorf("%s = %q, want %q", k, s, want)
		}
	}

	bad := canCommand(t, rt, "bad")
	for k, want := range map[string]string{
		"send_type":     "bad argument #2 to 'send' (number expected, got string)",
		"send_nodata":   "bad argument #3 to 'send' (string expected, got no value)",
		"send_range":    "out of range 0..0x1FFFFFFF",
		"send_neg":      "CAN id -1 out of range",
		"send_float":    "1.5 is not an integer",
		"send_long":     "data is 9 bytes, a classic CAN frame carries at most 8",
		"monitor_type":  "table expected, got string",
		"monitor_empty": "non-empty list",
		"monitor_str":   "ids[1] is a string",
		"queue_size":    "size 0 out of range",
		"queue_policy":  "can.DROP_OLDEST or can.DROP_NEWEST",
		"queue_pop":     "id 0x999 is not in this queue (0x300)",
		"queue_drops":   "not in this queue",
		"no_colon":      "call it with a colon",
		"unmapped":      `UCM port "can-9" is not available on this host (map it to a CAN bus with --port can-9=socketcan:can0`,
		"uri":           "want port://NAME",
	} {
		if s, _ := bad[k].(string); !strings.Contains(s, want) {
			t.Errorf("%s = %q, want it to contain %q", k, bad[k], want)
		}
	}

	// unplugged: the script's calls answer errors, nothing crashes
	unplug()
	testutil.Eventually(t, "the unplug seen by the script", func() bool {
		got := canCommand(t, rt, "after")
		s, _ := got["pop"].(string)
		return strings.Contains(s, "adapter gone")
	})
	got = canCommand(t, rt, "after")
	for _, k := range []string{"send", "pop", "qpop"} {
		if s, _ := got[k].(string); !strings.Contains(s, "CAN port can-1") || !strings.Contains(s, "adapter gone") {
			t.Errorf("after unplug, %s = %v", k, got[k])
		}
	}
	// can.new again (the reconnect pattern) tries the device again: it is
	// gone, so it fails with the reason
	if s, _ := canCommand(t, rt, "reconnect")["err"].(string); !strings.Contains(s, "can.new: slcan "+host) {
		t.Errorf("reconnect to an unplugged adapter: %v", s)
	}
}

// fmtList renders a Lua list as [a b].
func fmtList(v any) string {
	l, _ := v.([]any)
	parts := make([]string, len(l))
	for i, x := range l {
		parts[i], _ = x.(string)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// v3 without a mapping: the clear "not available" answer; v1 keeps the
// UCM-only stub (no v1 CAN reference to follow).
func TestCANUnmapped(t *testing.T) {
	rt, _ := start(t, writeBlueprint(t, canManifest, `
enapter.register_command_handler('try', function()
  local c, err = can.new('port://can-1')
  return { c = c ~= nil, err = err, oldest = can.DROP_OLDEST ~= can.DROP_NEWEST }
end)
`), Options{})
	got := canCommand(t, rt, "try")
	if s, _ := got["err"].(string); got["c"] != false || got["oldest"] != true ||
		!strings.Contains(s, `UCM port "can-1" is not available on this host (map it to a CAN bus with --port can-1=socketcan:can0 or --port can-1=slcan:/dev/ttyACM0?bitrate=500000)`) {
		t.Errorf("unmapped: %v", got)
	}
}

// A SocketCAN mapping to an interface this host lacks: can.new says so.
func TestCANSocketCANMissing(t *testing.T) {
	rt, _ := start(t, writeBlueprint(t, canManifest, `
enapter.register_command_handler('try', function()
  local c, err = can.new('port://can-1')
  return { c = c ~= nil, err = err }
end)
`), Options{CANPorts: map[string]CANPort{"can-1": {Driver: "socketcan", Device: "nosuchcan0"}}})
	got := canCommand(t, rt, "try")
	if s, _ := got["err"].(string); got["c"] != false || !strings.Contains(s, "can.new: socketcan nosuchcan0") {
		t.Errorf("missing interface: %v", got)
	}
}
