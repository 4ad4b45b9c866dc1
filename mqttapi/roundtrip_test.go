package mqttapi_test

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/edk-go/edk/mqttapi"
)

// The check*RoundTrip helpers take a decoded message, encode it, decode the
// result and require an equal message. The fuzz targets use them too.

func checkTelemetryRoundTrip(t *testing.T, in mqttapi.Telemetry) {
	t.Helper()
	before := time.Now().Unix()
	b, err := in.MarshalJSON()
	if err != nil {
		t.Fatalf("MarshalJSON(%#v): %v", in, err)
	}
	back, err := mqttapi.DecodeTelemetry(b)
	if err != nil {
		t.Fatalf("DecodeTelemetry(%s) of re-encoded telemetry: %v", b, err)
	}
	want := in
	if in.Timestamp == 0 { // encoded as the current time
		if back.Timestamp < before {
			t.Errorf("zero timestamp encoded as %d, before now (%d)", back.Timestamp, before)
		}
		want.Timestamp = back.Timestamp
	}
	if !reflect.DeepEqual(back, want) {
		t.Fatalf("round trip changed telemetry:\n  in   %#v\n  json %s\n  back %#v", want, b, back)
	}
	// Equal messages encode to equal bytes.
	again, err := back.MarshalJSON()
	if err != nil || in.Timestamp != 0 && !bytes.Equal(again, b) {
		t.Errorf("re-encoding is not stable:\n  %s\n  %s (%v)", b, again, err)
	}
}

func checkPropertiesRoundTrip(t *testing.T, in mqttapi.Properties) {
	t.Helper()
	before := time.Now().Unix()
	b, err := in.MarshalJSON()
	if err != nil {
		t.Fatalf("MarshalJSON(%#v): %v", in, err)
	}
	back, err := mqttapi.DecodeProperties(b)
	if err != nil {
		t.Fatalf("DecodeProperties(%s) of re-encoded properties: %v", b, err)
	}
	want := in
	if in.Timestamp == 0 {
		if back.Timestamp < before {
			t.Errorf("zero timestamp encoded as %d, before now (%d)", back.Timestamp, before)
		}
		want.Timestamp = back.Timestamp
	}
	if !reflect.DeepEqual(back, want) {
		t.Fatalf("round trip changed properties:\n  in   %#v\n  json %s\n  back %#v", want, b, back)
	}
	again, err := back.MarshalJSON()
	if err != nil || in.Timestamp != 0 && !bytes.Equal(again, b) {
		t.Errorf("re-encoding is not stable:\n  %s\n  %s (%v)", b, again, err)
	}
}

func checkLogRoundTrip(t *testing.T, in mqttapi.Log) {
	t.Helper()
	before := time.Now().Unix()
	b, err := in.MarshalJSON()
	if err != nil {
		t.Fatalf("MarshalJSON(%#v): %v", in, err)
	}
	back, err := mqttapi.DecodeLog(b)
	if err != nil {
		t.Fatalf("DecodeLog(%s) of re-encoded log: %v", b, err)
	}
	want := in
	if in.Timestamp == 0 {
		if back.Timestamp < before {
			t.Errorf("zero timestamp encoded as %d, before now (%d)", back.Timestamp, before)
		}
		want.Timestamp = back.Timestamp
	}
	if back != want {
		t.Fatalf("round trip changed log:\n  in   %#v\n  json %s\n  back %#v", want, b, back)
	}
}

func checkRequestRoundTrip(t *testing.T, in mqttapi.CommandRequest) {
	t.Helper()
	b, err := in.MarshalJSON()
	if err != nil {
		t.Fatalf("MarshalJSON(%+v): %v", in, err)
	}
	back, err := mqttapi.DecodeCommandRequest(b)
	if err != nil {
		t.Fatalf("DecodeCommandRequest(%s) of re-encoded request: %v", b, err)
	}
	// json.Marshal compacts the raw arguments; compare them as json.Marshal writes them.
	if back.ID != in.ID || back.Name != in.Name || canonicalJSON(t, back.Arguments) != canonicalJSON(t, in.Arguments) {
		t.Fatalf("round trip changed request:\n  in   {%q %q %s}\n  json %s\n  back {%q %q %s}", in.ID, in.Name, in.Arguments, b, back.ID, back.Name, back.Arguments)
	}
	// A device can always answer a request it decoded.
	if _, err := mqttapi.ErrorResponse(back.ID, "x").MarshalJSON(); err != nil {
		t.Errorf("cannot answer request %q: %v", back.ID, err)
	}
}

