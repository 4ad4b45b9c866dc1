package inverter

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/edk-go/edk/driver"
)

// The simulator must send only what its manifest declares.
func TestTelemetryAndPropertiesMatchTheManifest(t *testing.T) {
	m := Manifest()
	inv := New("SIM-T")
	for _, p := range []float64{0, 4700} {
		inv.setPower(p)
		tm, err := inv.Telemetry(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if vs := m.CheckTelemetry(tm.Values, tm.Alerts); len(vs) > 0 {
			t.Errorf("telemetry at %g W breaks the manifest: %v", p, vs)
		}
	}
	props, _ := inv.Properties(context.Background())
	if vs := m.CheckProperties(props); len(vs) > 0 {
		t.Errorf("properties break the manifest: %v", vs)
	}
	for _, c := range []string{"set_power", "ramp_power"} {
		if m.Command(c) == nil {
			t.Errorf("manifest lacks command %s", c)
		}
	}
}

// The inverter is a driver: its commands run through Execute, ramp_power
// reports its steps through progress and has its own timeout, and bad
// arguments are driver.ArgumentErrors.
func TestCommandsAsADriver(t *testing.T) {
	ctx := context.Background()
	inv := New("SIM-T")
	if got, err := inv.Execute(ctx, "set_power", map[string]any{"power": 4700.0}); err != nil || got["new_power"] != 4700.0 || inv.Power() != 4700 {
		t.Fatalf("set_power = %v, %v (power %g)", got, err, inv.Power())
	}
	var steps []map[string]any
	got, err := inv.ExecuteProgress(ctx, "ramp_power", map[string]any{"power": 2000.0, "step_seconds": 0.0}, func(_ context.Context, p map[string]any) error {
		steps = append(steps, p)
		return nil
	})
	if err != nil || got["new_power"] != 2000.0 || inv.Power() != 2000 {
		t.Fatalf("ramp_power = %v, %v (power %g)", got, err, inv.Power())
	}
	if len(steps) != 3 || steps[2]["power"] != 2000.0 {
		t.Fatalf("ramp progress %v, want 3 steps ending at 2000 W", steps)
	}
	if inv.CommandTimeout("ramp_power") != RampTimeout || inv.CommandTimeout("set_power") != 0 {
		t.Fatal("ramp_power should have RampTimeout and set_power the device's")
	}
	for _, args := range []map[string]any{{"power": -1.0}, {"power": "abc"}, {}} {
		_, err := inv.Execute(ctx, "set_power", args)
		var ae *driver.ArgumentError
		if !errors.As(err, &ae) || ae.Argument != "power" || !errors.Is(err, driver.ErrBadArgument) {
			t.Errorf("set_power %v: %v, want a driver.ArgumentError about power", args, err)
		}
	}
	if _, err := inv.Execute(ctx, "self_destruct", nil); !errors.Is(err, driver.ErrUnknownCommand) {
		t.Errorf("unknown command: %v", err)
	}
	if !slices.IsSorted(inv.Commands()) {
		t.Errorf("Commands() %v not sorted", inv.Commands())
	}
}
