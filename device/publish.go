package device

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/edk-go/edk/mqttapi"
)

// SendTelemetry publishes one telemetry message. A zero Timestamp means now.
// Without a buffer it returns ErrNotConnected (wrapped) while offline and
// the message is not kept; with WithBuffer it returns once the message is
// kept, to be sent when the broker is reachable.
func (d *Device) SendTelemetry(ctx context.Context, t mqttapi.Telemetry) error {
	if err := d.checkTelemetry(t); err != nil {
		return err
	}
	b, err := t.AppendJSON(nil)
	if err != nil {
		return err
	}
	return d.publish(ctx, d.cfg.ChannelID, mqttapi.KindTelemetry, d.opts.dataQoS, b)
}

// SendProperties publishes the device's properties, on v1/properties or,
// with WithRegisterTopic, on v1/register.
func (d *Device) SendProperties(ctx context.Context, p mqttapi.Properties) error {
	if err := d.checkProperties(p); err != nil {
		return err
	}
	b, err := p.AppendJSON(nil)
	if err != nil {
		return err
	}
	return d.publish(ctx, d.cfg.ChannelID, d.opts.propertiesKind, d.opts.dataQoS, b)
}

// SendLog publishes a message to the device's log (v3/logs).
func (d *Device) SendLog(ctx context.Context, l mqttapi.Log) error {
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	return d.publish(ctx, d.cfg.ChannelID, mqttapi.KindLogs, d.opts.dataQoS, b)
}

// respond publishes a command response at QoS 1 on the channel the request
// came in on. It does not wait for the broker's acknowledgement, which
// would cost two scheduler round trips per command: paho sends one
// connection's messages in order. Without a buffer, a response still in
// flight when the connection drops is lost with it (the connection loss
// itself is logged); with one, the response is kept until acknowledged.
func (d *Device) respond(channel string, r mqttapi.CommandResponse) error {
	b, err := r.MarshalJSON()
	if err != nil {
		// Only a handler's own payload can be malformed here; say so instead.
		b, _ = mqttapi.ErrorResponse(r.ID, fmt.Sprintf("device could not encode its response: %v", err)).MarshalJSON()
	}
	topic := d.responseTopic
	if channel != d.cfg.ChannelID {
		topic = d.topic(mqttapi.FromDevice, channel, mqttapi.KindCommandResponses)
	}
	if d.outbox != nil {
		if err := d.enqueue(context.Background(), topic, b, true); err != nil {
			return fmt.Errorf("send response to %s: %w", r.ID, err)
		}
		return nil
	}
	client, err := d.currentClient()
	if err != nil {
		d.stats.dropped.Add(1)
		return fmt.Errorf("send response to %s: %w", r.ID, err)
	}
	tok := client.Publish(topic, 1, false, b)
	select {
	case <-tok.Done(): // failed at once, typically: not connected
		if err := tok.Error(); err != nil {
			d.stats.publishFailures.Add(1)
			d.stats.dropped.Add(1)
			return fmt.Errorf("send response to %s: %w", r.ID, err)
		}
		d.stats.published.Add(1)
	default:
		// Counted as published without a latency: waiting for the
		// acknowledgement here would slow every command down.
		d.stats.published.Add(1)
		d.responses.add(tok)
	}
	return nil
}

func (d *Device) publish(ctx context.Context, channel string, kind mqttapi.Kind, qos byte, payload []byte) error {
	topic := d.topic(mqttapi.FromDevice, channel, kind)
	if d.outbox != nil {
		if d.State() == StateStopped {
			return fmt.Errorf("publish %s: %w", kind, ErrStopped)
		}
		if err := d.enqueue(ctx, topic, payload, false); err != nil {
			return fmt.Errorf("publish %s: %w", kind, err)
		}
		return nil
	}
	client, err := d.currentClient()
	if err != nil {
		d.stats.dropped.Add(1)
		return fmt.Errorf("publish %s: %w", kind, err)
	}
	ctx, cancel := context.WithTimeout(ctx, d.opts.publishTimeout)
	defer cancel()
	start := time.Now()
	tok := client.Publish(topic, qos, false, payload)
	if err := waitToken(ctx, tok); err != nil {
		d.stats.publishFailures.Add(1)
		d.stats.dropped.Add(1)
		return fmt.Errorf("publish %s: %w", kind, err)
	}
	d.stats.observePublish(time.Since(start))
	return nil
}