func checkResponseRoundTrip(t *testing.T, in mqttapi.CommandResponse) {
	t.Helper()
	b, err := in.MarshalJSON()
	if err != nil {
		t.Fatalf("MarshalJSON(%+v): %v", in, err)
	}
	back, err := mqttapi.DecodeCommandResponse(b)
	if err != nil {
		t.Fatalf("DecodeCommandResponse(%s) of re-encoded response: %v", b, err)
	}
	if !reflect.DeepEqual(back, in) {
		t.Fatalf("round trip changed response:\n  in   {%q %q %s}\n  json %s\n  back {%q %q %s}", in.ID, in.State, in.Payload, b, back.ID, back.State, back.Payload)
	}
}

func TestTelemetryRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   mqttapi.Telemetry
	}{
		{"minimal", mqttapi.Telemetry{Timestamp: 1, Values: map[string]any{}}},
		{"zero timestamp", mqttapi.Telemetry{Values: map[string]any{"a": 1.5}}},
		{"no alerts", mqttapi.Telemetry{Timestamp: 1718029200, Alerts: mqttapi.NoAlerts(), Values: map[string]any{"status": "ok"}}},
		{"active alerts", mqttapi.Telemetry{Timestamp: 1718029200, Alerts: mqttapi.ActiveAlerts("stack_overheat", "low_water_level", ""), Values: map[string]any{}}},
		{"every decoded type", mqttapi.Telemetry{Timestamp: 1 << 53, Values: map[string]any{
			"f": 47.85, "neg": -0.001, "big": 1e300, "tiny": 5e-324, "nz": math.Copysign(0, -1), "s": "°C \"x\"\n", "t": true, "fa": false, "n": nil,
			"l": []any{1.0, "two", nil, []any{}, map[string]any{}}, "o": map[string]any{"k": map[string]any{"deep": []any{true}}},
		}}},
		{"awkward keys", mqttapi.Telemetry{Timestamp: 2, Values: map[string]any{"\x00": 1.0, "\u2028": 2.0, "<&>": 3.0, "Alerts": 4.0, " ": 5.0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkTelemetryRoundTrip(t, tt.in) })
	}
}

// TestTelemetryRoundTripGoTypes encodes Go types and checks what comes back:
// JSON has one number type, so numbers come back as float64.
func TestTelemetryRoundTripGoTypes(t *testing.T) {
	in := mqttapi.Telemetry{Timestamp: 1, Values: map[string]any{
		"int": 12, "int8": int8(-8), "uint16": uint16(65535), "int64": int64(-1 << 53), "uint64": uint64(1 << 53),
		"float32": float32(0.1), "strings": []string{"a", "b"}, "ints": map[string]int{"x": 1},
	}}
	want := map[string]any{
		"int": 12.0, "int8": -8.0, "uint16": 65535.0, "int64": -float64(1 << 53), "uint64": float64(1 << 53),
		"float32": 0.1, "strings": []any{"a", "b"}, "ints": map[string]any{"x": 1.0},
	}
	b, err := in.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	back, err := mqttapi.DecodeTelemetry(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Values, want) {
		t.Errorf("decoded %#v, want %#v", back.Values, want)
	}
}

func TestPropertiesRoundTrip(t *testing.T) {
	checkPropertiesRoundTrip(t, mqttapi.Properties{Timestamp: 1718029200, Values: map[string]any{"vendor": "Enapter", "virtual": true, "lua_api_ver": 1.0}})
	checkPropertiesRoundTrip(t, mqttapi.Properties{Values: map[string]any{}})
}

func TestLogRoundTrip(t *testing.T) {
	for _, sev := range []mqttapi.Severity{mqttapi.SeverityDebug, mqttapi.SeverityInfo, mqttapi.SeverityWarning, mqttapi.SeverityError} {
		t.Run(string(sev), func(t *testing.T) {
			checkLogRoundTrip(t, mqttapi.Log{Timestamp: 1718029200, Message: "stack \"A\" <hot>\n°C", Severity: sev, Persist: sev == mqttapi.SeverityError})
			checkLogRoundTrip(t, mqttapi.Log{Severity: sev})
		})
	}
}

