package device

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/edk-go/edk/mqttapi"
)

// SendTelemetry publishes one telemetry message. A zero Timestamp means now.
// It returns ErrNotConnected (wrapped) while offline: the message is not kept.
func (d *Device) SendTelemetry(ctx context.Context, t mqttapi.Telemetry) error {
	b, err := t.AppendJSON(nil)
	if err != nil {
		return err
	}
	return d.publish(ctx, d.cfg.ChannelID, mqttapi.KindTelemetry, d.opts.dataQoS, b)
}

// SendProperties publishes the device's properties, on v1/properties or,
// with WithRegisterTopic, on v1/register.
func (d *Device) SendProperties(ctx context.Context, p mqttapi.Properties) error {
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
// came in on.
func (d *Device) respond(ctx context.Context, channel string, r mqttapi.CommandResponse) error {
	b, err := r.MarshalJSON() // EXPERIMENT: json.Marshal would re-scan and compact what MarshalJSON wrote
	if err != nil {
		// Only a handler's own payload can be malformed here; say so instead.
		b, _ = json.Marshal(mqttapi.ErrorResponse(r.ID, fmt.Sprintf("device could not encode its response: %v", err)))
	}
	return d.publish(ctx, channel, mqttapi.KindCommandResponses, 1, b)
}

func (d *Device) publish(ctx context.Context, channel string, kind mqttapi.Kind, qos byte, payload []byte) error {
	client, err := d.currentClient()
	if err != nil {
		return fmt.Errorf("publish %s: %w", kind, err)
	}
	tok := client.Publish(d.topic(mqttapi.FromDevice, channel, kind), qos, false, payload)
	if kind == mqttapi.KindCommandResponses {
		return nil // EXPERIMENT R3: do not wait for the PUBACK of a response
	}
	if ctx.Done() == nil { // EXPERIMENT: no context (and timer) for a background publish
		if !tok.WaitTimeout(d.opts.publishTimeout) {
			return fmt.Errorf("publish %s: %w", kind, context.DeadlineExceeded)
		}
		if err := tok.Error(); err != nil {
			return fmt.Errorf("publish %s: %w", kind, err)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, d.opts.publishTimeout)
	defer cancel()
	if err := waitToken(ctx, tok); err != nil {
		return fmt.Errorf("publish %s: %w", kind, err)
	}
	return nil
}
