package mqttapi_test

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edk-go/edk/mqttapi"
)

func TestTelemetryEncode(t *testing.T) {
	type point struct {
		X float64 `json:"x"`
		Y float64 `json:"y"`
	}
	tests := []struct {
		name string
		in   mqttapi.Telemetry
		want string
	}{
		{"nothing but a timestamp", mqttapi.Telemetry{Timestamp: 1718029200},
			`{"timestamp":1718029200}`},
		{"unknown alerts are not sent", mqttapi.Telemetry{Timestamp: 1, Alerts: mqttapi.UnknownAlerts(), Values: map[string]any{"a": 1}},
			`{"timestamp":1,"a":1}`},
		{"no alerts are an empty list", mqttapi.Telemetry{Timestamp: 1, Alerts: mqttapi.NoAlerts(), Values: map[string]any{"a": 1}},
			`{"timestamp":1,"alerts":[],"a":1}`},
		{"active alerts keep their order", mqttapi.Telemetry{Timestamp: 1, Alerts: mqttapi.ActiveAlerts("stack_overheat", "low_water_level")},
			`{"timestamp":1,"alerts":["stack_overheat","low_water_level"]}`},
		{"active alerts without names", mqttapi.Telemetry{Timestamp: 1, Alerts: mqttapi.ActiveAlerts()},
			`{"timestamp":1,"alerts":[]}`},
		{"alert name escaped", mqttapi.Telemetry{Timestamp: 1, Alerts: mqttapi.ActiveAlerts(`say "hi"`)},
			`{"timestamp":1,"alerts":["say \"hi\""]}`},
		{"keys sorted", mqttapi.Telemetry{Timestamp: 1, Values: map[string]any{"zeta": 1, "alpha": 2, "Mu": 3, "beta": 4, "alpha2": 5}},
			`{"timestamp":1,"Mu":3,"alpha":2,"alpha2":5,"beta":4,"zeta":1}`},
		{"keys sorted by bytes", mqttapi.Telemetry{Timestamp: 1, Values: map[string]any{"é": 1, "z": 2, "_": 3, "0": 4}},
			`{"timestamp":1,"0":4,"_":3,"z":2,"é":1}`},
		{"mixed scalars", mqttapi.Telemetry{Timestamp: 1, Values: map[string]any{"f": 47.85, "i": 12, "s": "ok", "b": true, "n": nil, "neg": -3}},
			`{"timestamp":1,"b":true,"f":47.85,"i":12,"n":null,"neg":-3,"s":"ok"}`},
		{"false", mqttapi.Telemetry{Timestamp: 1, Values: map[string]any{"heater_on": false}},
			`{"timestamp":1,"heater_on":false}`},
		{"empty string", mqttapi.Telemetry{Timestamp: 1, Values: map[string]any{"s": ""}},
			`{"timestamp":1,"s":""}`},
		{"key escaped", mqttapi.Telemetry{Timestamp: 1, Values: map[string]any{"a\"b\\c\n": 1}},
			`{"timestamp":1,"a\"b\\c\n":1}`},
		{"nested map sorted", mqttapi.Telemetry{Timestamp: 1, Values: map[string]any{"dryer": map[string]any{"state": "regenerating", "cycle": 3}}},
			`{"timestamp":1,"dryer":{"cycle":3,"state":"regenerating"}}`},
		{"slice of floats", mqttapi.Telemetry{Timestamp: 1, Values: map[string]any{"cells": []float64{1.92, 1.93, 2}}},
			`{"timestamp":1,"cells":[1.92,1.93,2]}`},
		{"slice of any", mqttapi.Telemetry{Timestamp: 1, Values: map[string]any{"mix": []any{1, "x", nil, false, []int{}, map[string]int{}}}},
			`{"timestamp":1,"mix":[1,"x",null,false,[],{}]}`},
		{"nested deeply", mqttapi.Telemetry{Timestamp: 1, Values: map[string]any{"a": map[string]any{"b": []any{map[string]any{"c": []string{"d"}}}}}},
			`{"timestamp":1,"a":{"b":[{"c":["d"]}]}}`},
		{"nil slice", mqttapi.Telemetry{Timestamp: 1, Values: map[string]any{"s": []int(nil)}},
			`{"timestamp":1,"s":null}`},
		{"struct value", mqttapi.Telemetry{Timestamp: 1, Values: map[string]any{"pos": point{1.5, -2}}},
			`{"timestamp":1,"pos":{"x":1.5,"y":-2}}`},
		{"raw message value", mqttapi.Telemetry{Timestamp: 1, Values: map[string]any{"raw": json.RawMessage(`{"k": [1, 2]}`)}},
			`{"timestamp":1,"raw":{"k":[1,2]}}`},
		{"reserved names differ by case", mqttapi.Telemetry{Timestamp: 1, Values: map[string]any{"Timestamp": 2, "ALERTS": 3}},
			`{"timestamp":1,"ALERTS":3,"Timestamp":2}`},
		{"negative timestamp passed through", mqttapi.Telemetry{Timestamp: -5},
			`{"timestamp":-5}`},
		{"large timestamp", mqttapi.Telemetry{Timestamp: math.MaxInt64},
			`{"timestamp":9223372036854775807}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.MarshalJSON()
			if err != nil {
				t.Fatalf("MarshalJSON: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("MarshalJSON =\n  %s\nwant\n  %s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("MarshalJSON output is not valid JSON: %s", got)
			}
			// AppendJSON appends, and json.Marshal goes through MarshalJSON.
			app, err := tt.in.AppendJSON([]byte("prefix:"))
			if err != nil || string(app) != "prefix:"+tt.want {
				t.Errorf("AppendJSON = %q, %v; want %q", app, err, "prefix:"+tt.want)
			}
			std, err := json.Marshal(tt.in)
			if err != nil {
				t.Fatalf("json.Marshal: %v", err)
			}
			if string(std) != canonicalJSON(t, []byte(tt.want)) {
				t.Errorf("json.Marshal = %s, want %s", std, tt.want)
			}
		})
	}
}

func TestTelemetryAlertsKey(t *testing.T) {
	values := map[string]any{"status": "ok"}
	tests := []struct {
		name    string
		alerts  mqttapi.Alerts
		present bool
		want    string // the raw "alerts" value when present
	}{
		{"zero value", mqttapi.Alerts{}, false, ""},
		{"UnknownAlerts", mqttapi.UnknownAlerts(), false, ""},
		{"NoAlerts", mqttapi.NoAlerts(), true, `[]`},
		{"ActiveAlerts without names", mqttapi.ActiveAlerts(), true, `[]`},
		{"ActiveAlerts one", mqttapi.ActiveAlerts("overheat"), true, `["overheat"]`},
		{"ActiveAlerts two", mqttapi.ActiveAlerts("overheat", "low_pressure"), true, `["overheat","low_pressure"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := mqttapi.Telemetry{Timestamp: 1, Alerts: tt.alerts, Values: values}.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			raw, ok := jsonObject(t, b)["alerts"]
			if ok != tt.present {
				t.Fatalf("%s: alerts key present = %v, want %v", b, ok, tt.present)
			}
			if ok && string(raw) != tt.want {
				t.Errorf("alerts = %s, want %s", raw, tt.want)
			}
		})
	}
}

