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

// eventJSON is a telemetry message as the device sent it (timestamp,
// attributes, alerts) or a log entry, with the device id added.
func eventJSON(ev ingest.Event) ([]byte, error) {
	if ev.Kind == mqttapi.KindLogs {
		return json.Marshal(ev.Log)
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
