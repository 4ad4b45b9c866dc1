package modbus_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/edk-go/edk/driver/modbus"
)

func TestLoadExample(t *testing.T) {
	m, err := modbus.Load("modbussim/inverter.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if m.Connection.UnitID != 3 || len(m.Telemetry) != 10 || len(m.Properties) != 2 || len(m.Commands) != 5 || len(m.Alerts) != 3 {
		t.Fatalf("unexpected map: %+v", m)
	}
	p := modbus.PlanReads(m, true)
	if len(p.Telemetry) != 2 || p.Telemetry[0].Poll.String() != "1s" || p.Telemetry[1].Poll.String() != "10s" {
		t.Fatalf("plan:\n%s", p)
	}
	meter, err := modbus.Load("testdata/meter.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := modbus.PlanReads(meter, true).Requests(); got != 5+1 { // + 1 request for the two properties
		t.Fatalf("meter plan: %d requests\n%s", got, modbus.PlanReads(meter, true))
	}
	if _, err := modbus.Load("testdata/missing.yaml"); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

const head = "modbus: {address: tcp://127.0.0.1:502}\n"

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string // substrings of the error, each with its position
	}{
		{"syntax", "modbus: {address: [", []string{"test.yaml:1:"}},
		// worded as a manifest's (internal/yamlproblem.Syntax), the line once
		{"syntax line", "modbus:\n  address: [\n", []string{"test.yaml:2:1: not valid YAML: did not find expected node content (fix the syntax"}},
		{"empty", "", []string{"empty"}},
		{"not a mapping", "- a\n", []string{"1:1: want a mapping"}},
		{"unknown section", head + "telemtry: {}\n", []string{"2:1: telemtry: unknown key; did you mean telemetry?"}},
		{"no modbus", "telemetry:\n  a: {register: 1}\n", []string{"modbus: missing"}},
		{"no address", "modbus: {unit_id: 1}\ntelemetry:\n  a: {register: 1}\n", []string{"1:9: modbus.address: missing"}},
		{"bad scheme", "modbus: {address: udp://x:1}\ntelemetry:\n  a: {register: 1}\n", []string{`1:19: modbus.address: unknown scheme "udp"`}},
		{"tcp no port", "modbus: {address: tcp://x}\ntelemetry:\n  a: {register: 1}\n", []string{"needs a host and a port"}},
		{"rtu bad parity", "modbus: {address: \"rtu:///dev/ttyUSB0?parity=X\"}\ntelemetry:\n  a: {register: 1}\n", []string{`parity="X"`}},
		{"rtu unknown option", "modbus: {address: \"rtu:///dev/ttyUSB0?speed=9600\"}\ntelemetry:\n  a: {register: 1}\n", []string{`unknown option "speed"`}},
		{"unit id range", "modbus: {address: tcp://h:502, unit_id: 300}\ntelemetry:\n  a: {register: 1}\n", []string{"1:41: modbus.unit_id: 300 is out of range 0..255"}},
		{"bad timeout", "modbus: {address: tcp://h:502, timeout: fast}\ntelemetry:\n  a: {register: 1}\n", []string{"modbus.timeout: want a positive duration"}},
		{"unknown type", head + "telemetry:\n  soc: {register: 1, type: uint33}\n", []string{`3:28: telemetry.soc.type: unknown type "uint33"`}},
		{"unknown table", head + "telemetry:\n  soc: {register: 1, table: inputs}\n", []string{`3:29: telemetry.soc.table: unknown table "inputs"`}},
		{"unknown value key", head + "telemetry:\n  soc: {register: 1, scal: 2}\n", []string{"3:22: telemetry.soc.scal: unknown key; did you mean scale?"}},
		{"unknown key, nothing close", head + "telemetry:\n  soc: {register: 1, colour: red}\n", []string{"3:22: telemetry.soc.colour: unknown key; known keys: register, table"}},
		{"sorted by line", head + "telemetry:\n  b: {register: 2, type: x}\n  a: {register: 1, scal: 2}\nproperties:\n  c: {regster: 1}\n", []string{"test.yaml:3:", "3:26: telemetry.b.type", "4:20: telemetry.a.scal", "6:7: properties.c.regster: unknown key; did you mean register?"}},
		{"missing register", head + "telemetry:\n  soc: {type: int16}\n", []string{"3:8: telemetry.soc.register: missing"}},
		{"register range", head + "telemetry:\n  soc: {register: 70000}\n", []string{"telemetry.soc.register: 70000 is out of range"}},
		{"register not int", head + "telemetry:\n  soc: {register: abc}\n", []string{`telemetry.soc.register: want an integer, got "abc"`}},
		{"scale zero", head + "telemetry:\n  soc: {register: 1, scale: 0}\n", []string{"3:29: telemetry.soc.scale: scale 0"}},
		{"past end", head + "telemetry:\n  soc: {register: 65535, type: uint32}\n", []string{"runs past register 65535"}},
		{"string no length", head + "telemetry:\n  s: {register: 1, type: string}\n", []string{"telemetry.s.length: missing"}},
		{"length on int", head + "telemetry:\n  s: {register: 1, type: int32, length: 3}\n", []string{"length is only for strings"}},
		{"bool no bit", head + "telemetry:\n  s: {register: 1, type: bool}\n", []string{"needs bit: 0..15"}},
		{"bit range", head + "telemetry:\n  s: {register: 1, bit: 16}\n", []string{"telemetry.s.bit: 16 is out of range 0..15"}},
		{"coil with type", head + "telemetry:\n  s: {register: 1, table: coil, type: int16}\n", []string{"use type bool"}},
		{"map on float", head + "telemetry:\n  s: {register: 1, type: float32, map: {1: a}}\n", []string{"a map needs an integer type"}},
		{"map bad key", head + "telemetry:\n  s: {register: 1, map: {x: a}}\n", []string{"3:26: telemetry.s.map.x: a map key must be an integer"}},
		{"reserved", head + "telemetry:\n  timestamp: {register: 1}\n", []string{`3:3: telemetry.timestamp: "timestamp" is reserved`}},
		{"bad name", head + "telemetry:\n  1abc: {register: 1}\n", []string{"3:3: telemetry.1abc: a name must start with a letter"}},
		{"poll on property", head + "properties:\n  s: {register: 1, poll: 1s}\n", []string{"3:20: properties.s.poll: only telemetry"}},
		{"overlap", head + "telemetry:\n  a: {register: 10, type: uint32}\n  b: {register: 11}\n", []string{"4:6: telemetry.b: holding registers 11..11 overlap telemetry.a (line 3"}},
		{"overlap across sections", head + "telemetry:\n  a: {register: 10, type: uint64}\nproperties:\n  b: {register: 13, type: int16}\n", []string{"properties.b: holding registers 13..13 overlap telemetry.a"}},
		{"same bit twice", head + "telemetry:\n  a: {register: 10, bit: 1}\n  b: {register: 10, bit: 1}\n", []string{"bit 1 of holding register 10 is also telemetry.a"}},
		{"value in gap", "modbus: {address: tcp://h:502, gaps: [{table: input, from: 5, to: 9}]}\ntelemetry:\n  a: {register: 8, table: input}\n", []string{"inside the declared gap 5..9"}},
		{"gap reversed", "modbus: {address: tcp://h:502, gaps: [{from: 9, to: 5}]}\ntelemetry:\n  a: {register: 1}\n", []string{"modbus.gaps[0]: to (5) is before from (9)"}},
		{"too long for max_registers", "modbus: {address: tcp://h:502, max_registers: 2}\ntelemetry:\n  a: {register: 1, type: uint64}\n", []string{"takes 4 registers but modbus.max_registers is 2"}},
		{"command no write", head + "commands:\n  go: {}\n", []string{"3:7: commands.go.write: missing"}},
		{"command unknown arg", head + "commands:\n  go:\n    write: {register: 1, value: speed}\n", []string{`4:33: commands.go.write.value: "speed" is not an argument`}},
		{"command bad arg type", head + "commands:\n  go:\n    arguments: {a: {type: text}}\n    write: {register: 1, value: a}\n", []string{`unknown argument type "text"`}},
		{"command min max", head + "commands:\n  go:\n    arguments: {a: {type: integer, min: 5, max: 1}}\n    write: {register: 1, value: a}\n", []string{"min (5) is above max (1)"}},
		{"command const range", head + "commands:\n  go:\n    write: {register: 1, type: uint16, value: 70000}\n", []string{"outside the uint16 range"}},
		{"command write input", head + "commands:\n  go:\n    write: {register: 1, table: input, value: 1}\n", []string{"only holding registers and coils can be written"}},
		{"command bool to register", head + "commands:\n  go:\n    arguments: {on: {type: boolean}}\n    write: {register: 1, value: on}\n", []string{`argument "on" is boolean but the write is uint16`}},
		{"alert unknown attribute", head + "telemetry:\n  t: {register: 1}\nalerts:\n  hot: {when: \"temp > 80\"}\n", []string{`5:15: alerts.hot.when: "temp" is not a telemetry attribute`}},
		{"alert syntax", head + "telemetry:\n  t: {register: 1}\nalerts:\n  hot: {when: \"t >\"}\n", []string{"alerts.hot.when: the expression ends too early"}},
		{"alert both", head + "telemetry:\n  t: {register: 1}\nalerts:\n  hot: {when: \"t > 1\", register: 3, bit: 1}\n", []string{"either when or a register bit"}},
		{"alert register no bit", head + "alerts:\n  hot: {register: 3}\n", []string{"a register alert needs bit"}},
		{"alert reserved", head + "telemetry:\n  t: {register: 1}\nalerts:\n  communication_error: {when: \"t > 1\"}\n", []string{"is reserved"}},
		{"nothing declared", head, []string{"declares no telemetry"}},
		{"several problems", head + "telemetry:\n  a: {register: 1, type: x}\n  b: {register: -1}\n", []string{"3:", "4:"}},
	}
	seen := map[string]bool{}
	for _, tc := range tests {
		if seen[tc.name] {
			t.Fatalf("duplicate case %q", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			_, err := modbus.Parse("test.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			var me *modbus.MapError
			if !errors.As(err, &me) {
				t.Fatalf("error is %T, want *MapError", err)
			}
			at := -1
			for _, w := range tc.want {
				i := strings.Index(err.Error(), w)
				if i < 0 {
					t.Errorf("error\n%v\ndoes not contain %q", err, w)
				}
				if tc.name == "sorted by line" && i < at {
					t.Errorf("error\n%v\nhas %q out of order", err, w)
				}
				at = i
			}
		})
	}
}

