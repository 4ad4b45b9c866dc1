package mqttapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/edk-go/edk/mqttapi"
)

// badPayloads fail every decoder the same way: the payload as a whole is bad.
var badPayloads = []struct {
	name    string
	payload string
}{
	{"empty", ""},
	{"whitespace", " \t\r\n"},
	{"not JSON", "hello"},
	{"truncated object", `{"timestamp":1,`},
	{"unterminated string", `{"id":"abc`},
	{"array", `[{"timestamp":1}]`},
	{"string", `"{\"timestamp\":1}"`},
	{"number", `42`},
	{"null", `null`},
	{"true", `true`},
	{"trailing garbage", `{"timestamp":1,"id":"r1"} x`},
	{"two objects", `{"timestamp":1}{"timestamp":2}`},
	{"single quotes", `{'timestamp':1}`},
	{"trailing comma", `{"timestamp":1,}`},
	{"NaN literal", `{"timestamp":1,"v":NaN}`},
	{"BOM", "\ufeff{\"timestamp\":1}"},
	{"invalid UTF-8", "{\"timestamp\":1,\"s\":\"\xff\"}"},
	{"overlong UTF-8", "{\"timestamp\":1,\"s\":\"\xc0\xaf\"}"},
	{"too deep", strings.Repeat("[", 20000) + strings.Repeat("]", 20000)},
	{"too deep inside object", `{"timestamp":1,"v":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`},
}

// decoders runs each decoder, giving the DecodeError.Message it must use.
var decoders = []struct {
	msg    string
	decode func([]byte) error
}{
	{"telemetry", decodeTelemetry},
	{"properties", decodeProperties},
	{"log", decodeLog},
	{"command request", decodeRequest},
	{"command response", decodeResponse},
}

func TestDecodeBadPayloads(t *testing.T) {
	for _, d := range decoders {
		for _, p := range badPayloads {
			t.Run(d.msg+"/"+p.name, func(t *testing.T) {
				err := d.decode([]byte(p.payload))
				if err == nil {
					t.Fatalf("decoded %.80q, want an error", p.payload)
				}
				derr := asDecodeError(t, err, d.msg)
				if derr.Field != "" {
					t.Errorf("Field = %q, want empty: the payload as a whole is bad", derr.Field)
				}
				if derr.ID != "" {
					t.Errorf("ID = %q, want empty", derr.ID)
				}
			})
		}
	}
}

// fieldCase is a payload that fails on one field.
type fieldCase struct {
	name    string
	payload string
	field   string
}

func checkFieldErrors(t *testing.T, msg string, decode func([]byte) error, tests []fieldCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := decode([]byte(tt.payload))
			if err == nil {
				t.Fatalf("decoded %s, want an error", tt.payload)
			}
			derr := asDecodeError(t, err, msg)
			if derr.Field != tt.field {
				t.Errorf("Field = %q, want %q (error: %v)", derr.Field, tt.field, err)
			}
			if tt.field != "" && !strings.Contains(err.Error(), `"`+tt.field+`"`) {
				t.Errorf("error %q does not name field %q", err, tt.field)
			}
		})
	}
}

// timestampCases fail on the timestamp, for every message that has one.
var timestampCases = []fieldCase{
	{"missing timestamp", `{"a":1}`, "timestamp"},
	{"empty object", `{}`, "timestamp"},
	{"null timestamp", `{"timestamp":null}`, "timestamp"},
	{"timestamp in capitals", `{"Timestamp":1}`, "timestamp"},
	{"string timestamp", `{"timestamp":"1718029200"}`, "timestamp"},
	{"bool timestamp", `{"timestamp":true}`, "timestamp"},
	{"array timestamp", `{"timestamp":[1]}`, "timestamp"},
	{"object timestamp", `{"timestamp":{}}`, "timestamp"},
	{"fractional timestamp", `{"timestamp":1718029200.5}`, "timestamp"},
	{"negative timestamp", `{"timestamp":-1}`, "timestamp"},
	{"timestamp above 2^53", `{"timestamp":9007199254740994}`, "timestamp"},
	{"timestamp 1e300", `{"timestamp":1e300}`, "timestamp"},
	{"timestamp out of float range", `{"timestamp":1e400}`, "timestamp"},
	{"timestamp 1e20", `{"timestamp":1e20}`, "timestamp"},
}

