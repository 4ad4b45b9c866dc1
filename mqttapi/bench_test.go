package mqttapi_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/edk-go/edk/mqttapi"
)

// benchValues returns n attributes mixing what devices send every second:
// floats, ints, strings and booleans, in that rotation.
func benchValues(n int) map[string]any {
	values := make(map[string]any, n)
	for i := range n {
		key := fmt.Sprintf("attribute_%02d", i)
		switch i % 4 {
		case 0:
			values[key] = 47.85 + float64(i)*0.013
		case 1:
			values[key] = 1200 + i
		case 2:
			values[key] = "state_" + fmt.Sprint(i)
		case 3:
			values[key] = i%8 == 3
		}
	}
	return values
}

// stdlibTelemetry is the map a program without this package would hand to
// json.Marshal for the same telemetry.
func stdlibTelemetry(ts int64, alerts []string, values map[string]any) map[string]any {
	m := make(map[string]any, len(values)+2)
	for k, v := range values {
		m[k] = v
	}
	m["timestamp"] = ts
	m["alerts"] = alerts
	return m
}

var benchSizes = []int{10, 50}

func BenchmarkEncodeTelemetry(b *testing.B) {
	for _, n := range benchSizes {
		tm := mqttapi.Telemetry{Timestamp: 1718029200, Alerts: mqttapi.ActiveAlerts("stack_overheat"), Values: benchValues(n)}
		out, err := tm.MarshalJSON()
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("attrs=%d/MarshalJSON", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(out)))
			for b.Loop() {
				if _, err := tm.MarshalJSON(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("attrs=%d/AppendJSON", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(out)))
			buf := make([]byte, 0, 4096)
			for b.Loop() {
				buf, err = tm.AppendJSON(buf[:0])
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodeTelemetryStdlib(b *testing.B) {
	for _, n := range benchSizes {
		m := stdlibTelemetry(1718029200, []string{"stack_overheat"}, benchValues(n))
		out, err := json.Marshal(m)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("attrs=%d/json.Marshal", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(out)))
			for b.Loop() {
				if _, err := json.Marshal(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodeTelemetry(b *testing.B) {
	payloads := []struct {
		name string
		b    []byte
	}{{"sample", readTestdata(b, "telemetry.json")}}
	for _, n := range benchSizes {
		p, err := mqttapi.Telemetry{Timestamp: 1718029200, Alerts: mqttapi.ActiveAlerts("stack_overheat"), Values: benchValues(n)}.MarshalJSON()
		if err != nil {
			b.Fatal(err)
		}
		payloads = append(payloads, struct {
			name string
			b    []byte
		}{fmt.Sprintf("attrs=%d", n), p})
	}
	for _, p := range payloads {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(p.b)))
			for b.Loop() {
				if _, err := mqttapi.DecodeTelemetry(p.b); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodeCommandRequest(b *testing.B) {
	for _, name := range []string{"command_request.json", "command_request_no_args.json"} {
		p := readTestdata(b, name)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				if _, err := mqttapi.DecodeCommandRequest(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	bad := []byte(`{"id":"6f0a2b8e-3c1d-4e5f-9a7b-8c9d0e1f2a3b","name":"set_production_rate","arguments":[75]}`)
	b.Run("bad arguments", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := mqttapi.DecodeCommandRequest(bad); err == nil {
				b.Fatal("decoded a bad request")
			}
		}
	})
}

func BenchmarkEncodeCommandResponse(b *testing.B) {
	const id = "6f0a2b8e-3c1d-4e5f-9a7b-8c9d0e1f2a3b"
	b.Run("MarshalJSON", func(b *testing.B) {
		r := mqttapi.CommandResponse{ID: id, State: mqttapi.StateCompleted, Payload: json.RawMessage(`{"message":"Production rate set to 75 %","rate":75}`)}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.MarshalJSON(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("MarshalJSON empty payload", func(b *testing.B) {
		r := mqttapi.CommandResponse{ID: id, State: mqttapi.StateLog}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.MarshalJSON(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("NewCommandResponse+MarshalJSON", func(b *testing.B) {
		payload := map[string]any{"message": "Production rate set to 75 %", "rate": 75}
		b.ReportAllocs()
		for b.Loop() {
			r, err := mqttapi.NewCommandResponse(id, mqttapi.StateCompleted, payload)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := r.MarshalJSON(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ErrorResponse+MarshalJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := mqttapi.ErrorResponse(id, "unknown command \"foo\"").MarshalJSON(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
