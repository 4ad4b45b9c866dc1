// Package inverter is a simulated solar inverter: the device logic behind
// examples/inverter, `edk run` and `edk demo`. It owns the simulated
// state (power setpoint, voltage) and its commands; the device package
// carries it over MQTT.
package inverter

import (
	"context"
	_ "embed"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/edk-go/edk/blueprint"
	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/mqttapi"
)

// Limits of the simulated inverter.
const (
	MaxPower         = 10000.0 // W
	DefaultStepWatts = 1000.0  // W per ramp step
	MaxStepSeconds   = 60.0
	NominalVoltage   = 230.0
)

//go:embed manifest.yml
var manifestYAML []byte

// Manifest returns the inverter's blueprint manifest (manifest.yml beside
// this file), which declares exactly what it sends and the commands it takes.
func Manifest() *blueprint.Manifest {
	return blueprint.MustParse("sim/inverter/manifest.yml", manifestYAML)
}

// ManifestYAML returns the text of manifest.yml, to assign it to the device
// on a hub (POST /v3/devices/{id}/assign_blueprint).
func ManifestYAML() []byte { return append([]byte(nil), manifestYAML...) }

// GridOvervoltage is the voltage above which the grid_overvoltage alert is
// active: 230 V + 10%.
const GridOvervoltage = 253.0

// Inverter is a simulated inverter. Its methods are safe for concurrent use.
type Inverter struct {
	Vendor, Model, SerialNumber string

	mu    sync.Mutex
	power float64 // current setpoint, W
	start time.Time
}

// New returns an inverter at 0 W with the given serial number.
func New(serial string) *Inverter {
	return &Inverter{Vendor: "edk", Model: "SimInverter 10K", SerialNumber: serial, start: time.Now()}
}

// Options returns the device options that publish the inverter's
// properties (on connect, then every 30 s) and telemetry (every second).
func (inv *Inverter) Options() []device.Option {
	return []device.Option{
		device.WithProperties(device.DefaultPropertiesInterval, inv.Properties),
		device.WithTelemetry(device.DefaultTelemetryInterval, inv.Telemetry),
	}
}

// Register adds the inverter's commands to d.
func (inv *Inverter) Register(d *device.Device) {
	d.Handle("set_power", inv.SetPower)
	d.Handle("ramp_power", inv.RampPower, device.Timeout(15*time.Minute))
}

// Power returns the current setpoint in W.
func (inv *Inverter) Power() float64 {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.power
}

func (inv *Inverter) setPower(p float64) {
	inv.mu.Lock()
	inv.power = p
	inv.mu.Unlock()
}

// Properties reports what does not change while the device runs.
func (inv *Inverter) Properties(context.Context) (map[string]any, error) {
	return map[string]any{"vendor": inv.Vendor, "model": inv.Model, "serial_number": inv.SerialNumber}, nil
}

// Telemetry reports the setpoint as power, a status derived from it, and a
// grid voltage that wanders slowly around 230 V.
func (inv *Inverter) Telemetry(context.Context) (mqttapi.Telemetry, error) {
	p := inv.Power()
	status := "producing"
	if p == 0 {
		status = "standby"
	}
	t := time.Since(inv.start).Seconds()
	voltage := NominalVoltage + 2*math.Sin(t/20) + 0.5*math.Sin(t/3)
	alerts := mqttapi.NoAlerts()
	if voltage > GridOvervoltage {
		alerts = mqttapi.ActiveAlerts("grid_overvoltage")
	}
	return mqttapi.Telemetry{
		Alerts: alerts,
		Values: map[string]any{
			"power":   p,
			"status":  status,
			"voltage": math.Round(voltage*10) / 10,
		},
	}, nil
}

// SetPower handles set_power {"power": W}.
func (inv *Inverter) SetPower(_ context.Context, cmd *device.Command) (any, error) {
	p, err := powerArg(cmd)
	if err != nil {
		return nil, err
	}
	inv.setPower(p)
	return map[string]any{"new_power": p}, nil
}

// RampPower handles ramp_power {"power": W, "step_seconds": s,
// "step_watts": W (optional, default 1000)}: it moves the setpoint towards
// power in steps, reporting each step as progress.
func (inv *Inverter) RampPower(ctx context.Context, cmd *device.Command) (any, error) {
	target, err := powerArg(cmd)
	if err != nil {
		return nil, err
	}
	stepSeconds, err := cmd.Number("step_seconds")
	if err != nil {
		return nil, err
	}
	if stepSeconds < 0 || stepSeconds > MaxStepSeconds {
		return nil, &device.ArgumentError{Argument: "step_seconds", Problem: fmt.Sprintf("is %g, want 0 to %g", stepSeconds, MaxStepSeconds)}
	}
	stepWatts := DefaultStepWatts
	if _, ok := cmd.Args()["step_watts"]; ok {
		if stepWatts, err = cmd.Number("step_watts"); err != nil {
			return nil, err
		}
		if stepWatts <= 0 {
			return nil, &device.ArgumentError{Argument: "step_watts", Problem: fmt.Sprintf("is %g, want more than 0", stepWatts)}
		}
	}
	from := inv.Power()
	steps := int(math.Ceil(math.Abs(target-from) / stepWatts))
	delay := time.Duration(stepSeconds * float64(time.Second))
	for i := 1; i <= steps; i++ {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("ramp stopped at %g W: %w", inv.Power(), ctx.Err())
		case <-time.After(delay):
		}
		p := from + (target-from)*float64(i)/float64(steps)
		inv.setPower(p)
		if err := cmd.Progress(ctx, map[string]any{
			"message": fmt.Sprintf("step %d/%d: power %g W", i, steps, p),
			"power":   p, "step": i, "steps": steps,
		}); err != nil {
			return nil, fmt.Errorf("report ramp progress: %w", err)
		}
	}
	inv.setPower(target)
	return map[string]any{"new_power": target}, nil
}

func powerArg(cmd *device.Command) (float64, error) {
	p, err := cmd.Number("power")
	if err != nil {
		return 0, err
	}
	if p < 0 || p > MaxPower {
		return 0, &device.ArgumentError{Argument: "power", Problem: fmt.Sprintf("is %g W, out of range: want 0 to %g W", p, MaxPower)}
	}
	return p, nil
}