// withFields adds fields (`"k":v,`) at the start of each case's payload.
func withFields(cases []fieldCase, fields string) []fieldCase {
	out := make([]fieldCase, len(cases))
	for i, c := range cases {
		c.payload = strings.Replace(strings.Replace(c.payload, "{", "{"+fields, 1), ",}", "}", 1)
		out[i] = c
	}
	return out
}

func TestDecodeTelemetryErrors(t *testing.T) {
	tests := append(append([]fieldCase{}, timestampCases...), []fieldCase{
		{"alerts string", `{"timestamp":1,"alerts":"overheat"}`, "alerts"},
		{"alerts object", `{"timestamp":1,"alerts":{}}`, "alerts"},
		{"alerts of numbers", `{"timestamp":1,"alerts":[1,2]}`, "alerts"},
		{"alerts of lists", `{"timestamp":1,"alerts":[["a"]]}`, "alerts"},
		{"alerts true", `{"timestamp":1,"alerts":true}`, "alerts"},
		{"empty attribute name", `{"timestamp":1,"":5}`, ""},
		{"number out of range", `{"timestamp":1,"h2_flow":1e400}`, "h2_flow"},
		{"negative number out of range", `{"timestamp":1,"x":-1e999}`, "x"},
		{"number out of range in a list", `{"timestamp":1,"cells":[1.9,1e400]}`, "cells"},
		{"number out of range in an object", `{"timestamp":1,"dryer":{"p":1e400}}`, "dryer"},
	}...)
	checkFieldErrors(t, "telemetry", decodeTelemetry, tests)
}

func TestDecodePropertiesErrors(t *testing.T) {
	tests := append(append([]fieldCase{}, timestampCases...), []fieldCase{
		{"alerts are for telemetry", `{"timestamp":1,"alerts":["x"]}`, "alerts"},
		{"empty alerts are for telemetry", `{"timestamp":1,"alerts":[]}`, "alerts"},
		{"alerts string", `{"timestamp":1,"alerts":"x"}`, "alerts"},
		{"empty attribute name", `{"timestamp":1,"":"x"}`, ""},
		{"number out of range", `{"timestamp":1,"max_power":1e400}`, "max_power"},
	}...)
	checkFieldErrors(t, "properties", decodeProperties, tests)
}

func TestDecodeLogErrors(t *testing.T) {
	tests := append(withFields(timestampCases, `"severity":"info",`), []fieldCase{
		{"missing severity", `{"timestamp":1,"message":"m"}`, "severity"},
		{"null severity", `{"timestamp":1,"message":"m","severity":null}`, "severity"},
		{"empty severity", `{"timestamp":1,"message":"m","severity":""}`, "severity"},
		{"unknown severity", `{"timestamp":1,"message":"m","severity":"fatal"}`, "severity"},
		{"severity in capitals", `{"timestamp":1,"message":"m","severity":"INFO"}`, "severity"},
		{"short severity", `{"timestamp":1,"message":"m","severity":"warn"}`, "severity"},
		{"numeric severity", `{"timestamp":1,"message":"m","severity":3}`, "severity"},
		{"list severity", `{"timestamp":1,"message":"m","severity":["info"]}`, "severity"},
		{"numeric message", `{"timestamp":1,"message":42,"severity":"info"}`, "message"},
		{"object message", `{"timestamp":1,"message":{"text":"m"},"severity":"info"}`, "message"},
		{"string persist", `{"timestamp":1,"message":"m","severity":"info","persist":"true"}`, "persist"},
		{"numeric persist", `{"timestamp":1,"message":"m","severity":"info","persist":1}`, "persist"},
	}...)
	checkFieldErrors(t, "log", decodeLog, tests)
}

