package hub

import (
	"encoding/json"
	"maps"
	"sync"

	"github.com/edk-go/edk/hub/api"
	"github.com/edk-go/edk/hub/ingest"
	"github.com/edk-go/edk/mqttapi"
)

// streams turns ingest's live events into the JSON messages of the API's
// WebSocket streams.
type streams struct{ p *ingest.Pipeline }

func (s streams) Subscribe(deviceID, kind string) (<-chan api.StreamEvent, func()) {
	k := mqttapi.KindTelemetry
	if kind == api.StreamLogs {
		k = mqttapi.KindLogs
	}
	in, cancel := s.p.Subscribe(deviceID, k)
	out := make(chan api.StreamEvent, 16)
	done := make(chan struct{})
	go func() {
		defer close(out)
		for {
			select {
			case <-done:
				return
			case ev, ok := <-in:
				if !ok {
					return
				}
				b, err := eventJSON(ev)
				if err != nil {
					continue
				}
				select {
				case out <- api.StreamEvent{Data: b}:
				case <-done:
					return
				}
			}
		}
	}()
	var once sync.Once
	return out, func() {
		once.Do(func() {
			close(done)
			cancel()
		})
	}
}

// streamLog is a log entry as Enapter's log stream sends it (what
// enapter3 device logs --follow reads: the fields of a listed entry, times
// as RFC 3339 strings), with the device id added.
type streamLog struct {
	DeviceID   string `json:"device_id"`
	Timestamp  string `json:"timestamp"`
	ReceivedAt string `json:"received_at"`
	Severity   string `json:"severity"`
	Message    string `json:"message"`
	Persist    bool   `json:"persist"`
}

// eventJSON is a telemetry message as the device sent it (timestamp,
// attributes, alerts) or a log entry, with the device id added.
func eventJSON(ev ingest.Event) ([]byte, error) {
	if ev.Kind == mqttapi.KindLogs {
		at := ev.Log.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00")
		return json.Marshal(streamLog{DeviceID: ev.DeviceID, Timestamp: at, ReceivedAt: at,
			Severity: ev.Log.Severity, Message: ev.Log.Message, Persist: ev.Log.Persist})
	}
	m := make(map[string]any, len(ev.Values)+3)
	for k, v := range maps.All(ev.Values) {
		m[k] = v
	}
	m["device_id"] = ev.DeviceID
	m["timestamp"] = ev.Time.Unix()
	if ev.Alerts != nil {
		m["alerts"] = ev.Alerts
	}
	return json.Marshal(m)
}
