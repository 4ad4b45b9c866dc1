package device_test

import (
	"context"
	"os"
	"os/signal"
	"time"

	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/mqttapi"
)

// A whole device: its connection comes from
// ENAPTER_STANDALONE_COMMUNICATION_CONFIG, as with Enapter's Python SDK.
func Example() {
	d, err := device.FromEnv(
		device.WithProperties(30*time.Second, func(context.Context) (map[string]any, error) {
			return map[string]any{"vendor": "ACME", "fw_ver": "1.2.0"}, nil
		}),
		device.WithTelemetry(time.Second, func(context.Context) (mqttapi.Telemetry, error) {
			return mqttapi.Telemetry{Alerts: mqttapi.NoAlerts(), Values: map[string]any{"power": 4700}}, nil
		}),
	)
	if err != nil {
		return // no config in the environment
	}
	d.Handle("set_power", func(ctx context.Context, cmd *device.Command) (any, error) {
		p, err := cmd.Number("power")
		if err != nil {
			return nil, err
		}
		return map[string]any{"new_power": p}, nil
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	_ = d.Run(ctx)
}

// A long command reports progress with "log" responses before its final one.
func ExampleCommand_Progress() {
	var d *device.Device // from device.New or device.FromEnv
	if d == nil {
		return
	}
	d.Handle("calibrate", func(ctx context.Context, cmd *device.Command) (any, error) {
		for step := 1; step <= 3; step++ {
			if err := cmd.Logf(ctx, "calibration step %d of 3", step); err != nil {
				return nil, err
			}
		}
		return map[string]any{"calibrated": true}, nil
	}, device.Timeout(5*time.Minute))
}