func TestLoadValid(t *testing.T) {
	m, err := modbus.Parse(

		"", []byte(`
modbus: {address: "rtu:///dev/ttyUSB0?baud=9600&parity=E&stop_bits=1", unit_id: 7, byte_order: little, word_order: little}
telemetry:
  a: {register: 0x10, type: float32}
  b: {register: 0x10, bit: 3}
  c: {register: 20, type: int16, unavailable: [0x8000]}
commands:
  set:
    arguments: {x: {type: float, default: 1.5}}
    write: [{register: 30, type: int32, scale: 0.1, value: x}, {register: 40, value: 1}]
`))

	if err != nil {
		t.Fatal(err)
	}
	c := m.Connection
	if c.Baud != 9600 || c.Parity != 1 || c.StopBits != 1 || c.DataBits != 8 || c.UnitID != 7 {
		t.Fatalf("connection: %+v", c)
	}
	if a := m.Telemetry[0]; a.ByteOrder != modbus.Little || a.WordOrder != modbus.Little || a.Unit != 7 || a.Register != 16 {
		t.Fatalf("value a: %+v", a)
	}
	if b := m.Telemetry[1]; b.Type != modbus.Bool || b.Bit != 3 {
		t.Fatalf("value b: %+v", b)
	}
	if w := m.Commands[0].Writes; len(w) != 2 || w[0].Scale != 0.1 || w[1].Const != 1.0 {
		t.Fatalf("writes: %+v", w)
	}
	if _, err := modbus.ParseConnection("tcp://10.0.0.1:502"); err != nil {
		t.Fatal(err)
	}
	if _, err := modbus.ParseConnection("tcp//nope"); err == nil {
		t.Fatal("bad address accepted")
	}
}

func FuzzLoadRegisterMap(f *testing.F) {
	seed, err := os.ReadFile("modbussim/inverter.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(head + "telemetry:\n  a: {register: 1, type: string, length: 3}\nalerts:\n  x: {when: \"(a == \\\"x\\\" or a != \\\"y\\\") and a == \\\"z\\\"\"}\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte(head + "commands:\n  c:\n    arguments: {v: {type: float, min: -1e9}}\n    write: [{register: 1, type: float64, value: v, word_order: little}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := modbus.Parse("fuzz.yaml", data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		_ = modbus.PlanReads(m, true).String()
		_ = modbus.PlanReads(m, false)
	})
}
