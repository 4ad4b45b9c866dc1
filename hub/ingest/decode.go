// Decoding: from a raw v1/from/… message to rows in a batch and events
// for subscribers.

package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/edk-go/edk/hub/store"
	"github.com/edk-go/edk/mqttapi"
)

// process decodes one message into cur (or hands it to the sink). A
// message that someone waits for is released here when it needs no write,
// else it joins cur.waiters. A message from the inbox (replay) is noted
// in cur, whose write deletes it from there.
func (p *Pipeline) process(ctx context.Context, m message, cur *batch) {
	owner, stored, err := p.decode(ctx, m, cur)
	switch {
	case m.inboxID != nil: // replayed; nobody waits
		cur.inboxed(owner, m.inboxID)
	case m.done == nil:
	case err != nil:
		m.release(err) // not acknowledged: the device sends it again
	case stored:
		m.inboxID = new(int64)
		cur.inboxed(owner, m.inboxID)
		cur.waiters = append(cur.waiters, m)
	default:
		// Unknown device, a command response (with the sink), a
		// malformed message (counted, its count is written with the
		// batch, nobody waits for that).
		m.release(nil)
	}
}

// decode decodes one message into cur (or hands it to the sink). owner is
// the device whose rows it concerns ("" for none), stored whether cur holds
// it, err a store error that kept it from being decoded.
func (p *Pipeline) decode(ctx context.Context, m message, cur *batch) (owner string, stored bool, err error) {
	// v1/from/<hw>/<ch>/<kind…>; the hook let only v1/from/ through.
	parts := strings.SplitN(m.topic, "/", 5)
	if len(parts) != 5 || parts[2] == "" {
		p.stat.unknown.Add(1)
		return "", false, nil
	}
	hw, ch, kind := parts[2], parts[3], mqttapi.Kind(parts[4])
	dev, ok, err := p.device(ctx, hw)
	if err != nil {
		p.stat.unknown.Add(1)
		return "", false, err
	}
	if !ok {
		p.stat.unknown.Add(1)
		if now := p.cfg.Now(); now.Sub(p.unknownLogged) >= MalformedLogInterval {
			p.unknownLogged = now
			p.cfg.Logger.Warn("ingest: message from unknown hardware id dropped (logged once a minute)",
				"hardware_id", shorten(hw))
		}
		return "", false, nil
	}
	if ch != dev.channelID {
		p.stat.otherChannel.Add(1)
		return "", false, nil
	}
	id := dev.deviceID
	p.seen[id] = m.at

	switch kind {
	case mqttapi.KindTelemetry:
		err = p.telemetry(dev, hw, m, cur)
		stored = err == nil
	case mqttapi.KindProperties, mqttapi.KindRegister:
		err = p.properties(id, m, cur)
		stored = err == nil
	case mqttapi.KindLogs:
		err = p.log(id, m, cur)
		stored = err == nil
	case mqttapi.KindCommandResponses:
		var r mqttapi.CommandResponse
		r, err = mqttapi.DecodeCommandResponse(m.payload)
		if err == nil {
			if p.cfg.Sink != nil {
				p.cfg.Sink.OnResponse(id, hw, ch, r)
			}
			p.stat.responses.Add(1) // after the sink, so a test can wait for it
		}
	default:
		kind = "unknown_topic"
		err = fmt.Errorf("topic %q is not part of the Device MQTT API", shorten(m.topic))
	}
	if err != nil {
		p.malformed(id, hw, string(kind), err, cur)
	}
	return id, stored, nil
}