func TestAlertsAccessors(t *testing.T) {
	tests := []struct {
		name      string
		alerts    mqttapi.Alerts
		known     bool
		names     []string
		namesNil  bool
		namesSize int
	}{
		{"zero value", mqttapi.Alerts{}, false, nil, true, 0},
		{"UnknownAlerts", mqttapi.UnknownAlerts(), false, nil, true, 0},
		{"NoAlerts", mqttapi.NoAlerts(), true, []string{}, false, 0},
		{"ActiveAlerts without names", mqttapi.ActiveAlerts(), true, []string{}, false, 0},
		{"ActiveAlerts", mqttapi.ActiveAlerts("a", "b"), true, []string{"a", "b"}, false, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.alerts.Known(); got != tt.known {
				t.Errorf("Known() = %v, want %v", got, tt.known)
			}
			names := tt.alerts.Names()
			if (names == nil) != tt.namesNil || len(names) != tt.namesSize {
				t.Errorf("Names() = %#v, want %#v", names, tt.names)
			}
			if len(names) > 0 && !reflect.DeepEqual(names, tt.names) {
				t.Errorf("Names() = %q, want %q", names, tt.names)
			}
		})
	}
	t.Run("ActiveAlerts copies its argument", func(t *testing.T) {
		in := []string{"a", "b"}
		a := mqttapi.ActiveAlerts(in...)
		in[0] = "changed"
		if got := a.Names(); got[0] != "a" {
			t.Errorf("Names() = %q after the caller changed its slice", got)
		}
	})
	t.Run("NoAlerts equals ActiveAlerts without names", func(t *testing.T) {
		if !reflect.DeepEqual(mqttapi.NoAlerts(), mqttapi.ActiveAlerts()) {
			t.Errorf("NoAlerts() = %#v, ActiveAlerts() = %#v", mqttapi.NoAlerts(), mqttapi.ActiveAlerts())
		}
	})
}

