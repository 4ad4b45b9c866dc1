package controller

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/edk-go/edk/mqttapi"
)

func TestFormatEvent(t *testing.T) {
	at := time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC)
	topic := func(dir mqttapi.Direction, kind mqttapi.Kind) mqttapi.Topic {
		return mqttapi.Topic{Direction: dir, HardwareID: testHW, ChannelID: testCH, Kind: kind}
	}
	from := func(kind mqttapi.Kind) mqttapi.Topic { return topic(mqttapi.FromDevice, kind) }
	long := make([]byte, 200)
	for i := range long {
		long[i] = 'a'
	}
	for _, tc := range []struct {
		name string
		e    Event
		want string
	}{
		{"telemetry", Event{Topic: from(mqttapi.KindTelemetry), Telemetry: &mqttapi.Telemetry{
			Values: map[string]any{"voltage": 231.2, "power": 4700.0, "status": "ok", "on": true, "none": nil, "list": []any{1.0, "x"}},
			Alerts: mqttapi.NoAlerts(),
		}}, `15:04:05 telemetry  ch=primary list=[1,"x"] none=null on=true power=4700 status="ok" voltage=231.2 alerts=[]`},
		{"telemetry unknown alerts", Event{Topic: from(mqttapi.KindTelemetry), Telemetry: &mqttapi.Telemetry{
			Values: map[string]any{"power": 1.0},
		}}, `15:04:05 telemetry  ch=primary power=1`},
		{"telemetry active alerts", Event{Topic: from(mqttapi.KindTelemetry), Telemetry: &mqttapi.Telemetry{
			Alerts: mqttapi.ActiveAlerts("overheat", "low_fuel"),
		}}, `15:04:05 telemetry  ch=primary alerts=[overheat,low_fuel]`},
		{"properties", Event{Topic: from(mqttapi.KindProperties), Properties: &mqttapi.Properties{
			Values: map[string]any{"model": "X1", "line": "a\nb"},
		}}, `15:04:05 properties ch=primary line="a\nb" model="X1"`},
		{"log", Event{Topic: from(mqttapi.KindLogs), Log: &mqttapi.Log{Severity: mqttapi.SeverityWarning, Message: "fuel\nlow"}},
			`15:04:05 log        ch=primary [warning] fuel\nlow`},
		{"command", Event{Topic: topic(mqttapi.ToDevice, mqttapi.KindCommandRequests), Request: &mqttapi.CommandRequest{
			ID: "ab12", Name: "set_power", Arguments: json.RawMessage(`{ "power": 4700 }`),
		}}, `15:04:05 command →  ch=primary set_power id=ab12 {"power":4700}`},
		{"command without arguments", Event{Topic: topic(mqttapi.ToDevice, mqttapi.KindCommandRequests), Request: &mqttapi.CommandRequest{
			ID: "ab12", Name: "stop",
		}}, `15:04:05 command →  ch=primary stop id=ab12`},
		{"response", Event{Topic: from(mqttapi.KindCommandResponses), Response: &mqttapi.CommandResponse{
			ID: "ab12", State: mqttapi.StateCompleted, Payload: json.RawMessage(`{"new_power":4700}`),
		}}, `15:04:05 response ← ch=primary id=ab12 completed {"new_power":4700}`},
		{"response without payload", Event{Topic: from(mqttapi.KindCommandResponses), Response: &mqttapi.CommandResponse{
			ID: "ab12", State: mqttapi.StateCompleted, Payload: json.RawMessage(`{}`),
		}}, `15:04:05 response ← ch=primary id=ab12 completed`},
		{"malformed", Event{Topic: from(mqttapi.KindTelemetry), Payload: []byte(`{"power":1}`),
			Err: &mqttapi.DecodeError{Message: "telemetry", Field: "timestamp", Problem: "missing"}},
			`15:04:05 malformed  ch=primary decode telemetry: field "timestamp": missing; payload "{\"power\":1}"`},
		{"malformed long payload", Event{Topic: from(mqttapi.KindLogs), Payload: long, Err: errors.New("bad")},
			`15:04:05 malformed  ch=primary bad; payload "` + string(long[:maxShownPayload]) + `"…`},
		{"unknown topic", Event{Err: errors.New(`parse topic "x/y": want v1/<from|to>/…`)},
			`15:04:05 malformed  parse topic "x/y": want v1/<from|to>/…`},
		{"nothing decoded", Event{Topic: from(mqttapi.KindTelemetry)},
			`15:04:05 message    ch=primary on v1/from/hw-1/primary/v1/telemetry`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.e.Time = at
			if got := FormatEvent(tc.e); got != tc.want {
				t.Errorf("FormatEvent:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}
