package blueprint

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/edk-go/edk/driver"
)

func TestCheckCommand(t *testing.T) {
	m := mustLoad(t, "inverter_v3.yml")
	for _, tc := range []struct {
		name    string
		command string
		args    string // JSON, decoded as a device receives it
		rule    Rule   // "" when the request is accepted
		msg     string // part of the error message
		want    string // JSON of the returned arguments, when accepted
	}{
		{"accepted", "set_power", `{"power": 3000}`, "", "", `{"power":3000}`},
		{"unknown command", "reboot", `{}`, RuleUnknownCommand, `unknown command "reboot"`, ""},
		{"unknown command suggestion", "set_powr", `{}`, RuleUnknownCommand, `did you mean "set_power"`, ""},
		{"missing required", "set_power", `{}`, RuleRequired, `argument "power" of set_power is required`, ""},
		{"null required", "set_power", `{"power": null}`, RuleRequired, `is required`, ""},
		{"string for float", "set_power", `{"power": "abc"}`, RuleType, `argument "power" of set_power must be a float (a number), not the string "abc"`, ""},
		{"below min", "set_power", `{"power": -1}`, RuleMin, `must be at least 0 (min), not -1`, ""},
		{"above max", "set_power", `{"power": 10000.5}`, RuleMax, `must be at most 10000 (max), not 10000.5`, ""},
		{"at max", "set_power", `{"power": 10000}`, "", "", `{"power":10000}`},
		{"defaults filled", "ramp_power", `{"power": 10, "step_seconds": 0}`, "", "", `{"power":10,"step_seconds":0,"step_watts":1000}`},
		{"null takes default", "ramp_power", `{"power": 10, "step_seconds": 0, "step_watts": null}`, "", "", `{"power":10,"step_seconds":0,"step_watts":1000}`},
		{"given beats default", "ramp_power", `{"power": 10, "step_seconds": 1, "step_watts": 5}`, "", "", `{"power":10,"step_seconds":1,"step_watts":5}`},
		{"enum string", "set_mode", `{"mode": "grid_tied"}`, "", "", `{"cycles":3,"dry_run":false,"mode":"grid_tied"}`},
		{"enum string refused", "set_mode", `{"mode": "island"}`, RuleEnum, `argument "mode" of set_mode must be one of "grid_tied", "off_grid", not the string "island"`, ""},
		{"enum integer", "set_mode", `{"mode": "off_grid", "cycles": 5}`, "", "", `{"cycles":5,"dry_run":false,"mode":"off_grid"}`},
		{"enum integer refused", "set_mode", `{"mode": "off_grid", "cycles": 4}`, RuleEnum, `must be one of 1, 3, 5, not the number 4`, ""},
		{"fractional integer", "set_mode", `{"mode": "off_grid", "cycles": 3.5}`, RuleType, `must be a whole number (integer), not 3.5`, ""},
		{"integral float for integer", "set_mode", `{"mode": "off_grid", "cycles": 3.0}`, "", "", `{"cycles":3,"dry_run":false,"mode":"off_grid"}`},
		{"bool wrong", "set_mode", `{"mode": "off_grid", "dry_run": "yes"}`, RuleType, `argument "dry_run" of set_mode must be a boolean, not the string "yes"`, ""},
		{"json anything", "set_mode", `{"mode": "off_grid", "settings": {"a": [1]}}`, "", "", `{"cycles":3,"dry_run":false,"mode":"off_grid","settings":{"a":[1]}}`},
		{"undeclared passes", "read_configuration", `{"extra": 1}`, "", "", `{"extra":1}`},
		{"no arguments", "read_configuration", `null`, "", "", `null`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var args map[string]any
			if err := json.Unmarshal([]byte(tc.args), &args); err != nil {
				t.Fatal(err)
			}
			before, _ := json.Marshal(args)
			got, err := m.CheckCommand(tc.command, args)
			if after, _ := json.Marshal(args); string(after) != string(before) {
				t.Errorf("input modified: %s → %s", before, after)
			}
			if tc.rule != "" {
				var ae *ArgumentError
				if !errors.As(err, &ae) {
					t.Fatalf("err = %v, want *ArgumentError", err)
				}
				if ae.Rule != tc.rule || ae.Command != tc.command || !strings.Contains(ae.Message, tc.msg) {
					t.Errorf("got %+v, want rule %s and message with %q", ae, tc.rule, tc.msg)
				}
				wantIs := ErrInvalidArgument
				if tc.rule == RuleUnknownCommand {
					wantIs = ErrUnknownCommand
				}
				if !errors.Is(err, wantIs) {
					t.Errorf("errors.Is(%v) false", wantIs)
				}
				// One vocabulary with the drivers: the same sentinels, and
				// a *driver.ArgumentError for an argument.
				var de *driver.ArgumentError
				if found := errors.As(err, &de); found != (tc.rule != RuleUnknownCommand) {
					t.Errorf("errors.As(*driver.ArgumentError) = %v for rule %s", found, tc.rule)
				} else if found && (de.Command != tc.command || de.Argument != ae.Argument || !strings.Contains(ae.Message, de.Problem) || de.Problem == "") {
					t.Errorf("driver.ArgumentError %+v does not match %+v", de, ae)
				}
				return
			}
			if err != nil {
				t.Fatalf("CheckCommand: %v", err)
			}
			b, _ := json.Marshal(got)
			if string(b) != tc.want {
				t.Errorf("args = %s, want %s", b, tc.want)
			}
		})
	}
}