func TestPropertiesEncode(t *testing.T) {
	tests := []struct {
		name string
		in   mqttapi.Properties
		want string
	}{
		{"nothing but a timestamp", mqttapi.Properties{Timestamp: 1718029200}, `{"timestamp":1718029200}`},
		{"empty map", mqttapi.Properties{Timestamp: 7, Values: map[string]any{}}, `{"timestamp":7}`},
		{"device info sorted", mqttapi.Properties{Timestamp: 1, Values: map[string]any{
			"vendor": "Enapter", "model": "EL 2.1", "firmware_version": "2.4.1", "max_production_rate": 500, "nominal_power_kw": 2.4,
		}}, `{"timestamp":1,"firmware_version":"2.4.1","max_production_rate":500,"model":"EL 2.1","nominal_power_kw":2.4,"vendor":"Enapter"}`},
		{"v1 ucm channel", mqttapi.Properties{Timestamp: 1, Values: map[string]any{"virtual": true, "lua_api_ver": 1}},
			`{"timestamp":1,"lua_api_ver":1,"virtual":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.MarshalJSON()
			if err != nil {
				t.Fatalf("MarshalJSON: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("MarshalJSON = %s, want %s", got, tt.want)
			}
			app, err := tt.in.AppendJSON([]byte("x"))
			if err != nil || string(app) != "x"+tt.want {
				t.Errorf("AppendJSON = %q, %v; want %q", app, err, "x"+tt.want)
			}
		})
	}
}

func TestEncodeTimestampZeroIsNow(t *testing.T) {
	encoders := []struct {
		name   string
		encode func() ([]byte, error)
	}{
		{"telemetry", mqttapi.Telemetry{Values: map[string]any{"a": 1}}.MarshalJSON},
		{"telemetry append", func() ([]byte, error) { return mqttapi.Telemetry{}.AppendJSON(nil) }},
		{"properties", mqttapi.Properties{Values: map[string]any{"a": 1}}.MarshalJSON},
		{"log", mqttapi.Log{Message: "m", Severity: mqttapi.SeverityInfo}.MarshalJSON},
	}
	for _, e := range encoders {
		t.Run(e.name, func(t *testing.T) {
			before := time.Now().Unix()
			b, err := e.encode()
			after := time.Now().Unix()
			if err != nil {
				t.Fatal(err)
			}
			ts, err := strconv.ParseInt(string(jsonObject(t, b)["timestamp"]), 10, 64)
			if err != nil {
				t.Fatalf("%s: timestamp: %v", b, err)
			}
			if ts < before || ts > after {
				t.Errorf("timestamp %d not within [%d, %d]", ts, before, after)
			}
		})
	}
}

func TestEncodeReservedKeys(t *testing.T) {
	tests := []struct {
		name   string
		encode func() ([]byte, error)
	}{
		{"telemetry timestamp", mqttapi.Telemetry{Timestamp: 1, Values: map[string]any{"timestamp": 5}}.MarshalJSON},
		{"telemetry alerts", mqttapi.Telemetry{Timestamp: 1, Values: map[string]any{"alerts": []string{"x"}}}.MarshalJSON},
		{"telemetry alerts among others", mqttapi.Telemetry{Timestamp: 1, Alerts: mqttapi.NoAlerts(), Values: map[string]any{"a": 1, "alerts": nil, "z": 2}}.MarshalJSON},
		{"telemetry append timestamp", func() ([]byte, error) {
			return mqttapi.Telemetry{Timestamp: 1, Values: map[string]any{"timestamp": 1}}.AppendJSON(make([]byte, 0, 64))
		}},
		{"properties timestamp", mqttapi.Properties{Timestamp: 1, Values: map[string]any{"timestamp": "now"}}.MarshalJSON},
		{"properties alerts", mqttapi.Properties{Timestamp: 1, Values: map[string]any{"alerts": []string{}}}.MarshalJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.encode()
			if !errors.Is(err, mqttapi.ErrReservedKey) {
				t.Fatalf("encode = %q, %v; want an error wrapping ErrReservedKey", b, err)
			}
			if errors.Is(err, mqttapi.ErrInvalidValue) {
				t.Errorf("error %v also matches ErrInvalidValue", err)
			}
		})
	}
}

func TestEncodeInvalidValues(t *testing.T) {
	nan32 := float32(math.NaN())
	inf32 := float32(math.Inf(1))
	tests := []struct {
		name     string
		values   map[string]any
		alerts   mqttapi.Alerts
		sentinel error // nil: any error will do
	}{
		{"NaN", map[string]any{"v": math.NaN()}, mqttapi.Alerts{}, mqttapi.ErrInvalidValue},
		{"+Inf", map[string]any{"v": math.Inf(1)}, mqttapi.Alerts{}, mqttapi.ErrInvalidValue},
		{"-Inf", map[string]any{"v": math.Inf(-1)}, mqttapi.Alerts{}, mqttapi.ErrInvalidValue},
		{"float32 NaN", map[string]any{"v": nan32}, mqttapi.Alerts{}, mqttapi.ErrInvalidValue},
		{"float32 +Inf", map[string]any{"v": inf32}, mqttapi.Alerts{}, mqttapi.ErrInvalidValue},
		{"float32 -Inf", map[string]any{"v": -inf32}, mqttapi.Alerts{}, mqttapi.ErrInvalidValue},
		{"NaN in a slice", map[string]any{"v": []float64{1, math.NaN()}}, mqttapi.Alerts{}, mqttapi.ErrInvalidValue},
		{"Inf in a map", map[string]any{"v": map[string]any{"x": math.Inf(1)}}, mqttapi.Alerts{}, mqttapi.ErrInvalidValue},
		{"NaN of a named type", map[string]any{"v": celsius(math.NaN())}, mqttapi.Alerts{}, mqttapi.ErrInvalidValue},
		{"channel", map[string]any{"v": make(chan int)}, mqttapi.Alerts{}, mqttapi.ErrInvalidValue},
		{"function", map[string]any{"v": func() {}}, mqttapi.Alerts{}, mqttapi.ErrInvalidValue},
		{"complex", map[string]any{"v": complex(1, 2)}, mqttapi.Alerts{}, mqttapi.ErrInvalidValue},
		{"map with non-string keys of struct type", map[string]any{"v": map[struct{}]int{{}: 1}}, mqttapi.Alerts{}, mqttapi.ErrInvalidValue},
		{"marshaler failing", map[string]any{"v": failingMarshaler{}}, mqttapi.Alerts{}, mqttapi.ErrInvalidValue},
		{"invalid UTF-8 value", map[string]any{"v": "ok\xff"}, mqttapi.Alerts{}, mqttapi.ErrInvalidValue},
		{"truncated UTF-8 value", map[string]any{"v": "\xe2\x82"}, mqttapi.Alerts{}, mqttapi.ErrInvalidValue},
		{"surrogate half value", map[string]any{"v": "\xed\xa0\x80"}, mqttapi.Alerts{}, mqttapi.ErrInvalidValue},
		{"invalid UTF-8 key", map[string]any{"k\xff": 1}, mqttapi.Alerts{}, mqttapi.ErrInvalidValue},
		{"invalid UTF-8 alert", nil, mqttapi.ActiveAlerts("ok", "bad\xc0"), mqttapi.ErrInvalidValue},
		{"empty key", map[string]any{"": 1}, mqttapi.Alerts{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := mqttapi.Telemetry{Timestamp: 1, Alerts: tt.alerts, Values: tt.values}.MarshalJSON()
			if err == nil {
				t.Fatalf("MarshalJSON = %s, want an error", b)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("error %v does not wrap %v", err, tt.sentinel)
			}
			if errors.Is(err, mqttapi.ErrReservedKey) {
				t.Errorf("error %v matches ErrReservedKey", err)
			}
			if !strings.HasPrefix(err.Error(), "encode telemetry") {
				t.Errorf("error %q lacks the %q prefix", err, "encode telemetry")
			}
			if tt.alerts.Known() {
				return // properties have no alerts
			}
			_, err = mqttapi.Properties{Timestamp: 1, Values: tt.values}.MarshalJSON()
			if err == nil || tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("Properties.MarshalJSON error = %v, want one wrapping %v", err, tt.sentinel)
			}
		})
	}
}

type celsius float64

type failingMarshaler struct{}

func (failingMarshaler) MarshalJSON() ([]byte, error) { return nil, errors.New("sensor offline") }

// testStrings are strings that need care on the way into JSON.
var testStrings = []struct {
	name string
	s    string
}{
	{"empty", ""},
	{"plain", "stack_overheat"},
	{"double quote", `say "hi"`},
	{"only quotes", `""""`},
	{"backslash", `C:\dir\file`},
	{"backslash before quote", `\"`},
	{"escaped-looking text", `\u0041\n`},
	{"newline tab return", "a\nb\tc\rd"},
	{"NUL", "a\x00b"},
	{"every C0 control", "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f"},
	{"DEL", "\x7f"},
	{"C1 control", "\u0085\u009f"},
	{"HTML", "<script>&amp;</script>"},
	{"line separators", "\u2028\u2029"},
	{"latin", "Gerät °C µs"},
	{"CJK", "电解槽温度"},
	{"emoji", "🔥 overheat 💧"},
	{"replacement character", "\ufffd"},
	{"BOM", "\ufeffx"},
	{"max rune", "\U0010ffff"},
	{"long", strings.Repeat("ab\"\\\n€", 1000)},
}

func TestEncodeStringsRoundTrip(t *testing.T) {
	for _, tt := range testStrings {
		t.Run(tt.name, func(t *testing.T) {
			key := "k" + tt.s // a key may not be empty
			in := mqttapi.Telemetry{Timestamp: 1, Alerts: mqttapi.ActiveAlerts(tt.s), Values: map[string]any{key: tt.s}}
			b, err := in.MarshalJSON()
			if err != nil {
				t.Fatalf("MarshalJSON: %v", err)
			}
			if !json.Valid(b) {
				t.Fatalf("not valid JSON: %q", b)
			}
			var got struct {
				Alerts []string `json:"alerts"`
			}
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if len(got.Alerts) != 1 || got.Alerts[0] != tt.s {
				t.Errorf("alerts = %q, want [%q]", got.Alerts, tt.s)
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if m[key] != tt.s {
				t.Errorf("value under %q = %q, want %q", key, m[key], tt.s)
			}
			// And the package's own decoder agrees.
			back, err := mqttapi.DecodeTelemetry(b)
			if err != nil {
				t.Fatalf("DecodeTelemetry: %v", err)
			}
			if !reflect.DeepEqual(back.Values, map[string]any{key: tt.s}) || !reflect.DeepEqual(back.Alerts.Names(), []string{tt.s}) {
				t.Errorf("DecodeTelemetry = %+v", back)
			}
		})
	}
}

// TestEncodeEveryASCIIByte checks each one-byte string against encoding/json.
func TestEncodeEveryASCIIByte(t *testing.T) {
	for c := 0; c < 0x80; c++ {
		s := string(rune(c))
		b, err := mqttapi.Telemetry{Timestamp: 1, Values: map[string]any{"s": s}}.MarshalJSON()
		if err != nil {
			t.Fatalf("byte %#x: %v", c, err)
		}
		var got struct{ S *string }
		if err := json.Unmarshal(b, &got); err != nil || got.S == nil || *got.S != s {
			t.Errorf("byte %#x: encoded as %s, decodes to %v (%v)", c, b, got.S, err)
		}
	}
}

// floatCases are float64 values whose JSON form is easy to get wrong.
var floatCases = []struct {
	name string
	f    float64
}{
	{"zero", 0},
	{"negative zero", math.Copysign(0, -1)},
	{"one", 1},
	{"minus one", -1},
	{"0.1", 0.1},
	{"0.1+0.2", 0.1 + 0.2},
	{"1/3", 1.0 / 3},
	{"47.85", 47.85},
	{"2^53", 1 << 53},
	{"2^53+2", 1<<53 + 2},
	{"2^64", 1 << 64},
	{"1e20", 1e20},
	{"just below 1e21", 999999999999999900000},
	{"1e21", 1e21},
	{"-1e21", -1e21},
	{"1.5e21", 1.5e21},
	{"1e100", 1e100},
	{"max float64", math.MaxFloat64},
	{"1e-6", 1e-6},
	{"just below 1e-6", 9.99999999e-7},
	{"1e-7", 1e-7},
	{"1.234e-8", 1.234e-8},
	{"1e-10", 1e-10},
	{"1e-100", 1e-100},
	{"1e-300", 1e-300},
	{"smallest normal", 0x1p-1022},
	{"smallest subnormal", math.SmallestNonzeroFloat64},
	{"12345678.9", 12345678.9},
	{"123456789012345680", 123456789012345680},
}

// float32Cases are float32 values, which encoding/json prints with 32-bit precision.
var float32Cases = []struct {
	name string
	f    float32
}{
	{"zero", 0},
	{"negative zero", float32(math.Copysign(0, -1))},
	{"0.1", 0.1},
	{"47.85", 47.85},
	{"1/3", 1.0 / 3},
	{"2^24", 1 << 24},
	{"1e20", 1e20},
	{"1e21", 1e21},
	{"max float32", math.MaxFloat32},
	{"1e-6", 1e-6},
	{"1e-7", 1e-7},
	{"-1e-7", -1e-7},
	{"smallest normal", 0x1p-126},
	{"smallest subnormal", math.SmallestNonzeroFloat32},
}

// encodedValue returns how the telemetry encoder writes v.
func encodedValue(tb testing.TB, v any) string {
	tb.Helper()
	b, err := mqttapi.Telemetry{Timestamp: 1, Values: map[string]any{"v": v}}.AppendJSON(nil)
	if err != nil {
		tb.Fatalf("encode %v (%T): %v", v, v, err)
	}
	s, ok := strings.CutPrefix(string(b), `{"timestamp":1,"v":`)
	if !ok || !strings.HasSuffix(s, "}") {
		tb.Fatalf("unexpected encoding %s", b)
	}
	return strings.TrimSuffix(s, "}")
}

func stdlibValue(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatalf("json.Marshal(%v): %v", v, err)
	}
	return string(b)
}

func TestEncodeFloatMatchesEncodingJSON(t *testing.T) {
	for _, tt := range floatCases {
		for _, sign := range []float64{1, -1} {
			f := tt.f * sign
			t.Run(tt.name+map[float64]string{1: "/positive", -1: "/negative"}[sign], func(t *testing.T) {
				got, want := encodedValue(t, f), stdlibValue(t, f)
				if got != want {
					t.Errorf("float64 %g encoded as %s, encoding/json writes %s", f, got, want)
				}
				if back, err := strconv.ParseFloat(got, 64); err != nil || back != f || math.Signbit(back) != math.Signbit(f) {
					t.Errorf("%s parses back as %v (%v), want %v", got, back, err, f)
				}
			})
		}
	}
	for _, tt := range float32Cases {
		t.Run("float32 "+tt.name, func(t *testing.T) {
			got, want := encodedValue(t, tt.f), stdlibValue(t, tt.f)
			if got != want {
				t.Errorf("float32 %g encoded as %s, encoding/json writes %s", tt.f, got, want)
			}
			if back, err := strconv.ParseFloat(got, 32); err != nil || float32(back) != tt.f {
				t.Errorf("%s parses back as %v (%v), want %v", got, back, err, tt.f)
			}
		})
	}
}

// TestEncodeFloatRandomBits compares the encoder with encoding/json on
// random bit patterns, which reach every exponent.
func TestEncodeFloatRandomBits(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 2000
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range n {
		f := math.Float64frombits(r.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		if got, want := encodedValue(t, f), stdlibValue(t, f); got != want {
			t.Fatalf("float64 %b: encoded as %s, encoding/json writes %s", f, got, want)
		}
		f32 := math.Float32frombits(r.Uint32())
		if math.IsNaN(float64(f32)) || math.IsInf(float64(f32), 0) {
			continue
		}
		if got, want := encodedValue(t, f32), stdlibValue(t, f32); got != want {
			t.Fatalf("float32 %b: encoded as %s, encoding/json writes %s", f32, got, want)
		}
	}
}

type watts int

func TestEncodeIntegersMatchEncodingJSON(t *testing.T) {
	tests := []struct {
		name string
		v    any
	}{
		{"int min", int(math.MinInt)}, {"int max", int(math.MaxInt)}, {"int zero", int(0)},
		{"int8 min", int8(math.MinInt8)}, {"int8 max", int8(math.MaxInt8)},
		{"int16 min", int16(math.MinInt16)}, {"int16 max", int16(math.MaxInt16)},
		{"int32 min", int32(math.MinInt32)}, {"int32 max", int32(math.MaxInt32)},
		{"int64 min", int64(math.MinInt64)}, {"int64 max", int64(math.MaxInt64)}, {"int64 minus one", int64(-1)},
		{"uint zero", uint(0)}, {"uint max", uint(math.MaxUint)},
		{"uint8 max", uint8(math.MaxUint8)},
		{"uint16 max", uint16(math.MaxUint16)},
		{"uint32 max", uint32(math.MaxUint32)},
		{"uint64 max", uint64(math.MaxUint64)},
		{"uintptr", uintptr(0xdeadbeef)},
		{"named int", watts(2450)},
		{"byte slice is base64", []byte("hi")},
		{"int slice", []int{-1, 0, 1}},
		{"uint8 array", [3]uint8{1, 2, 3}},
		{"json.Number", json.Number("12.50")},
		{"bool true", true},
		{"nil", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := encodedValue(t, tt.v), stdlibValue(t, tt.v); got != want {
				t.Errorf("%T %v encoded as %s, encoding/json writes %s", tt.v, tt.v, got, want)
			}
		})
	}
}

// TestEncodeTelemetryAgreesWithStdlib checks that our encoder and
// json.Marshal of the equivalent map carry the same data.
func TestEncodeTelemetryAgreesWithStdlib(t *testing.T) {
	values := benchValues(50)
	ours, err := mqttapi.Telemetry{Timestamp: 1718029200, Alerts: mqttapi.ActiveAlerts("overheat"), Values: values}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := json.Marshal(stdlibTelemetry(1718029200, []string{"overheat"}, values))
	if err != nil {
		t.Fatal(err)
	}
	// Key order differs (ours puts timestamp and alerts first); the data may not.
	var a, b map[string]any
	if err := json.Unmarshal(ours, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(theirs, &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("encodings differ:\nours   %s\ntheirs %s", ours, theirs)
	}
}

func TestLogEncode(t *testing.T) {
	tests := []struct {
		name string
		in   mqttapi.Log
		want string
	}{
		{"debug", mqttapi.Log{Timestamp: 1, Message: "d", Severity: mqttapi.SeverityDebug}, `{"timestamp":1,"message":"d","severity":"debug","persist":false}`},
		{"info", mqttapi.Log{Timestamp: 2, Message: "Dryer regeneration cycle 3 started", Severity: mqttapi.SeverityInfo}, `{"timestamp":2,"message":"Dryer regeneration cycle 3 started","severity":"info","persist":false}`},
		{"warning persisted", mqttapi.Log{Timestamp: 3, Message: "low water", Severity: mqttapi.SeverityWarning, Persist: true}, `{"timestamp":3,"message":"low water","severity":"warning","persist":true}`},
		{"error", mqttapi.Log{Timestamp: 4, Message: "stack \"A\" failed\n", Severity: mqttapi.SeverityError}, `{"timestamp":4,"message":"stack \"A\" failed\n","severity":"error","persist":false}`},
		{"empty message", mqttapi.Log{Timestamp: 5, Severity: mqttapi.SeverityInfo}, `{"timestamp":5,"message":"","severity":"info","persist":false}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.MarshalJSON()
			if err != nil {
				t.Fatalf("MarshalJSON: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("MarshalJSON = %s, want %s", got, tt.want)
			}
			if std, err := json.Marshal(tt.in); err != nil || string(std) != tt.want {
				t.Errorf("json.Marshal = %s, %v; want %s", std, err, tt.want)
			}
		})
	}
}

func TestLogEncodeBadSeverity(t *testing.T) {
	for _, sev := range []mqttapi.Severity{"", "INFO", "Info", "warn", "fatal", "critical", " info", "info\x00"} {
		t.Run(strconv.Quote(string(sev)), func(t *testing.T) {
			b, err := mqttapi.Log{Timestamp: 1, Message: "m", Severity: sev}.MarshalJSON()
			if err == nil {
				t.Fatalf("MarshalJSON = %s, want an error", b)
			}
			if !strings.Contains(err.Error(), "severity") {
				t.Errorf("error %q does not mention the severity", err)
			}
			if _, err := json.Marshal(mqttapi.Log{Timestamp: 1, Severity: sev}); err == nil {
				t.Errorf("json.Marshal accepted severity %q", sev)
			}
		})
	}
}

func TestCommandRequestMarshalJSON(t *testing.T) {
	tests := []struct {
		name    string
		in      mqttapi.CommandRequest
		want    string // empty: an error is expected
		errPart string
	}{
		{"with arguments", mqttapi.CommandRequest{ID: "r1", Name: "set_production_rate", Arguments: json.RawMessage(`{"rate":75}`)},
			`{"id":"r1","name":"set_production_rate","arguments":{"rate":75}}`, ""},
		{"arguments compacted", mqttapi.CommandRequest{ID: "r1", Name: "n", Arguments: json.RawMessage(" {\"rate\": 75,\n \"unit\": \"%\"} ")},
			`{"id":"r1","name":"n","arguments":{"rate":75,"unit":"%"}}`, ""},
		{"empty arguments object", mqttapi.CommandRequest{ID: "r1", Name: "start", Arguments: json.RawMessage(`{}`)},
			`{"id":"r1","name":"start","arguments":{}}`, ""},
		{"nil arguments omitted", mqttapi.CommandRequest{ID: "r1", Name: "start"},
			`{"id":"r1","name":"start"}`, ""},
		{"empty arguments omitted", mqttapi.CommandRequest{ID: "r1", Name: "start", Arguments: json.RawMessage{}},
			`{"id":"r1","name":"start"}`, ""},
		{"id escaped", mqttapi.CommandRequest{ID: `a"b`, Name: "start"},
			`{"id":"a\"b","name":"start"}`, ""},
		{"empty id", mqttapi.CommandRequest{Name: "start"}, "", "id"},
		{"empty name", mqttapi.CommandRequest{ID: "r1"}, "", "name"},
		{"array arguments", mqttapi.CommandRequest{ID: "r1", Name: "n", Arguments: json.RawMessage(`[1]`)}, "", "arguments"},
		{"string arguments", mqttapi.CommandRequest{ID: "r1", Name: "n", Arguments: json.RawMessage(`"x"`)}, "", "arguments"},
		{"number arguments", mqttapi.CommandRequest{ID: "r1", Name: "n", Arguments: json.RawMessage(`1`)}, "", "arguments"},
		{"null arguments", mqttapi.CommandRequest{ID: "r1", Name: "n", Arguments: json.RawMessage(`null`)}, "", "arguments"},
		{"broken arguments", mqttapi.CommandRequest{ID: "r1", Name: "n", Arguments: json.RawMessage(`{"a":`)}, "", "arguments"},
		{"two objects as arguments", mqttapi.CommandRequest{ID: "r1", Name: "n", Arguments: json.RawMessage(`{}{}`)}, "", "arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.MarshalJSON()
			if tt.want == "" {
				if err == nil {
					t.Fatalf("MarshalJSON = %s, want an error", got)
				}
				if !strings.Contains(err.Error(), tt.errPart) {
					t.Errorf("error %q does not mention %q", err, tt.errPart)
				}
				return
			}
			if err != nil {
				t.Fatalf("MarshalJSON: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("MarshalJSON = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestCommandResponseMarshalJSON(t *testing.T) {
	tests := []struct {
		name    string
		in      mqttapi.CommandResponse
		want    string // empty: an error is expected
		errPart string
	}{
		{"nil payload is empty object", mqttapi.CommandResponse{ID: "r1", State: mqttapi.StateCompleted},
			`{"id":"r1","state":"completed","payload":{}}`, ""},
		{"empty payload is empty object", mqttapi.CommandResponse{ID: "r1", State: mqttapi.StateLog, Payload: json.RawMessage{}},
			`{"id":"r1","state":"log","payload":{}}`, ""},
		{"message payload", mqttapi.CommandResponse{ID: "r1", State: mqttapi.StateError, Payload: json.RawMessage(`{"message":"no"}`)},
			`{"id":"r1","state":"error","payload":{"message":"no"}}`, ""},
		{"payload kept as given", mqttapi.CommandResponse{ID: "r1", State: mqttapi.StateCompleted, Payload: json.RawMessage(`{"rate": 75}`)},
			`{"id":"r1","state":"completed","payload":{"rate": 75}}`, ""},
		{"id escaped", mqttapi.CommandResponse{ID: "a\"b\\\n", State: mqttapi.StateLog},
			`{"id":"a\"b\\\n","state":"log","payload":{}}`, ""},
		{"empty id", mqttapi.CommandResponse{State: mqttapi.StateCompleted}, "", "id"},
		{"invalid UTF-8 id", mqttapi.CommandResponse{ID: "r\xff", State: mqttapi.StateCompleted}, "", "id"},
		{"empty state", mqttapi.CommandResponse{ID: "r1"}, "", "state"},
		{"unknown state", mqttapi.CommandResponse{ID: "r1", State: "done"}, "", "state"},
		{"state upper case", mqttapi.CommandResponse{ID: "r1", State: "COMPLETED"}, "", "state"},
		{"array payload", mqttapi.CommandResponse{ID: "r1", State: mqttapi.StateCompleted, Payload: json.RawMessage(`[]`)}, "", "payload"},
		{"string payload", mqttapi.CommandResponse{ID: "r1", State: mqttapi.StateCompleted, Payload: json.RawMessage(`"done"`)}, "", "payload"},
		{"null payload", mqttapi.CommandResponse{ID: "r1", State: mqttapi.StateCompleted, Payload: json.RawMessage(`null`)}, "", "payload"},
		{"number payload", mqttapi.CommandResponse{ID: "r1", State: mqttapi.StateCompleted, Payload: json.RawMessage(`0`)}, "", "payload"},
		{"broken payload", mqttapi.CommandResponse{ID: "r1", State: mqttapi.StateCompleted, Payload: json.RawMessage(`{"a"`)}, "", "payload"},
		{"trailing garbage payload", mqttapi.CommandResponse{ID: "r1", State: mqttapi.StateCompleted, Payload: json.RawMessage(`{}x`)}, "", "payload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.MarshalJSON()
			if tt.want == "" {
				if err == nil {
					t.Fatalf("MarshalJSON = %s, want an error", got)
				}
				if !strings.Contains(err.Error(), tt.errPart) {
					t.Errorf("error %q does not mention %q", err, tt.errPart)
				}
				return
			}
			if err != nil {
				t.Fatalf("MarshalJSON: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("MarshalJSON = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestNewCommandResponse(t *testing.T) {
	type result struct {
		Rate int    `json:"rate"`
		Unit string `json:"unit,omitempty"`
	}
	tests := []struct {
		name    string
		payload any
		want    string // the payload; empty: an error is expected
	}{
		{"nil", nil, `{}`},
		{"nil map", map[string]any(nil), `{}`},
		{"nil pointer", (*result)(nil), `{}`},
		{"nil raw message", json.RawMessage(nil), `{}`},
		{"empty map", map[string]any{}, `{}`},
		{"map", map[string]any{"message": "done", "rate": 75}, `{"message":"done","rate":75}`},
		{"struct", result{Rate: 75, Unit: "%"}, `{"rate":75,"unit":"%"}`},
		{"pointer to struct", &result{Rate: 1}, `{"rate":1}`},
		{"raw object", json.RawMessage(`{"a": [1, 2]}`), `{"a":[1,2]}`},
		{"slice", []int{1}, ""},
		{"string", "done", ""},
		{"number", 42, ""},
		{"bool", true, ""},
		{"raw array", json.RawMessage(`[]`), ""},
		{"unmarshalable", map[string]any{"c": make(chan int)}, ""},
		{"NaN", map[string]float64{"x": math.NaN()}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := mqttapi.NewCommandResponse("r1", mqttapi.StateCompleted, tt.payload)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("NewCommandResponse = %+v, want an error", r)
				}
				if !strings.Contains(err.Error(), `"r1"`) {
					t.Errorf("error %q does not name the response id", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewCommandResponse: %v", err)
			}
			if r.ID != "r1" || r.State != mqttapi.StateCompleted || string(r.Payload) != tt.want {
				t.Errorf("NewCommandResponse = {%q %q %s}, want {r1 completed %s}", r.ID, r.State, r.Payload, tt.want)
			}
			b, err := r.MarshalJSON()
			if err != nil {
				t.Fatalf("MarshalJSON: %v", err)
			}
			if want := `{"id":"r1","state":"completed","payload":` + tt.want + `}`; string(b) != want {
				t.Errorf("MarshalJSON = %s, want %s", b, want)
			}
		})
	}
}

func TestErrorResponse(t *testing.T) {
	for _, tt := range testStrings {
		t.Run(tt.name, func(t *testing.T) {
			r := mqttapi.ErrorResponse("r1", tt.s)
			if r.ID != "r1" || r.State != mqttapi.StateError {
				t.Errorf("ErrorResponse = {%q %q}, want {r1 error}", r.ID, r.State)
			}
			if got := r.Message(); got != tt.s {
				t.Errorf("Message() = %q, want %q", got, tt.s)
			}
			b, err := r.MarshalJSON()
			if err != nil {
				t.Fatalf("MarshalJSON: %v", err)
			}
			back, err := mqttapi.DecodeCommandResponse(b)
			if err != nil {
				t.Fatalf("DecodeCommandResponse(%s): %v", b, err)
			}
			if back.Message() != tt.s || back.State != mqttapi.StateError || back.ID != "r1" {
				t.Errorf("decoded %+v, message %q", back, back.Message())
			}
		})
	}
}

func TestCommandResponseMessage(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    string
	}{
		{"message", `{"message":"Production rate set to 75 %"}`, "Production rate set to 75 %"},
		{"message among others", `{"rate":75,"message":"ok"}`, "ok"},
		{"escaped message", `{"message":"a\"b\u00b0"}`, "a\"b°"},
		{"no message", `{"rate":75}`, ""},
		{"empty object", `{}`, ""},
		{"nil payload", ``, ""},
		{"null message", `{"message":null}`, ""},
		{"numeric message", `{"message":42}`, ""},
		{"object message", `{"message":{"text":"x"}}`, ""},
		{"array payload", `["message"]`, ""},
		{"broken payload", `{"message":"x`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mqttapi.CommandResponse{ID: "r1", State: mqttapi.StateCompleted, Payload: json.RawMessage(tt.payload)}
			if got := r.Message(); got != tt.want {
				t.Errorf("Message() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestResponseStateFinal(t *testing.T) {
	tests := []struct {
		state mqttapi.ResponseState
		final bool
	}{
		{mqttapi.StateCompleted, true},
		{mqttapi.StateError, true},
		{mqttapi.StateLog, false},
		{"", false},
		{"COMPLETED", false},
		{"done", false},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(string(tt.state)), func(t *testing.T) {
			if got := tt.state.Final(); got != tt.final {
				t.Errorf("%q.Final() = %v, want %v", tt.state, got, tt.final)
			}
		})
	}
}