// checkManifest counts the telemetry values that break the device's
// manifest as malformed messages of kind "manifest/<attribute>/<problem>",
// so that the API reports them per device; each problem is logged once
// per device.
func (p *Pipeline) checkManifest(dev cacheEntry, hw string, t mqttapi.Telemetry, cur *batch) {
	for _, v := range dev.manifest.CheckTelemetry(t.Values, t.Alerts.Names()) {
		kind := "manifest/" + v.Attribute + "/" + string(v.Problem)
		p.stat.manifestViolations.Add(1)
		cur.malformed = append(cur.malformed, store.MalformedMessage{DeviceID: dev.deviceID, Kind: kind})
		key := dev.deviceID + "/" + kind
		if _, seen := p.violationLogged[key]; !seen {
			p.violationLogged[key] = struct{}{}
			p.cfg.Logger.Warn("ingest: telemetry breaks the device's manifest (logged once per device and problem)",
				"device_id", dev.deviceID, "hardware_id", hw, "attribute", v.Attribute, "problem", string(v.Problem), "detail", v.Message)
		}
	}
}

func (p *Pipeline) malformed(deviceID, hw, kind string, err error, cur *batch) {
	p.stat.malformed.Add(1)
	cur.malformed = append(cur.malformed, store.MalformedMessage{DeviceID: deviceID, Kind: kind})
	cur.n++
	now := p.cfg.Now()
	if last, ok := p.malformedLogged[deviceID]; ok && now.Sub(last) < MalformedLogInterval {
		return
	}
	p.malformedLogged[deviceID] = now
	p.cfg.Logger.Warn("ingest: malformed message (logged once a minute per device)",
		"device_id", deviceID, "hardware_id", hw, "kind", kind, "err", err)
}

func msgTime(ts int64, at time.Time) time.Time {
	if ts == 0 {
		return at
	}
	return time.Unix(ts, 0)
}

// rawValues re-encodes decoded attribute values as JSON for the store.
func rawValues(values map[string]any) (map[string]json.RawMessage, error) {
	out := make(map[string]json.RawMessage, len(values))
	for k, v := range values {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", shorten(k), err)
		}
		out[k] = b
	}
	return out, nil
}

func (p *Pipeline) telemetry(dev cacheEntry, hw string, m message, cur *batch) error {
	t, err := mqttapi.DecodeTelemetry(m.payload)
	if err != nil {
		return err
	}
	deviceID := dev.deviceID
	values, err := rawValues(t.Values)
	if err != nil {
		return err
	}
	if dev.manifest != nil {
		p.checkManifest(dev, hw, t, cur)
	}
	s := store.Sample{DeviceID: deviceID, Time: msgTime(t.Timestamp, m.at), Values: values}
	if t.Alerts.Known() {
		s.Alerts = append([]string{}, t.Alerts.Names()...)
	}
	p.stat.telemetry.Add(1)
	cur.samples = append(cur.samples, s)
	cur.n++
	p.publish(Event{Kind: mqttapi.KindTelemetry, DeviceID: deviceID, Time: s.Time,
		Values: s.Values, Alerts: s.Alerts, Payload: m.payload})
	return nil
}

func (p *Pipeline) properties(deviceID string, m message, cur *batch) error {
	pr, err := mqttapi.DecodeProperties(m.payload)
	if err != nil {
		return err
	}
	values, err := rawValues(pr.Values)
	if err != nil {
		return err
	}
	t := msgTime(pr.Timestamp, m.at)
	if old, ok := cur.props[deviceID]; !ok || !t.Before(old.Time) {
		cur.props[deviceID] = store.Properties{Time: t, Values: values}
	}
	p.stat.properties.Add(1)
	cur.n++
	p.publish(Event{Kind: mqttapi.KindProperties, DeviceID: deviceID, Time: t, Values: values, Payload: m.payload})
	return nil
}

func (p *Pipeline) log(deviceID string, m message, cur *batch) error {
	l, err := mqttapi.DecodeLog(m.payload)
	if err != nil {
		return err
	}
	e := store.LogEntry{DeviceID: deviceID, Time: msgTime(l.Timestamp, m.at),
		Severity: string(l.Severity), Message: l.Message, Persist: l.Persist}
	p.stat.logs.Add(1)
	cur.logs = append(cur.logs, e)
	cur.n++
	p.publish(Event{Kind: mqttapi.KindLogs, DeviceID: deviceID, Time: e.Time, Log: e, Payload: m.payload})
	return nil
}

// shorten cuts a device-chosen string for a log line.
func shorten(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
