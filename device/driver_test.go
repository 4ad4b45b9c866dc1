package device_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/driver"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

// progressDriver has a command that reports progress ("count") and one
// that outlives its own short timeout ("hang").
type progressDriver struct{}

func (progressDriver) Telemetry(context.Context) (driver.Reading, error) {
	return driver.Reading{Values: map[string]any{"n": 1.0}, Alerts: []string{}}, nil
}
func (progressDriver) Properties(context.Context) (map[string]any, error) { return nil, nil }
func (progressDriver) Commands() []string                                 { return []string{"count", "hang"} }
func (progressDriver) Close() error                                       { return nil }

func (d progressDriver) Execute(ctx context.Context, name string, args map[string]any) (map[string]any, error) {
	return d.ExecuteProgress(ctx, name, args, nil)
}

func (progressDriver) ExecuteProgress(ctx context.Context, name string, args map[string]any, progress driver.ProgressFunc) (map[string]any, error) {
	switch name {
	case "count":
		n, err := driver.Number(args, "to")
		if err != nil {
			return nil, err
		}
		for i := 1; i <= int(n); i++ {
			if err := progress(ctx, map[string]any{"at": i}); err != nil {
				return nil, err
			}
		}
		return map[string]any{"counted": n}, nil
	case "hang":
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return nil, driver.ErrUnknownCommand
}

func (progressDriver) CommandTimeout(name string) time.Duration {
	if name == "hang" {
		return 20 * time.Millisecond
	}
	return 0
}

// WithDriver runs a driver's commands with the progress and timeouts its
// optional interfaces give, and its argument errors name the argument.
func TestDriverProgressAndTimeouts(t *testing.T) {
	b := testutil.StartBroker(t)
	startDevice(t, testConfig(t, b.Addr()), nil, device.WithDriver(progressDriver{}, time.Hour),
		device.WithCommandTimeout(time.Hour))
	c := newCloud(t, b.Addr(), testHW, testCH)

	c.send("r1", "count", map[string]any{"to": 3})
	final, logs := c.final()
	if final.State != mqttapi.StateCompleted || payloadOf(t, final)["counted"] != 3.0 {
		t.Fatalf("count: %+v %s", final, final.Payload)
	}
	if len(logs) != 3 || payloadOf(t, logs[2])["at"] != 3.0 {
		t.Fatalf("count progress: %+v, want 3 log responses", logs)
	}

	c.send("r2", "hang", nil)
	if final, _ := c.final(); final.State != mqttapi.StateError {
		t.Fatalf("hang past the driver's 20 ms timeout: %+v, want error", final)
	}

	c.send("r3", "count", map[string]any{"to": "many"})
	final, _ = c.final()
	if msg, _ := payloadOf(t, final)["message"].(string); final.State != mqttapi.StateError || !strings.Contains(msg, `argument "to": is the string "many", want a number`) {
		t.Fatalf("bad argument: %+v %s", final, final.Payload)
	}
}