func TestCommandRoundTrip(t *testing.T) {
	requests := []struct {
		name string
		in   mqttapi.CommandRequest
	}{
		{"no arguments", mqttapi.CommandRequest{ID: "r1", Name: "start"}},
		{"empty arguments", mqttapi.CommandRequest{ID: "r1", Name: "start", Arguments: json.RawMessage(`{}`)}},
		{"arguments", mqttapi.CommandRequest{ID: "6f0a2b8e", Name: "set_production_rate", Arguments: json.RawMessage(`{"rate": 75, "unit": "%", "note": "<a&b>"}`)}},
		{"awkward id", mqttapi.CommandRequest{ID: "\"\\\n\u2028🔥", Name: "n"}},
	}
	for _, tt := range requests {
		t.Run("request "+tt.name, func(t *testing.T) { checkRequestRoundTrip(t, tt.in) })
	}
	responses := []struct {
		name string
		in   mqttapi.CommandResponse
	}{
		{"completed", mqttapi.CommandResponse{ID: "r1", State: mqttapi.StateCompleted, Payload: json.RawMessage(`{"message": "done", "rate": 75}`)}},
		{"log", mqttapi.CommandResponse{ID: "r1", State: mqttapi.StateLog, Payload: json.RawMessage(`{"message":"50 %"}`)}},
		{"error response", mqttapi.ErrorResponse("r1", "tank <empty> & \"dry\"")},
		{"empty payload", mqttapi.CommandResponse{ID: "r1", State: mqttapi.StateCompleted, Payload: json.RawMessage(`{}`)}},
		{"awkward id", mqttapi.CommandResponse{ID: "\"\\\n\u2028🔥", State: mqttapi.StateError, Payload: json.RawMessage(`{}`)}},
	}
	for _, tt := range responses {
		t.Run("response "+tt.name, func(t *testing.T) { checkResponseRoundTrip(t, tt.in) })
	}
}

