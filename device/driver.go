package device

import (
	"context"
	"time"

	"github.com/edk-go/edk/driver"
	"github.com/edk-go/edk/mqttapi"
)

// WithDriver makes the device publish what a hardware driver reads and run
// its commands: telemetry every interval (a failed read still sends what
// could be read, with the driver's communication_error alert, and the error
// is logged, by the driver itself when it is a driver.FailureLogger that
// logs), properties on connect and every DefaultPropertiesInterval,
// and one handler per command the driver lists. The device does not close
// the driver.
func WithDriver(drv driver.Driver, interval time.Duration) Option {
	return func(o *options) {
		o.driver = drv
		if fl, ok := drv.(driver.FailureLogger); ok && fl.LogsFailures() {
			o.driverLogs = true
		}
		o.telemetryEvery = interval
		o.telemetryFn = func(ctx context.Context) (mqttapi.Telemetry, error) {
			r, err := drv.Telemetry(ctx)
			return mqttapi.Telemetry{Alerts: mqttapi.ActiveAlerts(r.Alerts...), Values: r.Values}, err
		}
		if o.propertiesFn == nil {
			o.propertiesFn = drv.Properties
		}
	}
}

// handleDriverCommands registers a handler for each of the driver's
// commands; New calls it, so handlers given later with Handle win. A
// driver.ProgressExecutor reports progress through Command.Progress, and a
// driver.CommandTimeouts sets the timeouts of its commands.
func (d *Device) handleDriverCommands(drv driver.Driver) {
	pe, progress := drv.(driver.ProgressExecutor)
	timeouts, _ := drv.(driver.CommandTimeouts)
	for _, name := range drv.Commands() {
		var opts []HandleOption
		if timeouts != nil {
			if t := timeouts.CommandTimeout(name); t > 0 {
				opts = append(opts, Timeout(t))
			}
		}
		if progress {
			d.Handle(name, func(ctx context.Context, cmd *Command) (any, error) {
				return pe.ExecuteProgress(ctx, cmd.Name, cmd.Args(), func(ctx context.Context, payload map[string]any) error {
					return cmd.Progress(ctx, payload)
				})
			}, opts...)
			continue
		}
		d.Handle(name, func(ctx context.Context, cmd *Command) (any, error) {
			return drv.Execute(ctx, cmd.Name, cmd.Args())
		}, opts...)
	}
}
