package ingest

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/edk-go/edk/hub/store"
	"github.com/edk-go/edk/mqttapi"
)

// Event is one decoded device message, as pushed to subscribers. Its maps,
// slices and Payload are shared between subscribers: read them, never
// change them.
type Event struct {
	// Kind is mqttapi.KindTelemetry, KindProperties (also for messages on
	// v1/register) or KindLogs.
	Kind     mqttapi.Kind
	DeviceID string
	// Time is the message's timestamp (the time it arrived when it had none).
	Time time.Time
	// Values are the attributes of telemetry and properties.
	Values map[string]json.RawMessage
	// Alerts are telemetry's active alerts; nil when not reported.
	Alerts []string
	// Log is the entry of a log message.
	Log store.LogEntry
	// Payload is the message as the device sent it.
	Payload json.RawMessage
}

type subscriber struct {
	deviceID string // "" means every device
	kinds    []mqttapi.Kind
	ch       chan Event
}

func (s *subscriber) wants(e *Event) bool {
	return (s.deviceID == "" || s.deviceID == e.DeviceID) && (len(s.kinds) == 0 || slices.Contains(s.kinds, e.Kind))
}

// Subscribe returns a channel of the events of one device (every device when
// deviceID is ""), limited to kinds when any are given (KindRegister counts
// as KindProperties). Events are sent without waiting: when the channel is
// full the event is dropped for this subscriber and counted in
// Stats.SubscriberDrops. cancel stops the subscription and closes the
// channel; it may be called more than once. The channel is also closed when
// Run returns.
func (p *Pipeline) Subscribe(deviceID string, kinds ...mqttapi.Kind) (<-chan Event, func()) {
	ks := make([]mqttapi.Kind, 0, len(kinds))
	for _, k := range kinds {
		if k == mqttapi.KindRegister {
			k = mqttapi.KindProperties
		}
		ks = append(ks, k)
	}
	s := &subscriber{deviceID: deviceID, kinds: ks, ch: make(chan Event, p.cfg.SubscriberBuffer)}
	p.subMu.Lock()
	if p.subDone {
		p.subMu.Unlock()
		close(s.ch)
		return s.ch, func() {}
	}
	p.subs[s] = struct{}{}
	p.subMu.Unlock()
	cancel := func() {
		p.subMu.Lock()
		defer p.subMu.Unlock()
		if _, ok := p.subs[s]; ok {
			delete(p.subs, s)
			close(s.ch)
		}
	}
	return s.ch, cancel
}

// publish fans an event out without blocking.
func (p *Pipeline) publish(e Event) {
	p.subMu.Lock()
	defer p.subMu.Unlock()
	for s := range p.subs {
		if !s.wants(&e) {
			continue
		}
		select {
		case s.ch <- e:
		default:
			p.stat.subDrops.Add(1)
		}
	}
}

// closeSubscribers ends every subscription; later ones start closed.
func (p *Pipeline) closeSubscribers() {
	p.subMu.Lock()
	defer p.subMu.Unlock()
	p.subDone = true
	for s := range p.subs {
		delete(p.subs, s)
		close(s.ch)
	}
}
