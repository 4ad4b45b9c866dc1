package modbus_test

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	mb "github.com/simonvetter/modbus"

	"github.com/edk-go/edk/driver"
	"github.com/edk-go/edk/driver/modbus"
	"github.com/edk-go/edk/driver/modbus/modbussim"
	"github.com/edk-go/edk/internal/testutil"
)

func TestDecodeTypes(t *testing.T) {
	f32 := math.Float32bits(-12.5)
	f64 := math.Float64bits(1234.5678)
	tests := []struct {
		name  string
		table modbus.Table
		words []uint16
		def   string // the value's YAML without register and table
		want  any
	}{
		{"int16", modbus.Holding, []uint16{0xFFFE}, "type: int16", int64(-2)},
		{"uint16", modbus.Holding, []uint16{0xFFFE}, "type: uint16", uint64(65534)},
		{"int32", modbus.Input, []uint16{0xFFFF, 0xFFFD}, "type: int32", int64(-3)},
		{"uint32", modbus.Input, []uint16{0x0001, 0x0002}, "type: uint32", uint64(65538)},
		{"int64", modbus.Holding, []uint16{0xFFFF, 0xFFFF, 0xFFFF, 0xFFF0}, "type: int64", int64(-16)},
		{"uint64", modbus.Holding, []uint16{0, 0, 1, 0}, "type: uint64", uint64(65536)},
		{"float32", modbus.Holding, []uint16{uint16(f32 >> 16), uint16(f32)}, "type: float32", -12.5},
		{"float64", modbus.Holding, []uint16{uint16(f64 >> 48), uint16(f64 >> 32), uint16(f64 >> 16), uint16(f64)}, "type: float64", 1234.5678},
		{"uint32 word little", modbus.Holding, []uint16{0x0002, 0x0001}, "{type: uint32, word_order: little}", uint64(65538)},
		{"uint16 byte little", modbus.Holding, []uint16{0x3412}, "{type: uint16, byte_order: little}", uint64(0x1234)},
		{"int32 both little", modbus.Holding, []uint16{0xFDFF, 0xFFFF}, "{type: int32, byte_order: little, word_order: little}", int64(-3)},
		{"float32 word little", modbus.Holding, []uint16{uint16(f32), uint16(f32 >> 16)}, "{type: float32, word_order: little}", -12.5},
		{"uint64 word little", modbus.Holding, []uint16{1, 0, 0, 0}, "{type: uint64, word_order: little}", uint64(1)},
		{"scale", modbus.Input, []uint16{1234}, "{type: uint16, scale: 0.1}", 123.4},
		{"scale offset", modbus.Input, []uint16{0xFFF6}, "{type: int16, scale: 0.5, offset: 40}", 35.0},
		{"map", modbus.Input, []uint16{0, 307}, "{type: uint32, map: {35: fault, 307: ok}}", "ok"},
		{"map int16 negative", modbus.Input, []uint16{0xFFFF}, "{type: int16, map: {-1: none}}", "none"},
		{"string", modbus.Input, []uint16{0x4544, 0x4B2D, 0x3100, 0}, "{type: string, length: 4}", "EDK-1"},
		{"string little bytes", modbus.Input, []uint16{0x4445, 0x2D4B, 0x0031}, "{type: string, length: 3, byte_order: little}", "EDK-1"},
		{"string padded", modbus.Input, []uint16{0x4142, 0x2020}, "{type: string, length: 2}", "AB"},
		{"bit set", modbus.Holding, []uint16{0b1000}, "{bit: 3}", true},
		{"bit clear", modbus.Holding, []uint16{0b1000}, "{bit: 2}", false},
		{"coil", modbus.Coil, []uint16{1}, "{}", true},
		{"discrete input", modbus.DiscreteInput, []uint16{0}, "{}", false},
	}
	s := startSim(t, "")
	var yml strings.Builder
	yml.WriteString("modbus: {address: ADDR, poll: 1s}\ntelemetry:\n")
	for i, tc := range tests {
		reg := uint16(100 + 10*i)
		s.SetRegisters(tc.table, reg, tc.words...)
		def := strings.TrimSuffix(strings.TrimPrefix(tc.def, "{"), "}")
		if def != "" {
			def = ", " + def
		}
		fmt.Fprintf(&yml, "  v%d: {register: %d, table: %s%s}\n", i, reg, tc.table, def)
	}
	d := newDriver(t, s, yml.String(), modbus.Options{})
	r, err := d.Telemetry(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range tests {
		got := r.Values[fmt.Sprintf("v%d", i)]
		if f, ok := tc.want.(float64); ok {
			if g, ok := got.(float64); !ok || math.Abs(g-f) > 1e-9 {
				t.Errorf("%s: got %#v, want %v", tc.name, got, f)
			}
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %#v (%T), want %#v (%T)", tc.name, got, got, tc.want, tc.want)
		}
	}
	if len(r.Alerts) != 0 || r.Alerts == nil {
		t.Errorf("alerts %#v, want empty", r.Alerts)
	}
}

func TestUnavailableAndUnmapped(t *testing.T) {
	s := startSim(t, "")
	s.SetRegisters(modbus.Input, 0, 0x8000, 5, 0x7FC0, 0)
	d := newDriver(t, s, `
modbus: {address: ADDR}
telemetry:
  na:    {register: 0, table: input, type: int16, unavailable: 0x8000}
  enum:  {register: 1, table: input, map: {1: one}}
  nan:   {register: 2, table: input, type: float32}
`, modbus.Options{})
	r, err := d.Telemetry(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Values) != 0 {
		t.Fatalf("values %v, want none (unavailable, unmapped, NaN)", r.Values)
	}
}

const contiguous = `
modbus: {address: ADDR}
telemetry:
  a: {register: 0, table: input}
  b: {register: 1, table: input, type: uint32}
  c: {register: 3, table: input, type: float32}
  d: {register: 5, table: input, type: int64}
  e: {register: 9, table: input}
  f: {register: 10, table: input, bit: 0}
  g: {register: 10, table: input, bit: 1}
  h: {register: 20, table: input}
  i: {register: 0, table: coil}
  j: {register: 1, table: coil}
  k: {register: 0, poll: 5s}
`

func TestMergedReads(t *testing.T) {
	s := startSim(t, "")
	s.SetRegisters(modbus.Input, 0, make([]uint16, 21)...)
	s.SetRegisters(modbus.Coil, 0, 1, 0)
	s.SetRegisters(modbus.Holding, 0, 7)
	for _, tc := range []struct {
		name     string
		opts     modbus.Options
		requests uint64
	}{
		{"merged", modbus.Options{}, 4}, // input 0..10, input 20, coils 0..1, holding 0 (5s group)
		{"not merged", modbus.Options{NoMerge: true}, 11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDriver(t, s, contiguous, tc.opts)
			if got := d.Plan().Requests(); got != int(tc.requests) {
				t.Fatalf("plan has %d requests, want %d:\n%s", got, tc.requests, d.Plan())
			}
			r, err := d.Telemetry(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Values) != 11 || r.Values["i"] != true || r.Values["k"] != uint64(7) {
				t.Fatalf("values %v", r.Values)
			}
			if st := d.Stats(); st.Requests != tc.requests {
				t.Fatalf("%d requests, want %d", st.Requests, tc.requests)
			}
			// no group is due on the next call
			if _, err := d.Telemetry(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			if st := d.Stats(); st.Requests != tc.requests {
				t.Fatalf("%d requests after the second call, want %d", st.Requests, tc.requests)
			}
			if _, err := d.Poll(ctxT(t), time.Second); err != nil {
				t.Fatal(err)
			}
			if st := d.Stats(); st.Requests != 2*tc.requests-1 {
				t.Fatalf("%d requests after polling the 1s group, want %d", st.Requests, 2*tc.requests-1)
			}
			if groups := d.Groups(); !slices.Equal(groups, []time.Duration{time.Second, 5 * time.Second}) || d.Interval() != time.Second {
				t.Fatalf("groups %v", groups)
			}
			r, err = d.Poll(ctxT(t), 5*time.Second)
			if err != nil || len(r.Values) != 1 {
				t.Fatalf("poll 5s: %v %v", r.Values, err)
			}
		})
	}
}

func TestMergeLimits(t *testing.T) {
	var b strings.Builder
	b.WriteString("modbus: {address: tcp://127.0.0.1:1, max_gap: 2, gaps: [{table: input, from: 300, to: 300}]}\ntelemetry:\n")
	for i := range 130 { // 130 neighbouring registers: 125 + 5
		fmt.Fprintf(&b, "  r%d: {register: %d}\n", i, i)
	}
	b.WriteString("  g1: {register: 200, table: input}\n  g2: {register: 203, table: input}\n") // gap of 2: merged
	b.WriteString("  g3: {register: 207, table: input}\n")                                      // gap of 3: not merged
	b.WriteString("  g4: {register: 299, table: input}\n  g5: {register: 301, table: input}\n") // declared gap between
	for i := range 2001 {
		fmt.Fprintf(&b, "  c%d: {register: %d, table: coil}\n", i, i)
	}
	m, err := modbus.Parse("", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range modbus.PlanReads(m, true).Telemetry[0].Reads {
		got = append(got, fmt.Sprintf("%s %d+%d", r.Table, r.Start, r.Count))
	}
	want := []string{"holding 0+125", "holding 125+5", "input 200+4", "input 207+1", "input 299+1", "input 301+1", "coil 0+2000", "coil 2000+1"}
	if !slices.Equal(got, want) {
		t.Fatalf("reads %v, want %v", got, want)
	}
}

func TestTimeout(t *testing.T) {
	s := startSim(t, "")
	s.SetRegisters(modbus.Holding, 0, 42)
	d := newDriver(t, s, "modbus: {address: ADDR, timeout: 50ms}\ntelemetry:\n  a: {register: 0}\n", modbus.Options{})
	s.SetDelay(time.Second)
	start := time.Now()
	r, err := d.Telemetry(ctxT(t))
	if !errors.Is(err, mb.ErrRequestTimedOut) {
		t.Fatalf("err %v, want a timeout", err)
	}
	if el := time.Since(start); el > 900*time.Millisecond {
		t.Fatalf("a 50ms timeout took %s", el)
	}
	if !slices.Equal(r.Alerts, []string{driver.CommunicationError}) || len(r.Values) != 0 {
		t.Fatalf("reading %+v", r)
	}
	if !strings.Contains(err.Error(), "raise modbus.timeout") {
		t.Errorf("no hint in %q", err)
	}
	s.SetDelay(0)
	r, err = d.Telemetry(ctxT(t))
	if err != nil || r.Values["a"] != uint64(42) || len(r.Alerts) != 0 {
		t.Fatalf("after the timeout: %+v %v", r, err)
	}
	if st := d.Stats(); st.Connects != 2 {
		t.Fatalf("connects %d, want 2 (a timeout reopens the link)", st.Connects)
	}
}

func TestServerDisappearsAndReturns(t *testing.T) {
	s := startSim(t, "")
	s.SetRegisters(modbus.Holding, 0, 1)
	d := newDriver(t, s, "modbus: {address: ADDR}\ntelemetry:\n  a: {register: 0}\n", modbus.Options{})
	ctx := ctxT(t)
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	for range 3 { // broken link, then refused connects: errors, never a panic
		r, err := d.Telemetry(ctx)
		if err == nil || !slices.Contains(r.Alerts, driver.CommunicationError) {
			t.Fatalf("device gone: %+v %v", r, err)
		}
	}
	s.SetRegisters(modbus.Holding, 0, 2)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the driver to reconnect", func() bool {
		r, err := d.Telemetry(ctx)
		if err != nil {
			return false
		}
		if r.Values["a"] != uint64(2) || len(r.Alerts) != 0 {
			t.Fatalf("after return: %+v", r)
		}
		return true
	})
	if st := d.Stats(); st.Connects != 2 || st.DialFailures == 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBackoffGatesReconnects(t *testing.T) {
	d, err := modbus.New(&modbus.Map{Connection: modbus.Connection{Address: "tcp://127.0.0.1:1", Timeout: time.Second}}, modbus.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := ctxT(t)
	if _, err := d.ReadRegisters(ctx, 1, modbus.Holding, 0, 1); err == nil || errors.Is(err, modbus.ErrNotConnected) {
		t.Fatalf("first attempt: %v", err)
	}
	if _, err := d.ReadRegisters(ctx, 1, modbus.Holding, 0, 1); !errors.Is(err, modbus.ErrNotConnected) {
		t.Fatalf("second attempt within the backoff: %v", err)
	}
	if st := d.Stats(); st.DialFailures != 1 {
		t.Fatalf("dial failures %d, want 1", st.DialFailures)
	}
	if _, err := d.ReadRegisters(ctx, 1, modbus.Holding, 0, 126); err == nil {
		t.Fatal("126 registers accepted")
	}
	d.Close()
	if _, err := d.ReadRegisters(ctx, 1, modbus.Holding, 0, 1); !errors.Is(err, modbus.ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
}

func TestExceptionResponse(t *testing.T) {
	s := startSim(t, "")
	s.SetRegisters(modbus.Holding, 0, 5)
	d := newDriver(t, s, `
modbus: {address: ADDR}
telemetry:
  ok:      {register: 0}
  missing: {register: 500}
properties:
  gone: {register: 600}
`, modbus.Options{})
	r, err := d.Telemetry(ctxT(t))
	var re *modbus.RequestError
	if !errors.As(err, &re) || !re.Exception() || !errors.Is(err, mb.ErrIllegalDataAddress) || re.Register != 500 {
		t.Fatalf("err %v", err)
	}
	if !strings.Contains(err.Error(), "holding 500..500") || !strings.Contains(err.Error(), "declare a gap") {
		t.Errorf("message %q", err)
	}
	if r.Values["ok"] != uint64(5) || len(r.Values) != 1 || !slices.Equal(r.Alerts, []string{driver.CommunicationError}) {
		t.Fatalf("reading %+v", r)
	}
	if _, err := d.Properties(ctxT(t)); !modbus.IsException(err) {
		t.Fatalf("properties: %v", err)
	}
	if st := d.Stats(); st.Connects != 1 || st.Exceptions != 2 {
		t.Fatalf("an exception must keep the link: %+v", st)
	}
}

func TestWrites(t *testing.T) {
	s := startSim(t, "")
	s.SetRegisters(modbus.Holding, 10, 0, 0, 0, 0, 0, 0, 0)
	s.SetRegisters(modbus.Coil, 3, 0)
	d := newDriver(t, s, `
modbus: {address: ADDR, unit_id: 9}
telemetry:
  setpoint: {register: 10, type: int16, scale: 0.1}
commands:
  set:
    arguments: {v: {type: float, min: -100, max: 100}}
    write: {register: 10, type: int16, scale: 0.1, value: v}
  set_wide:
    arguments:
      v: {type: integer}
      f: {type: float, required: false}
    write:
      - {register: 11, type: int32, word_order: little, value: v}
      - {register: 13, type: float32, value: f}
      - {register: 15, type: uint16, offset: -40, value: 2}
  relay:
    arguments: {on: {type: boolean}}
    write: {table: coil, register: 3, value: on}
  bad_register:
    write: {register: 999, value: 1}
`, modbus.Options{})
	ctx := ctxT(t)
	p, err := d.Execute(ctx, "set", map[string]any{"v": -12.3})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Registers(modbus.Holding, 10, 1)[0]; int16(got) != -123 {
		t.Fatalf("register 10 = %d, want -123", int16(got))
	}
	if w := p["writes"].([]any)[0].(map[string]any); w["register"] != 10 || !reflect.DeepEqual(w["raw"], []int{0xFF85}) {
		t.Fatalf("payload %v", p)
	}
	r, err := d.Telemetry(ctx)
	if err != nil || math.Abs(r.Values["setpoint"].(float64)+12.3) > 1e-9 {
		t.Fatalf("read back %v %v", r.Values, err)
	}
	if _, err := d.Execute(ctx, "set_wide", map[string]any{"v": float64(-2)}); err != nil {
		t.Fatal(err)
	}
	if got := s.Registers(modbus.Holding, 11, 5); !slices.Equal(got, []uint16{0xFFFE, 0xFFFF, 0, 0, 42}) {
		t.Fatalf("registers 11..15 = %x (f not given: not written)", got)
	}
	if _, err := d.Execute(ctx, "set_wide", map[string]any{"v": 1, "f": 2.5}); err != nil {
		t.Fatal(err)
	}
	if got := s.Registers(modbus.Holding, 13, 2); got[0] != 0x4020 || got[1] != 0 {
		t.Fatalf("float32 2.5 = %x", got)
	}
	if _, err := d.Execute(ctx, "relay", map[string]any{"on": true}); err != nil || s.Registers(modbus.Coil, 3, 1)[0] != 1 {
		t.Fatalf("relay: %v", err)
	}
	before := s.Registers(modbus.Holding, 10, 1)[0]
	for _, tc := range []struct {
		cmd  string
		args map[string]any
		want string
	}{
		{"set", map[string]any{"v": 101.0}, `argument "v": 101 is above the maximum 100`},
		{"set", map[string]any{}, `argument "v": missing`},
		{"set", map[string]any{"v": "7"}, `argument "v": want a number, got string`},
		{"set", map[string]any{"v": 1.0, "x": 1}, `argument "x": unknown argument; set takes: v`},
		{"set_wide", map[string]any{"v": 1.5}, "want an integer"},
		{"set_wide", map[string]any{"v": 1e12}, "outside the int32 range"},
		{"relay", map[string]any{"on": 1}, "want true or false"},
	} {
		_, err := d.Execute(ctx, tc.cmd, tc.args)
		if !errors.Is(err, modbus.ErrBadArgument) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %v: %v, want %q", tc.cmd, tc.args, err, tc.want)
		}
	}
	if after := s.Registers(modbus.Holding, 10, 1)[0]; after != before {
		t.Fatal("a refused command wrote")
	}
	if _, err := d.Execute(ctx, "nope", nil); !errors.Is(err, modbus.ErrUnknownCommand) || !strings.Contains(err.Error(), "bad_register, relay, set, set_wide") {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := d.Execute(ctx, "bad_register", nil); !errors.Is(err, mb.ErrIllegalDataAddress) {
		t.Fatalf("bad register: %v", err)
	}
}

func TestAlerts(t *testing.T) {
	s := startSim(t, "")
	s.SetRegisters(modbus.Input, 0, 700, 1, 0b100)
	d := newDriver(t, s, `
modbus: {address: ADDR}
telemetry:
  temperature: {register: 0, table: input, type: int16, scale: 0.1}
  state:       {register: 1, table: input, map: {1: fault, 2: ok}}
alerts:
  hot:      {when: "temperature > 80"}
  warm:     {when: "temperature >= 70 and temperature <= 80"}
  broken:   {when: "state == \"fault\" or (temperature < -40)"}
  bit2:     {register: 2, table: input, bit: 2}
  bit3:     {register: 2, table: input, bit: 3}
`, modbus.Options{})
	r, err := d.Telemetry(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"bit2", "broken", "warm"}; !slices.Equal(r.Alerts, want) {
		t.Fatalf("alerts %v, want %v", r.Alerts, want)
	}
	if _, ok := r.Values["alert:bit2"]; ok || len(r.Values) != 2 {
		t.Fatalf("alert bits leak into values: %v", r.Values)
	}
	s.SetRegisters(modbus.Input, 0, 900, 2, 0b1000)
	r, _ = d.Poll(ctxT(t), time.Second) // Telemetry would wait for the 1s interval
	if want := []string{"bit3", "hot"}; !slices.Equal(r.Alerts, want) {
		t.Fatalf("alerts %v, want %v", r.Alerts, want)
	}
}

// TestInverterChain runs the shipped map against the simulator's profile:
// the laptop chain sim ← driver.
func TestInverterChain(t *testing.T) {
	s := startSim(t, "inverter")
	m, err := modbus.Load("modbussim/inverter.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m.Connection.Address = s.URL()
	d, err := modbus.New(m, modbus.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := ctxT(t)
	r, err := d.Telemetry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range m.Telemetry {
		if _, ok := r.Values[a.Name]; !ok {
			t.Errorf("telemetry %s missing", a.Name)
		}
	}
	if r.Values["status"] != "ok" || r.Values["enabled"] != true || r.Values["power_limit"] != uint64(100) || len(r.Alerts) != 0 {
		t.Fatalf("reading %+v", r)
	}
	props, err := d.Properties(ctx)
	if err != nil || props["model"] != "EDK-SIM-5000" || props["serial_number"] != uint64(2100012345) {
		t.Fatalf("properties %v %v", props, err)
	}
	if _, err := d.Execute(ctx, "set_power_limit", map[string]any{"limit": float64(40)}); err != nil {
		t.Fatal(err)
	}
	r, _ = d.Telemetry(ctx)
	if p := r.Values["ac_power"].(int64); r.Values["power_limit"] != uint64(40) || p > 2000 || p < 1600 {
		t.Fatalf("after limit 40%%: %v", r.Values)
	}
	if _, err := d.Execute(ctx, "simulate_fault", map[string]any{"active": true}); err != nil {
		t.Fatal(err)
	}
	r, _ = d.Telemetry(ctx)
	if want := []string{"grid_fault", "inverter_fault"}; !slices.Equal(r.Alerts, want) || r.Values["ac_power"] != int64(0) {
		t.Fatalf("fault: %+v", r)
	}
	if _, err := d.Execute(ctx, "stop", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Execute(ctx, "simulate_fault", map[string]any{"active": false}); err != nil {
		t.Fatal(err)
	}
	r, _ = d.Telemetry(ctx)
	if r.Values["status"] != "off" || r.Values["enabled"] != false {
		t.Fatalf("stopped: %+v", r)
	}
	if _, err := d.Execute(ctx, "set_cos_phi", map[string]any{"cos_phi": 0.9}); err != nil {
		t.Fatal(err)
	}
	r, _ = d.Telemetry(ctx)
	if c := r.Values["cos_phi"].(float64); math.Abs(c-0.9) > 1e-6 {
		t.Fatalf("cos_phi %v", c)
	}
	// the device itself refuses a limit above 100 (when the map would not)
	if _, err := d.ReadRegisters(ctx, 3, modbus.Holding, modbussim.InverterPowerLimit, 1); err != nil {
		t.Fatal(err)
	}
}

func TestSimulatorServe(t *testing.T) {
	s := startSim(t, "inverter")
	ctx, cancel := ctxWithCancel(t)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil {
		t.Fatal("restart after Close")
	}
	if _, err := modbussim.Listen(modbussim.Config{Listen: "127.0.0.1:0", Profile: "toaster"}); err == nil {
		t.Fatal("unknown profile accepted")
	}
}