func TestCheckCommandGoValues(t *testing.T) {
	m := mustLoad(t, "inverter_v3.yml")
	type watts float64
	for _, v := range []any{int(5), int64(5), uint8(5), float32(5), json.Number("5"), watts(5)} {
		if _, err := m.CheckCommand("set_power", map[string]any{"power": v}); err != nil {
			t.Errorf("%T: %v", v, err)
		}
	}
	for _, v := range []any{math.NaN(), math.Inf(1), []any{1}, map[string]any{}, true} {
		if _, err := m.CheckCommand("set_power", map[string]any{"power": v}); err == nil {
			t.Errorf("%#v accepted", v)
		}
	}
}

// Property test: random numbers around min, max and the enum values are
// accepted exactly when they satisfy the rules, checked independently.
func TestCheckCommandProperties(t *testing.T) {
	m := mustLoad(t, "inverter_v3.yml")
	r := rand.New(rand.NewPCG(1, 2))
	near := func(x float64) float64 {
		switch r.IntN(4) {
		case 0:
			return x
		case 1:
			return x + float64(r.IntN(5)-2) // integral neighbours
		case 2:
			return x + (r.Float64()-0.5)*1e-6 // just either side
		}
		return x + (r.Float64()-0.5)*10
	}
	for i := 0; i < 5000; i++ {
		// float with min 0, max 10000
		p := near([]float64{0, 10000}[r.IntN(2)])
		_, err := m.CheckCommand("set_power", map[string]any{"power": p})
		if ok := p >= 0 && p <= 10000; ok != (err == nil) {
			t.Fatalf("power %v: err = %v", p, err)
		}
		// integer with enum [1, 3, 5]
		c := near([]float64{1, 3, 5}[r.IntN(3)])
		_, err = m.CheckCommand("set_mode", map[string]any{"mode": "grid_tied", "cycles": c})
		if ok := c == 1 || c == 3 || c == 5; ok != (err == nil) {
			t.Fatalf("cycles %v: err = %v", c, err)
		}
		// integer with min 10, max 60000 (relay); integral values only
		rm := mustLoadCached(t)
		d := near([]float64{10, 60000}[r.IntN(2)])
		_, err = rm.CheckCommand("impulse", map[string]any{"port": "do-1", "duration": d})
		ok := d == math.Trunc(d) && d >= 10 && d <= 60000
		if ok != (err == nil) {
			t.Fatalf("duration %v: err = %v", d, err)
		}
		if err != nil {
			var ae *ArgumentError
			if !errors.As(err, &ae) || ae.Argument != "duration" {
				t.Fatalf("duration %v: %v", d, err)
			}
			wantRule := RuleType
			if d == math.Trunc(d) {
				wantRule = map[bool]Rule{true: RuleMin, false: RuleMax}[d < 10]
			}
			if ae.Rule != wantRule {
				t.Fatalf("duration %v: rule %s, want %s", d, ae.Rule, wantRule)
			}
		}
	}
}

var relay *Manifest

func mustLoadCached(t *testing.T) *Manifest {
	if relay == nil {
		relay = mustLoad(t, "relay_v3.yml")
	}
	return relay
}

func TestCheckTelemetry(t *testing.T) {
	m := mustLoad(t, "inverter_v3.yml")
	type status string
	for _, tc := range []struct {
		name   string
		values map[string]any
		alerts []string
		want   []string // "attribute problem"
	}{
		{"clean", map[string]any{"status": "producing", "power": 1.5, "voltage": 230, "grid_mode": 1, "relay_closed": true,
			"active_strings": []string{"a"}, "diagnostics": map[string]any{"x": 1}, "conn_alerts": []any{"not_configured"}}, []string{"overheat"}, nil},
		{"nil values skipped", map[string]any{"power": nil, "status": nil}, nil, nil},
		{"reserved keys skipped", map[string]any{"timestamp": 1, "alerts": []string{}}, nil, nil},
		{"named string type", map[string]any{"status": status("standby")}, nil, nil},
		{"undeclared", map[string]any{"pwer": 1.0}, nil, []string{"pwer undeclared"}},
		{"wrong type", map[string]any{"power": "high", "relay_closed": 1, "grid_mode": 0.5}, nil,
			[]string{"grid_mode wrong_type", "power wrong_type", "relay_closed wrong_type"}},
		{"not in enum", map[string]any{"status": "running", "grid_mode": 2}, nil, []string{"grid_mode not_in_enum", "status not_in_enum"}},
		{"undeclared alert", nil, []string{"overheat", "meltdown"}, []string{"meltdown undeclared_alert"}},
		{"undeclared alert in alerts attribute", map[string]any{"conn_alerts": []string{"lost"}}, nil, []string{"conn_alerts undeclared_alert"}},
		{"alerts attribute wrong type", map[string]any{"conn_alerts": "lost"}, nil, []string{"conn_alerts wrong_type"}},
		{"NaN is no float", map[string]any{"power": math.NaN()}, nil, []string{"power wrong_type"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, v := range m.CheckTelemetry(tc.values, tc.alerts) {
				if v.Message == "" {
					t.Errorf("empty message: %+v", v)
				}
				got = append(got, v.Attribute+" "+string(v.Problem))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("violations %v, want %v", got, tc.want)
			}
		})
	}
}

