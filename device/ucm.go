package device

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/mqttapi"
)

// ucmChannel is the channel a v1 ("virtual UCM") device must also serve:
// Enapter's v1 platform expects a UCM behind every hardware id.
const ucmChannel = "ucm"

func (d *Device) servesUCM() bool {
	return d.cfg.Version == commconfig.Version1 && d.cfg.ChannelID != ucmChannel
}

// serveUCM publishes what a virtual UCM reports: its properties every
// properties interval and empty telemetry every telemetry interval.
func (d *Device) serveUCM(ctx context.Context) {
	props := mqttapi.Properties{Values: map[string]any{"virtual": true, "lua_api_ver": 1}}
	propsTicker := time.NewTicker(d.opts.propertiesEvery)
	defer propsTicker.Stop()
	telemetryTicker := time.NewTicker(d.opts.telemetryEvery)
	defer telemetryTicker.Stop()
	send := func(kind mqttapi.Kind, enc func() ([]byte, error)) {
		b, err := enc()
		if err == nil {
			err = d.publish(ctx, ucmChannel, kind, d.opts.dataQoS, b)
		}
		if err != nil && ctx.Err() == nil {
			d.log.Debug("ucm channel publish failed", "kind", kind, logKeyErr, err)
		}
	}
	sendProps := func() { send(d.opts.propertiesKind, func() ([]byte, error) { return props.AppendJSON(nil) }) }
	sendTelemetry := func() {
		send(mqttapi.KindTelemetry, func() ([]byte, error) { return mqttapi.Telemetry{}.AppendJSON(nil) })
	}
	sendProps()
	sendTelemetry()
	for {
		select {
		case <-ctx.Done():
			return
		case <-propsTicker.C:
			sendProps()
		case <-telemetryTicker.C:
			sendTelemetry()
		}
	}
}

// onUCMRequest answers every command sent to the virtual UCM with an error:
// it cannot reboot or run Lua, and saying so beats a timeout.
func (d *Device) onUCMRequest(payload []byte) {
	req, err := mqttapi.DecodeCommandRequest(payload)
	id, msg := req.ID, fmt.Sprintf("command %q is not supported by this virtual UCM (edk device runtime)", req.Name)
	var derr *mqttapi.DecodeError
	if errors.As(err, &derr) {
		id, msg = derr.ID, err.Error()
	}
	if id == "" {
		d.log.Warn("dropped a malformed ucm command request", logKeyErr, err)
		return
	}
	b, _ := json.Marshal(mqttapi.ErrorResponse(id, msg))
	if err := d.publish(context.Background(), ucmChannel, mqttapi.KindCommandResponses, 1, b); err != nil {
		d.log.Warn("could not answer ucm command", logKeyID, id, logKeyErr, err)
	}
}