func TestDecodeCommandRequestErrors(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		field   string
		id      string // the id the error must carry
	}{
		// No id can be read: the request cannot be answered.
		{"non-JSON", `set_production_rate 75`, "", ""},
		{"truncated before the id ends", `{"id":"r1`, "", ""},
		{"truncated after the id", `{"id":"r1","name":"start"`, "", ""},
		{"array holding a request", `[{"id":"r1","name":"start"}]`, "", ""},
		{"no id", `{"name":"start"}`, "id", ""},
		{"null id", `{"id":null,"name":"start"}`, "id", ""},
		{"numeric id", `{"id":42,"name":"start"}`, "id", ""},
		{"object id", `{"id":{"v":"r1"},"name":"start"}`, "id", ""},
		{"list id", `{"id":["r1"],"name":"start"}`, "id", ""},
		{"empty id", `{"id":"","name":"start"}`, "id", ""},
		{"id in capitals", `{"ID":"r1","name":"start"}`, "id", ""},
		{"invalid UTF-8 in the id", "{\"id\":\"r\xff1\",\"name\":\"start\"}", "", ""},
		{"invalid UTF-8 in the key of the id", "{\"i\xffd\":\"r1\",\"name\":\"start\"}", "", ""},
		{"invalid UTF-8 and no id", "{\"name\":\"st\xffart\"}", "", ""},
		{"invalid UTF-8 and numeric id", "{\"id\":42,\"name\":\"st\xffart\"}", "", ""},
		{"invalid UTF-8 and empty id", "{\"id\":\"\",\"name\":\"st\xffart\"}", "", ""},
		{"invalid UTF-8 and id in capitals", "{\"ID\":\"r1\",\"name\":\"st\xffart\"}", "", ""},
		{"invalid UTF-8 and broken JSON", "{\"id\":\"r1\",\"name\":\"st\xffart\"", "", ""},
		{"invalid UTF-8 outside any string", "{\"id\":\"r1\",\"name\":\"start\"}\xff", "", ""},
		{"invalid UTF-8 and escaped replacement character in id", "{\"id\":\"r\\ufffd\",\"name\":\"\xff\"}", "", ""},
		// The id is readable: the error carries it.
		{"no name", `{"id":"r1"}`, "name", "r1"},
		{"null name", `{"id":"r1","name":null}`, "name", "r1"},
		{"empty name", `{"id":"r1","name":""}`, "name", "r1"},
		{"numeric name", `{"id":"r1","name":7}`, "name", "r1"},
		{"list name", `{"name":["start"],"id":"r1"}`, "name", "r1"},
		{"list arguments", `{"id":"r1","name":"set","arguments":[75]}`, "arguments", "r1"},
		{"string arguments", `{"id":"r1","name":"set","arguments":"{\"rate\":75}"}`, "arguments", "r1"},
		{"numeric arguments", `{"id":"r1","name":"set","arguments":75}`, "arguments", "r1"},
		{"bool arguments", `{"id":"r1","name":"set","arguments":false}`, "arguments", "r1"},
		{"escaped id", `{"id":"r\u0031\"x","name":""}`, "name", `r1"x`},
		{"unicode id", `{"id":"запрос-1","name":5}`, "name", "запрос-1"},
		{"last of duplicate ids", `{"id":"r1","id":"r2","name":5}`, "name", "r2"},
		{"invalid UTF-8 in the name", "{\"id\":\"r1\",\"name\":\"st\xffart\"}", "", "r1"},
		{"invalid UTF-8 in the arguments", "{\"id\":\"r1\",\"name\":\"set\",\"arguments\":{\"unit\":\"\xb0C\"}}", "", "r1"},
		{"invalid UTF-8 in a key", "{\"id\":\"r1\",\"name\":\"set\",\"\xff\":1}", "", "r1"},
		{"invalid UTF-8 before the id", "{\"x\":\"\xff\",\"id\":\"r1\",\"name\":\"set\"}", "", "r1"},
		{"invalid UTF-8 and duplicate ids", "{\"id\":\"r1\",\"id\":\"r2\",\"name\":\"\xff\"}", "", "r2"},
		{"invalid UTF-8 and ids differing by case", "{\"id\":\"r1\",\"Id\":\"r2\",\"name\":\"\xff\"}", "", "r1"},
		{"invalid UTF-8 and non-string name", "{\"id\":\"r1\",\"name\":5,\"x\":\"\xff\"}", "", "r1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := mqttapi.DecodeCommandRequest([]byte(tt.payload))
			if err == nil {
				t.Fatalf("decoded %+v, want an error", req)
			}
			if !reflect.DeepEqual(req, mqttapi.CommandRequest{}) {
				t.Errorf("returned %+v with its error, want the zero request", req)
			}
			derr := asDecodeError(t, err, "command request")
			if derr.Field != tt.field {
				t.Errorf("Field = %q, want %q (error: %v)", derr.Field, tt.field, err)
			}
			if derr.ID != tt.id {
				t.Errorf("ID = %q, want %q (error: %v)", derr.ID, tt.id, err)
			}
		})
	}
}