// TestSamples decodes the realistic payloads in testdata/, checks what they
// say, and round-trips them.
func TestSamples(t *testing.T) {
	t.Run("telemetry.json", func(t *testing.T) {
		tm, err := mqttapi.DecodeTelemetry(readTestdata(t, "telemetry.json"))
		if err != nil {
			t.Fatal(err)
		}
		if tm.Timestamp != 1718029200 || !tm.Alerts.Known() || !reflect.DeepEqual(tm.Alerts.Names(), []string{"stack_overheat", "low_water_level"}) {
			t.Errorf("timestamp %d, alerts %v (known %v)", tm.Timestamp, tm.Alerts.Names(), tm.Alerts.Known())
		}
		want := map[string]any{
			"status": "warning", "h2_production_rate": 512.3, "stack_voltage": 47.85, "stack_current": 60.2,
			"electrolyte_temperature": 55.1, "electrolyte_temperature_unit": "°C", "water_tank_level": 12.0,
			"heater_on": false, "uptime": 86400.0, "cell_voltages": []any{1.92, 1.93, 1.91, 1.95},
			"dryer": map[string]any{"state": "regenerating", "cycle": 3.0}, "last_error": nil,
		}
		if !reflect.DeepEqual(tm.Values, want) {
			t.Errorf("values = %#v\nwant %#v", tm.Values, want)
		}
	})
	t.Run("telemetry_no_alerts.json", func(t *testing.T) {
		tm, err := mqttapi.DecodeTelemetry(readTestdata(t, "telemetry_no_alerts.json"))
		if err != nil {
			t.Fatal(err)
		}
		if !tm.Alerts.Known() || len(tm.Alerts.Names()) != 0 {
			t.Errorf("alerts %#v, want known and empty", tm.Alerts)
		}
	})
	t.Run("telemetry_unknown_alerts.json", func(t *testing.T) {
		tm, err := mqttapi.DecodeTelemetry(readTestdata(t, "telemetry_unknown_alerts.json"))
		if err != nil {
			t.Fatal(err)
		}
		if tm.Alerts.Known() || tm.Alerts.Names() != nil {
			t.Errorf("alerts %#v, want unknown", tm.Alerts)
		}
		if got, want := tm.Values["message"], "MPPT tracking \"string 2\" \\ low irradiance\n"; got != want {
			t.Errorf("message = %q, want %q", got, want)
		}
	})
	for _, name := range []string{"properties.json", "register.json"} {
		t.Run(name, func(t *testing.T) {
			p, err := mqttapi.DecodeProperties(readTestdata(t, name))
			if err != nil {
				t.Fatal(err)
			}
			if p.Timestamp == 0 || p.Values["vendor"] != "Enapter" {
				t.Errorf("decoded %#v", p)
			}
		})
	}
	t.Run("log.json", func(t *testing.T) {
		l, err := mqttapi.DecodeLog(readTestdata(t, "log.json"))
		if err != nil {
			t.Fatal(err)
		}
		want := mqttapi.Log{Timestamp: 1718029200, Message: "Water tank level low: 12 % (refill below 15 %)", Severity: mqttapi.SeverityWarning, Persist: true}
		if l != want {
			t.Errorf("decoded %+v, want %+v", l, want)
		}
	})
	t.Run("command_request.json", func(t *testing.T) {
		r, err := mqttapi.DecodeCommandRequest(readTestdata(t, "command_request.json"))
		if err != nil {
			t.Fatal(err)
		}
		var args struct {
			Rate float64 `json:"rate"`
			Unit string  `json:"unit"`
			Ramp struct {
				DurationS int  `json:"duration_s"`
				Linear    bool `json:"linear"`
			} `json:"ramp"`
		}
		if err := json.Unmarshal(r.Arguments, &args); err != nil {
			t.Fatal(err)
		}
		if r.ID != "6f0a2b8e-3c1d-4e5f-9a7b-8c9d0e1f2a3b" || r.Name != "set_production_rate" || args.Rate != 75 || args.Unit != "%" || args.Ramp.DurationS != 30 || !args.Ramp.Linear {
			t.Errorf("decoded %q %q %+v", r.ID, r.Name, args)
		}
	})
	t.Run("command_request_no_args.json", func(t *testing.T) {
		r, err := mqttapi.DecodeCommandRequest(readTestdata(t, "command_request_no_args.json"))
		if err != nil {
			t.Fatal(err)
		}
		if r.Name != "start" || r.Arguments != nil {
			t.Errorf("decoded %q with arguments %q", r.Name, r.Arguments)
		}
	})
	states := map[string]mqttapi.ResponseState{
		"command_response_log.json":       mqttapi.StateLog,
		"command_response_completed.json": mqttapi.StateCompleted,
		"command_response_error.json":     mqttapi.StateError,
		"command_response_empty.json":     mqttapi.StateCompleted,
	}
	for name, state := range states {
		t.Run(name, func(t *testing.T) {
			r, err := mqttapi.DecodeCommandResponse(readTestdata(t, name))
			if err != nil {
				t.Fatal(err)
			}
			if r.State != state || r.State.Final() != (state != mqttapi.StateLog) {
				t.Errorf("state %q, want %q", r.State, state)
			}
			if (r.Message() == "") != (name == "command_response_empty.json") {
				t.Errorf("message %q", r.Message())
			}
		})
	}

	// Every sample survives a round trip.
	for name, b := range samples(t, "telemetry*.json") {
		t.Run("round trip "+name, func(t *testing.T) {
			tm, err := mqttapi.DecodeTelemetry(b)
			if err != nil {
				t.Fatal(err)
			}
			checkTelemetryRoundTrip(t, tm)
		})
	}
	for _, pattern := range []string{"properties*.json", "register*.json"} {
		for name, b := range samples(t, pattern) {
			t.Run("round trip "+name, func(t *testing.T) {
				p, err := mqttapi.DecodeProperties(b)
				if err != nil {
					t.Fatal(err)
				}
				checkPropertiesRoundTrip(t, p)
			})
		}
	}
	for name, b := range samples(t, "log*.json") {
		t.Run("round trip "+name, func(t *testing.T) {
			l, err := mqttapi.DecodeLog(b)
			if err != nil {
				t.Fatal(err)
			}
			checkLogRoundTrip(t, l)
		})
	}
	for name, b := range samples(t, "command_request*.json") {
		t.Run("round trip "+name, func(t *testing.T) {
			r, err := mqttapi.DecodeCommandRequest(b)
			if err != nil {
				t.Fatal(err)
			}
			checkRequestRoundTrip(t, r)
		})
	}
	for name, b := range samples(t, "command_response*.json") {
		t.Run("round trip "+name, func(t *testing.T) {
			r, err := mqttapi.DecodeCommandResponse(b)
			if err != nil {
				t.Fatal(err)
			}
			checkResponseRoundTrip(t, r)
		})
	}
}

// TestSamplesRejectedByOtherDecoders makes sure the decoders do not accept
// each other's messages by accident.
func TestSamplesRejectedByOtherDecoders(t *testing.T) {
	tests := []struct {
		pattern string
		decode  func([]byte) error
		msg     string
	}{
		{"command_request*.json", decodeTelemetry, "telemetry"},
		{"command_response*.json", decodeLog, "log"},
		{"telemetry*.json", decodeRequest, "command request"},
		{"log*.json", decodeResponse, "command response"},
		{"telemetry.json", decodeProperties, "properties"},
	}
	for _, tt := range tests {
		for name, b := range samples(t, tt.pattern) {
			t.Run(tt.msg+"/"+name, func(t *testing.T) {
				err := tt.decode(b)
				if err == nil {
					t.Fatalf("%s decoder accepted %s", tt.msg, name)
				}
				asDecodeError(t, err, tt.msg)
			})
		}
	}
}
