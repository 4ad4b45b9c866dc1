// Package inverter is a simulated solar inverter: the device logic behind
// examples/inverter, `edk run` and `edk demo`. It owns the simulated
// state (power setpoint, voltage) and its commands. It is a driver.Driver,
// plugged into a device like any hardware driver (device.WithDriver); the
// device package carries it over MQTT.
package inverter

import (
	"context"
	_ "embed"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/edk-go/edk/blueprint"
	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/driver"
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

// Inverter is a simulated inverter, a driver.Driver (with progress for
// ramp_power and its timeout). Its methods are safe for concurrent use.
type Inverter struct {
	Vendor, Model, SerialNumber string

	mu    sync.Mutex
	power float64 // current setpoint, W
	start time.Time
}

var (
	_ driver.Driver           = (*Inverter)(nil)
	_ driver.ProgressExecutor = (*Inverter)(nil)
	_ driver.CommandTimeouts  = (*Inverter)(nil)
)

// RampTimeout is how long a ramp_power may run: up to 10 steps of
// MaxStepSeconds, and some.
const RampTimeout = 15 * time.Minute

// New returns an inverter at 0 W with the given serial number.
func New(serial string) *Inverter {
	return &Inverter{Vendor: "edk", Model: "SimInverter 10K", SerialNumber: serial, start: time.Now()}
}

// Options returns the device option that plugs the inverter in:
// device.WithDriver with telemetry every second (properties on connect,
// then every 30 s, and its commands).
func (inv *Inverter) Options() []device.Option {
	return []device.Option{device.WithDriver(inv, device.DefaultTelemetryInterval)}
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
func (inv *Inverter) Telemetry(context.Context) (driver.Reading, error) {
	p := inv.Power()
	status := "producing"
	if p == 0 {
		status = "standby"
	}
	t := time.Since(inv.start).Seconds()
	voltage := NominalVoltage + 2*math.Sin(t/20) + 0.5*math.Sin(t/3)
	alerts := []string{}
	if voltage > GridOvervoltage {
		alerts = []string{"grid_overvoltage"}
	}
	return driver.Reading{
		Alerts: alerts,
		Values: map[string]any{
			"power":   p,
			"status":  status,
			"voltage": math.Round(voltage*10) / 10,
		},
	}, nil
}

// Commands lists the inverter's commands.
func (inv *Inverter) Commands() []string { return []string{"ramp_power", "set_power"} }

// CommandTimeout gives ramp_power RampTimeout; set_power keeps the
// device's.
func (inv *Inverter) CommandTimeout(name string) time.Duration {
	if name == "ramp_power" {
		return RampTimeout
	}
	return 0
}

// Execute runs a command without reporting progress.
func (inv *Inverter) Execute(ctx context.Context, name string, args map[string]any) (map[string]any, error) {
	return inv.ExecuteProgress(ctx, name, args, nil)
}

// ExecuteProgress runs set_power or ramp_power; ramp_power reports each
// step through progress (when not nil).
func (inv *Inverter) ExecuteProgress(ctx context.Context, name string, args map[string]any, progress driver.ProgressFunc) (map[string]any, error) {
	switch name {
	case "set_power":
		return inv.setPowerCmd(args)
	case "ramp_power":
		return inv.rampPower(ctx, args, progress)
	}
	return nil, fmt.Errorf("%w %q; this device handles: %s", driver.ErrUnknownCommand, name, strings.Join(inv.Commands(), ", "))
}

// Close does nothing: the simulator holds no connection.
func (inv *Inverter) Close() error { return nil }

// setPowerCmd handles set_power {"power": W}.
func (inv *Inverter) setPowerCmd(args map[string]any) (map[string]any, error) {
	p, err := powerArg(args)
	if err != nil {
		return nil, err
	}
	inv.setPower(p)
	return map[string]any{"new_power": p}, nil
}

// rampPower handles ramp_power {"power": W, "step_seconds": s,
// "step_watts": W (optional, default 1000)}: it moves the setpoint towards
// power in steps, reporting each step as progress.
func (inv *Inverter) rampPower(ctx context.Context, args map[string]any, progress driver.ProgressFunc) (map[string]any, error) {
	target, err := powerArg(args)
	if err != nil {
		return nil, err
	}
	stepSeconds, err := driver.Number(args, "step_seconds")
	if err != nil {
		return nil, err
	}
	if stepSeconds < 0 || stepSeconds > MaxStepSeconds {
		return nil, &driver.ArgumentError{Argument: "step_seconds", Problem: fmt.Sprintf("is %g, want 0 to %g", stepSeconds, MaxStepSeconds)}
	}
	stepWatts := DefaultStepWatts
	if _, ok := args["step_watts"]; ok {
		if stepWatts, err = driver.Number(args, "step_watts"); err != nil {
			return nil, err
		}
		if stepWatts <= 0 {
			return nil, &driver.ArgumentError{Argument: "step_watts", Problem: fmt.Sprintf("is %g, want more than 0", stepWatts)}
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
		if progress == nil {
			continue
		}
		if err := progress(ctx, map[string]any{
			"message": fmt.Sprintf("step %d/%d: power %g W", i, steps, p),
			"power":   p, "step": i, "steps": steps,
		}); err != nil {
			return nil, fmt.Errorf("report ramp progress: %w", err)
		}
	}
	inv.setPower(target)
	return map[string]any{"new_power": target}, nil
}

func powerArg(args map[string]any) (float64, error) {
	p, err := driver.Number(args, "power")
	if err != nil {
		return 0, err
	}
	if p < 0 || p > MaxPower {
		return 0, &driver.ArgumentError{Argument: "power", Problem: fmt.Sprintf("is %g W, out of range: want 0 to %g W", p, MaxPower)}
	}
	return p, nil
}