func TestDecodeCommandResponseErrors(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		field   string
		id      string
	}{
		{"no id", `{"state":"completed","payload":{}}`, "id", ""},
		{"numeric id", `{"id":42,"state":"completed"}`, "id", ""},
		{"empty id", `{"id":"","state":"completed"}`, "id", ""},
		{"null id", `{"id":null,"state":"completed"}`, "id", ""},
		{"no state", `{"id":"r1","payload":{}}`, "state", "r1"},
		{"null state", `{"id":"r1","state":null}`, "state", "r1"},
		{"empty state", `{"id":"r1","state":""}`, "state", "r1"},
		{"unknown state", `{"id":"r1","state":"done"}`, "state", "r1"},
		{"state in capitals", `{"id":"r1","state":"COMPLETED"}`, "state", "r1"},
		{"numeric state", `{"id":"r1","state":1}`, "state", "r1"},
		{"list payload", `{"id":"r1","state":"completed","payload":[]}`, "payload", "r1"},
		{"string payload", `{"id":"r1","state":"error","payload":"boom"}`, "payload", "r1"},
		{"numeric payload", `{"id":"r1","state":"log","payload":50}`, "payload", "r1"},
		{"invalid UTF-8", "{\"id\":\"r1\",\"state\":\"error\",\"payload\":{\"message\":\"\xff\"}}", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := mqttapi.DecodeCommandResponse([]byte(tt.payload))
			if err == nil {
				t.Fatalf("decoded %+v, want an error", resp)
			}
			derr := asDecodeError(t, err, "command response")
			if derr.Field != tt.field {
				t.Errorf("Field = %q, want %q (error: %v)", derr.Field, tt.field, err)
			}
			if derr.ID != tt.id {
				t.Errorf("ID = %q, want %q", derr.ID, tt.id)
			}
		})
	}
}

func TestDecodeErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		err  *mqttapi.DecodeError
		want string
	}{
		{"whole payload", &mqttapi.DecodeError{Message: "telemetry", Problem: "payload is not JSON"}, "decode telemetry: payload is not JSON"},
		{"one field", &mqttapi.DecodeError{Message: "log", Field: "severity", Problem: "missing"}, `decode log: field "severity": missing`},
		{"field needing quotes", &mqttapi.DecodeError{Message: "telemetry", Field: "a\"b", Problem: "x"}, `decode telemetry: field "a\"b": x`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("unwrap", func(t *testing.T) {
		inner := errors.New("inner")
		if err := error(&mqttapi.DecodeError{Message: "m", Problem: "p", Err: inner}); !errors.Is(err, inner) {
			t.Errorf("errors.Is(%v, inner) = false", err)
		}
	})
}

func TestDecodeTelemetry(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    mqttapi.Telemetry
	}{
		{"only timestamp", `{"timestamp":1718029200}`,
			mqttapi.Telemetry{Timestamp: 1718029200, Values: map[string]any{}}},
		{"zero timestamp", `{"timestamp":0}`,
			mqttapi.Telemetry{Values: map[string]any{}}},
		{"timestamp with exponent", `{"timestamp":1.7e9}`,
			mqttapi.Telemetry{Timestamp: 1700000000, Values: map[string]any{}}},
		{"timestamp written as float", `{"timestamp":5.0}`,
			mqttapi.Telemetry{Timestamp: 5, Values: map[string]any{}}},
		{"largest timestamp", `{"timestamp":9007199254740992}`,
			mqttapi.Telemetry{Timestamp: 1 << 53, Values: map[string]any{}}},
		{"no alerts key is unknown", `{"timestamp":1,"a":1}`,
			mqttapi.Telemetry{Timestamp: 1, Alerts: mqttapi.UnknownAlerts(), Values: map[string]any{"a": 1.0}}},
		{"null alerts are unknown", `{"timestamp":1,"alerts":null}`,
			mqttapi.Telemetry{Timestamp: 1, Alerts: mqttapi.UnknownAlerts(), Values: map[string]any{}}},
		{"empty alerts are none", `{"timestamp":1,"alerts":[]}`,
			mqttapi.Telemetry{Timestamp: 1, Alerts: mqttapi.NoAlerts(), Values: map[string]any{}}},
		{"active alerts", `{"timestamp":1,"alerts":["b","a"]}`,
			mqttapi.Telemetry{Timestamp: 1, Alerts: mqttapi.ActiveAlerts("b", "a"), Values: map[string]any{}}},
		{"every JSON type", `{"timestamp":1,"f":47.85,"i":12,"s":"ok","t":true,"n":null,"l":[1,"x"],"o":{"k":false}}`,
			mqttapi.Telemetry{Timestamp: 1, Values: map[string]any{
				"f": 47.85, "i": 12.0, "s": "ok", "t": true, "n": nil, "l": []any{1.0, "x"}, "o": map[string]any{"k": false},
			}}},
		{"keys differing from reserved ones by case", `{"timestamp":1,"Alerts":["x"],"TIMESTAMP":2}`,
			mqttapi.Telemetry{Timestamp: 1, Values: map[string]any{"Alerts": []any{"x"}, "TIMESTAMP": 2.0}}},
		{"last duplicate wins", `{"timestamp":1,"a":1,"a":2,"timestamp":3}`,
			mqttapi.Telemetry{Timestamp: 3, Values: map[string]any{"a": 2.0}}},
		{"escapes", `{"timestamp":1,"k\"\u00e9":"\u00b0C\n\ud83d\udd25"}`,
			mqttapi.Telemetry{Timestamp: 1, Values: map[string]any{"k\"é": "°C\n🔥"}}},
		{"lone surrogate becomes replacement character", `{"timestamp":1,"s":"\ud800"}`,
			mqttapi.Telemetry{Timestamp: 1, Values: map[string]any{"s": "\ufffd"}}},
		{"whitespace everywhere", " {\n\t\"timestamp\" : 1 ,\r\n \"alerts\" : [ \"x\" ] } \n",
			mqttapi.Telemetry{Timestamp: 1, Alerts: mqttapi.ActiveAlerts("x"), Values: map[string]any{}}},
		{"negative zero", `{"timestamp":1,"z":-0}`,
			mqttapi.Telemetry{Timestamp: 1, Values: map[string]any{"z": math.Copysign(0, -1)}}},
		{"big integer loses precision", `{"timestamp":1,"energy":9007199254740993}`,
			mqttapi.Telemetry{Timestamp: 1, Values: map[string]any{"energy": 9007199254740992.0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mqttapi.DecodeTelemetry([]byte(tt.payload))
			if err != nil {
				t.Fatalf("DecodeTelemetry: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DecodeTelemetry =\n  %#v\nwant\n  %#v", got, tt.want)
			}
			if got.Alerts.Known() != tt.want.Alerts.Known() {
				t.Errorf("Alerts.Known() = %v, want %v", got.Alerts.Known(), tt.want.Alerts.Known())
			}
		})
	}
}

func TestDecodeProperties(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    mqttapi.Properties
	}{
		{"only timestamp", `{"timestamp":1}`, mqttapi.Properties{Timestamp: 1, Values: map[string]any{}}},
		{"values", `{"timestamp":1,"vendor":"Enapter","virtual":true,"lua_api_ver":1}`,
			mqttapi.Properties{Timestamp: 1, Values: map[string]any{"vendor": "Enapter", "virtual": true, "lua_api_ver": 1.0}}},
		{"null alerts ignored", `{"timestamp":1,"alerts":null,"a":"b"}`,
			mqttapi.Properties{Timestamp: 1, Values: map[string]any{"a": "b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mqttapi.DecodeProperties([]byte(tt.payload))
			if err != nil {
				t.Fatalf("DecodeProperties: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DecodeProperties = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestDecodeLog(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    mqttapi.Log
	}{
		{"debug", `{"timestamp":1,"message":"m","severity":"debug"}`, mqttapi.Log{Timestamp: 1, Message: "m", Severity: mqttapi.SeverityDebug}},
		{"info", `{"timestamp":1,"message":"m","severity":"info","persist":false}`, mqttapi.Log{Timestamp: 1, Message: "m", Severity: mqttapi.SeverityInfo}},
		{"warning persisted", `{"timestamp":1,"message":"m","severity":"warning","persist":true}`, mqttapi.Log{Timestamp: 1, Message: "m", Severity: mqttapi.SeverityWarning, Persist: true}},
		{"error", `{"timestamp":1,"message":"m","severity":"error"}`, mqttapi.Log{Timestamp: 1, Message: "m", Severity: mqttapi.SeverityError}},
		{"no message", `{"timestamp":1,"severity":"info"}`, mqttapi.Log{Timestamp: 1, Severity: mqttapi.SeverityInfo}},
		{"null message", `{"timestamp":1,"message":null,"severity":"info"}`, mqttapi.Log{Timestamp: 1, Severity: mqttapi.SeverityInfo}},
		{"null persist", `{"timestamp":1,"message":"m","severity":"info","persist":null}`, mqttapi.Log{Timestamp: 1, Message: "m", Severity: mqttapi.SeverityInfo}},
		{"unknown fields ignored", `{"timestamp":1,"message":"m","severity":"info","source":"lua"}`, mqttapi.Log{Timestamp: 1, Message: "m", Severity: mqttapi.SeverityInfo}},
		{"escaped message", `{"timestamp":1,"message":"line 1\nline \"2\"","severity":"info"}`, mqttapi.Log{Timestamp: 1, Message: "line 1\nline \"2\"", Severity: mqttapi.SeverityInfo}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mqttapi.DecodeLog([]byte(tt.payload))
			if err != nil {
				t.Fatalf("DecodeLog: %v", err)
			}
			if got != tt.want {
				t.Errorf("DecodeLog = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeCommandRequest(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    mqttapi.CommandRequest
	}{
		{"no arguments", `{"id":"r1","name":"start"}`, mqttapi.CommandRequest{ID: "r1", Name: "start"}},
		{"null arguments", `{"id":"r1","name":"start","arguments":null}`, mqttapi.CommandRequest{ID: "r1", Name: "start"}},
		{"empty arguments", `{"id":"r1","name":"start","arguments":{}}`, mqttapi.CommandRequest{ID: "r1", Name: "start", Arguments: json.RawMessage(`{}`)}},
		{"arguments kept verbatim", `{"id":"r1","name":"set","arguments": {"rate": 75, "unit": "\u0025"} }`,
			mqttapi.CommandRequest{ID: "r1", Name: "set", Arguments: json.RawMessage(`{"rate": 75, "unit": "\u0025"}`)}},
		{"unknown fields ignored", `{"id":"r1","name":"start","extra":[1]}`, mqttapi.CommandRequest{ID: "r1", Name: "start"}},
		{"fields in any order", `{"arguments":{"a":1},"name":"n","id":"r1"}`, mqttapi.CommandRequest{ID: "r1", Name: "n", Arguments: json.RawMessage(`{"a":1}`)}},
		{"escaped id and name", `{"id":"r\u0031","name":"s\u0074art"}`, mqttapi.CommandRequest{ID: "r1", Name: "start"}},
		{"unicode", `{"id":"запрос","name":"überprüfen"}`, mqttapi.CommandRequest{ID: "запрос", Name: "überprüfen"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mqttapi.DecodeCommandRequest([]byte(tt.payload))
			if err != nil {
				t.Fatalf("DecodeCommandRequest: %v", err)
			}
			if got.ID != tt.want.ID || got.Name != tt.want.Name || string(got.Arguments) != string(tt.want.Arguments) {
				t.Errorf("DecodeCommandRequest = {%q %q %s}, want {%q %q %s}", got.ID, got.Name, got.Arguments, tt.want.ID, tt.want.Name, tt.want.Arguments)
			}
		})
	}
}

func TestDecodeCommandRequestDoesNotAliasInput(t *testing.T) {
	in := []byte(`{"id":"r1","name":"set","arguments":{"rate":75}}`)
	req, err := mqttapi.DecodeCommandRequest(in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = 'X' // the MQTT client may reuse its buffer
	}
	if string(req.Arguments) != `{"rate":75}` || req.ID != "r1" || req.Name != "set" {
		t.Errorf("request changed with its input buffer: %+v", req)
	}
}

// TestEmptyPayloadNotShared changes the {} payload that one response got and
// checks that no other response sees the change.
func TestEmptyPayloadNotShared(t *testing.T) {
	makers := []struct {
		name string
		make func() (mqttapi.CommandResponse, error)
	}{
		{"DecodeCommandResponse", func() (mqttapi.CommandResponse, error) {
			return mqttapi.DecodeCommandResponse([]byte(`{"id":"r1","state":"log"}`))
		}},
		{"NewCommandResponse", func() (mqttapi.CommandResponse, error) {
			return mqttapi.NewCommandResponse("r1", mqttapi.StateLog, nil)
		}},
	}
	for _, m := range makers {
		t.Run(m.name, func(t *testing.T) {
			first, err := m.make()
			if err != nil {
				t.Fatal(err)
			}
			first.Payload[0] = 'X'
			for _, other := range makers {
				r, err := other.make()
				if err != nil {
					t.Fatal(err)
				}
				if string(r.Payload) != "{}" {
					t.Errorf("after changing a payload from %s, %s returns payload %q", m.name, other.name, r.Payload)
				}
			}
			if b, err := (mqttapi.CommandResponse{ID: "r2", State: mqttapi.StateLog}).MarshalJSON(); err != nil || !strings.HasSuffix(string(b), `"payload":{}}`) {
				t.Errorf("MarshalJSON of an empty payload = %s, %v", b, err)
			}
		})
	}
}

func TestDecodeCommandResponse(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    mqttapi.CommandResponse
	}{
		{"completed", `{"id":"r1","state":"completed","payload":{"message":"ok"}}`, mqttapi.CommandResponse{ID: "r1", State: mqttapi.StateCompleted, Payload: json.RawMessage(`{"message":"ok"}`)}},
		{"error", `{"id":"r1","state":"error","payload":{"message":"no"}}`, mqttapi.CommandResponse{ID: "r1", State: mqttapi.StateError, Payload: json.RawMessage(`{"message":"no"}`)}},
		{"log", `{"id":"r1","state":"log","payload":{"message":"50 %"}}`, mqttapi.CommandResponse{ID: "r1", State: mqttapi.StateLog, Payload: json.RawMessage(`{"message":"50 %"}`)}},
		{"no payload", `{"id":"r1","state":"completed"}`, mqttapi.CommandResponse{ID: "r1", State: mqttapi.StateCompleted, Payload: json.RawMessage(`{}`)}},
		{"null payload", `{"id":"r1","state":"completed","payload":null}`, mqttapi.CommandResponse{ID: "r1", State: mqttapi.StateCompleted, Payload: json.RawMessage(`{}`)}},
		{"payload kept verbatim", `{"id":"r1","state":"log","payload": { "a" : [1, 2] } }`, mqttapi.CommandResponse{ID: "r1", State: mqttapi.StateLog, Payload: json.RawMessage(`{ "a" : [1, 2] }`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mqttapi.DecodeCommandResponse([]byte(tt.payload))
			if err != nil {
				t.Fatalf("DecodeCommandResponse: %v", err)
			}
			if got.ID != tt.want.ID || got.State != tt.want.State || string(got.Payload) != string(tt.want.Payload) {
				t.Errorf("DecodeCommandResponse = {%q %q %s}, want {%q %q %s}", got.ID, got.State, got.Payload, tt.want.ID, tt.want.State, tt.want.Payload)
			}
		})
	}
}

func TestDecodeHugeCommandRequest(t *testing.T) {
	const size = 4 << 20
	var b bytes.Buffer
	b.WriteString(`{"id":"upload-1","name":"upload_firmware","arguments":{"chunks":[`)
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"offset":1048576,"data":"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=","crc":"\u00e9"}`)
	}
	b.WriteString(`],"image":"`)
	b.WriteString(strings.Repeat("A", size))
	b.WriteString(`"}}`)

	req, err := mqttapi.DecodeCommandRequest(b.Bytes())
	if err != nil {
		t.Fatalf("DecodeCommandRequest of %d bytes: %v", b.Len(), err)
	}
	if req.ID != "upload-1" || req.Name != "upload_firmware" {
		t.Errorf("decoded id %q, name %q", req.ID, req.Name)
	}
	if want := b.Len() - len(`{"id":"upload-1","name":"upload_firmware","arguments":}`); len(req.Arguments) != want {
		t.Errorf("arguments are %d bytes, want %d", len(req.Arguments), want)
	}
	var args struct {
		Chunks []json.RawMessage `json:"chunks"`
		Image  string            `json:"image"`
	}
	if err := json.Unmarshal(req.Arguments, &args); err != nil || len(args.Image) != size || len(args.Chunks) == 0 {
		t.Errorf("arguments do not decode: %v (image %d bytes, %d chunks)", err, len(args.Image), len(args.Chunks))
	}
	// And the same request, broken only in its name, is answered on its id.
	broken := bytes.Replace(b.Bytes(), []byte(`"name":"upload_firmware"`), []byte(`"name":17`), 1)
	_, err = mqttapi.DecodeCommandRequest(broken)
	if derr := asDecodeError(t, err, "command request"); derr.ID != "upload-1" || derr.Field != "name" {
		t.Errorf("error on a huge request: id %q, field %q, want upload-1, name", derr.ID, derr.Field)
	}
}

func TestDecodeHugeTelemetry(t *testing.T) {
	var b bytes.Buffer
	b.WriteString(`{"timestamp":1718029200,"alerts":["overheat"]`)
	for i := 0; b.Len() < 4<<20; i++ {
		fmt.Fprintf(&b, `,"cell_voltage_%08d":1.925`, i)
	}
	b.WriteString(`}`)
	tm, err := mqttapi.DecodeTelemetry(b.Bytes())
	if err != nil {
		t.Fatalf("DecodeTelemetry of %d bytes: %v", b.Len(), err)
	}
	if len(tm.Values) < 100000 {
		t.Errorf("decoded %d values", len(tm.Values))
	}
	out, err := tm.MarshalJSON()
	if err != nil {
		t.Fatalf("MarshalJSON: %v", err)
	}
	if !bytes.Equal(out, b.Bytes()) {
		t.Errorf("re-encoded huge telemetry differs from the sorted input")
	}
}

// TestDecodeErrorsStayShort feeds huge bad values: error messages must not
// grow with the payload.
func TestDecodeErrorsStayShort(t *testing.T) {
	huge := strings.Repeat("x", 1<<20)
	hugeNumber := "1" + strings.Repeat("0", 1<<20) + "e400"
	tests := []struct {
		name    string
		msg     string
		decode  func([]byte) error
		payload string
		field   string
	}{
		{"log severity", "log", decodeLog, `{"timestamp":1,"message":"m","severity":"` + huge + `"}`, "severity"},
		{"log severity of multibyte runes", "log", decodeLog, `{"timestamp":1,"severity":"` + strings.Repeat("€", 1<<18) + `"}`, "severity"},
		{"log timestamp", "log", decodeLog, `{"timestamp":` + hugeNumber + `,"severity":"info"}`, "timestamp"},
		{"log message list", "log", decodeLog, `{"timestamp":1,"severity":"info","message":["` + huge + `"]}`, "message"},
		{"response state", "command response", decodeResponse, `{"id":"r1","state":"` + huge + `"}`, "state"},
		{"response payload string", "command response", decodeResponse, `{"id":"r1","state":"log","payload":"` + huge + `"}`, "payload"},
		{"request arguments string", "command request", decodeRequest, `{"id":"r1","name":"n","arguments":"` + huge + `"}`, "arguments"},
		{"request name number", "command request", decodeRequest, `{"id":"r1","name":` + hugeNumber + `}`, "name"},
		{"request syntax error after huge id", "command request", decodeRequest, `{"id":"` + huge + `",,}`, ""},
		{"telemetry number out of range", "telemetry", decodeTelemetry, `{"timestamp":1,"v":` + hugeNumber + `}`, "v"},
		{"telemetry nested number out of range", "telemetry", decodeTelemetry, `{"timestamp":1,"v":[` + hugeNumber + `]}`, "v"},
		{"telemetry huge key with bad value", "telemetry", decodeTelemetry, `{"timestamp":1,"` + huge + `":1e400}`, huge},
		{"telemetry alerts", "telemetry", decodeTelemetry, `{"timestamp":1,"alerts":"` + huge + `"}`, "alerts"},
		{"properties number out of range", "properties", decodeProperties, `{"timestamp":1,"v":-` + hugeNumber + `}`, "v"},
		{"unterminated huge string", "telemetry", decodeTelemetry, `{"timestamp":1,"v":"` + huge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.decode([]byte(tt.payload))
			if err == nil {
				t.Fatal("decoded, want an error")
			}
			derr := asDecodeError(t, err, tt.msg) // checks the length
			if derr.Field != tt.field {
				t.Errorf("Field = %.40q, want %.40q", derr.Field, tt.field)
			}
		})
	}
}

func decodeTelemetry(b []byte) error  { _, err := mqttapi.DecodeTelemetry(b); return err }
func decodeProperties(b []byte) error { _, err := mqttapi.DecodeProperties(b); return err }
func decodeLog(b []byte) error        { _, err := mqttapi.DecodeLog(b); return err }
func decodeRequest(b []byte) error    { _, err := mqttapi.DecodeCommandRequest(b); return err }
func decodeResponse(b []byte) error   { _, err := mqttapi.DecodeCommandResponse(b); return err }
