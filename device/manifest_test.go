package device_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/edk-go/edk/blueprint"
	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

const testManifest = `
blueprint_spec: device/3.0
display_name: Test
runtime:
  type: embedded
properties:
  vendor: {display_name: Vendor, type: string}
telemetry:
  power: {display_name: Power, type: float, unit: W}
  mode:
    display_name: Mode
    type: string
    enum: [eco, boost]
alerts:
  overheat: {severity: error, display_name: Overheat}
command_groups:
  power: {display_name: Power}
commands:
  set_power:
    display_name: Set Power
    group: power
    arguments:
      power: {display_name: Power, type: float, required: true, min: 0, max: 100}
      mode: {display_name: Mode, type: string, enum: [eco, boost], default: eco}
      count: {display_name: Count, type: integer}
`

func TestManifestChecksCommandsBeforeHandlers(t *testing.T) {
	m := blueprint.MustParse("test.yml", []byte(testManifest))
	b := testutil.StartBroker(t)
	var calls atomic.Int32
	type args struct {
		Power float64 `json:"power"`
		Mode  string  `json:"mode"`
	}
	startDevice(t, testConfig(t, b.Addr()), func(d *device.Device) {
		device.HandleArgs(d, "set_power", func(_ context.Context, _ *device.Command, a args) (any, error) {
			calls.Add(1)
			return a, nil
		})
		d.Handle("not_in_manifest", func(context.Context, *device.Command) (any, error) {
			calls.Add(1)
			return nil, nil
		})
	}, device.WithManifest(m))
	c := newCloud(t, b.Addr(), testHW, testCH)

	for i, tt := range []struct {
		name    string
		command string
		args    map[string]any
		want    string
	}{
		{"string for a float", "set_power", map[string]any{"power": "abc"}, `argument "power" of set_power must be a float`},
		{"missing required", "set_power", map[string]any{}, `argument "power" of set_power is required`},
		{"above max", "set_power", map[string]any{"power": 101}, "(max)"},
		{"outside enum", "set_power", map[string]any{"power": 1, "mode": "turbo"}, `"mode"`},
		{"fraction for an integer", "set_power", map[string]any{"power": 1, "count": 1.5}, `"count"`},
		{"command the manifest lacks", "not_in_manifest", nil, "does not declare it"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := "bad-" + string(rune('a'+i))
			c.send(id, tt.command, tt.args)
			r, _ := c.final()
			if r.ID != id || r.State != mqttapi.StateError || !strings.Contains(r.Message(), tt.want) {
				t.Fatalf("response %s, want an error containing %q", r.Payload, tt.want)
			}
		})
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("handlers ran %d times for rejected requests", n)
	}
	c.send("good", "set_power", map[string]any{"power": 42})
	r, _ := c.final()
	if r.State != mqttapi.StateCompleted || payloadOf(t, r)["mode"] != "eco" || payloadOf(t, r)["power"] != 42.0 {
		t.Fatalf("response %s, want completed with the default mode filled in", r.Payload)
	}
}

func TestManifestChecksOutgoingMessages(t *testing.T) {
	m := blueprint.MustParse("test.yml", []byte(testManifest))
	b := testutil.StartBroker(t)
	watcher := testutil.Connect(t, b.Addr())
	telemetry := testutil.Subscribe(t, watcher, fromTopic(testHW, testCH, mqttapi.KindTelemetry))
	ctx := context.Background()

	t.Run("warn once per attribute and problem", func(t *testing.T) {
		logs := &testutil.SyncBuffer{}
		d := startDevice(t, testConfig(t, b.Addr()), nil, device.WithManifest(m), device.WithLogger(logs.Logger()))
		bad := mqttapi.Telemetry{Alerts: mqttapi.ActiveAlerts("meltdown"), Values: map[string]any{"power": 1.0, "pwer": 2.0, "mode": "turbo"}}
		for range 3 {
			if err := d.SendTelemetry(ctx, bad); err != nil {
				t.Fatalf("SendTelemetry = %v, want sent with a warning", err)
			}
			testutil.Receive(t, telemetry)
		}
		out := logs.String()
		for _, attr := range []string{"attribute=pwer", "attribute=mode", "attribute=meltdown"} {
			if n := strings.Count(out, attr); n != 1 {
				t.Errorf("%s reported %d times, want once:\n%s", attr, n, out)
			}
		}
		if got := d.Stats().ManifestViolations; got != 9 {
			t.Errorf("ManifestViolations = %d, want 9 (3 problems × 3 messages)", got)
		}
		if err := d.SendProperties(ctx, mqttapi.Properties{Values: map[string]any{"vendor": "x"}}); err != nil {
			t.Errorf("valid properties: %v", err)
		}
	})
	t.Run("strict mode refuses", func(t *testing.T) {
		d := startDevice(t, testConfig(t, b.Addr()), nil, device.WithManifest(m), device.WithStrictManifest())
		err := d.SendTelemetry(ctx, mqttapi.Telemetry{Values: map[string]any{"power": "high"}})
		if !errors.Is(err, device.ErrManifestViolation) || !strings.Contains(err.Error(), "power") {
			t.Fatalf("SendTelemetry = %v, want ErrManifestViolation naming power", err)
		}
		err = d.SendProperties(ctx, mqttapi.Properties{Values: map[string]any{"colour": "red"}})
		if !errors.Is(err, device.ErrManifestViolation) {
			t.Fatalf("SendProperties = %v, want ErrManifestViolation", err)
		}
		if err := d.SendTelemetry(ctx, mqttapi.Telemetry{Values: map[string]any{"power": 3.0}}); err != nil {
			t.Fatalf("valid telemetry refused: %v", err)
		}
	})
}