func TestViolationMessages(t *testing.T) {
	m := mustLoad(t, "inverter_v3.yml")
	vs := m.CheckTelemetry(map[string]any{"stauts": "x", "status": "runing", "power": "abc"}, []string{"meltdown"})
	var msgs []string
	for _, v := range vs {
		msgs = append(msgs, v.Message)
	}
	want := []string{
		`active alert "meltdown" is not declared under the manifest's alerts: declare it with a severity and display_name`,
		`telemetry "power" is the string "abc", but the manifest declares float`,
		`telemetry "status" is the string "runing", not one of its enum values "standby", "producing", "fault"`,
		`telemetry "stauts" is not declared in the manifest (did you mean "status"?)`,
	}
	if !reflect.DeepEqual(msgs, want) {
		t.Errorf("messages:\n%s\nwant:\n%s", strings.Join(msgs, "\n"), strings.Join(want, "\n"))
	}
}

func TestCheckProperties(t *testing.T) {
	m := mustLoad(t, "inverter_v3.yml")
	if vs := m.CheckProperties(map[string]any{"vendor": "edk", "model": "SimInverter 10K", "rated_power": 10000}); vs != nil {
		t.Errorf("clean properties: %v", vs)
	}
	vs := m.CheckProperties(map[string]any{"rated_power": 1.5, "firmware": "1.0"})
	if len(vs) != 2 || vs[0].Attribute != "firmware" || vs[0].Problem != Undeclared || vs[1].Problem != WrongType ||
		!strings.HasPrefix(vs[0].Message, `property "firmware" is not declared`) {
		t.Errorf("violations: %+v", vs)
	}
}

func TestCheckTelemetryDoesNotAllocate(t *testing.T) {
	m, values := benchManifest(t, 50)
	alerts := []string{"a1"}
	if n := testing.AllocsPerRun(100, func() {
		if vs := m.CheckTelemetry(values, alerts); vs != nil {
			t.Fatal(vs)
		}
	}); n != 0 {
		t.Errorf("CheckTelemetry allocates %v times on a clean message", n)
	}
}

// benchManifest makes a manifest with n telemetry attributes of mixed
// types, and a message that conforms to it.
func benchManifest(t testing.TB, n int) (*Manifest, map[string]any) {
	var b strings.Builder
	b.WriteString(v3 + "alerts:\n  a1: {display_name: A1, severity: error}\ntelemetry:\n")
	values := map[string]any{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("attr_%02d", i)
		switch i % 5 {
		case 0:
			fmt.Fprintf(&b, "  %s: {display_name: X, type: float, unit: W}\n", name)
			values[name] = float64(i) * 1.5
		case 1:
			fmt.Fprintf(&b, "  %s: {display_name: X, type: integer}\n", name)
			values[name] = i
		case 2:
			fmt.Fprintf(&b, "  %s: {display_name: X, type: string, enum: [idle, running, fault]}\n", name)
			values[name] = "running"
		case 3:
			fmt.Fprintf(&b, "  %s: {display_name: X, type: boolean}\n", name)
			values[name] = true
		case 4:
			fmt.Fprintf(&b, "  %s: {display_name: X, type: integer, enum: [0, 1, 2]}\n", name)
			values[name] = int64(2)
		}
	}
	m, err := Parse("bench.yml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return m, values
}

func BenchmarkCheckTelemetry(b *testing.B) {
	for _, n := range []int{10, 50} {
		m, values := benchManifest(b, n)
		alerts := []string{"a1"}
		b.Run(fmt.Sprintf("attrs=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if vs := m.CheckTelemetry(values, alerts); vs != nil {
					b.Fatal(vs)
				}
			}
		})
	}
}

func BenchmarkCheckCommand(b *testing.B) {
	m := mustLoad(b, "inverter_v3.yml")
	args := map[string]any{"power": 3000.0, "step_seconds": 1.0, "step_watts": 500.0}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.CheckCommand("ramp_power", args); err != nil {
			b.Fatal(err)
		}
	}
}
