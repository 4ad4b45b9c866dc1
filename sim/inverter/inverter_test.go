package inverter

import (
	"context"
	"testing"
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
		if vs := m.CheckTelemetry(tm.Values, tm.Alerts.Names()); len(vs) > 0 {
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
