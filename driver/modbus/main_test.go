package modbus_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.uber.org/goleak"

	"github.com/edk-go/edk/driver/modbus"
	"github.com/edk-go/edk/driver/modbus/modbussim"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startSim starts a simulated device on 127.0.0.1 and closes it at the end
// of the test.
func startSim(tb testing.TB, profile string) *modbussim.Server {
	tb.Helper()
	s, err := modbussim.Listen(modbussim.Config{Listen: "127.0.0.1:0", Profile: profile})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// newDriver loads a map (ADDR replaced by the simulator's URL) and makes a
// driver with a 1 ms backoff.
func newDriver(tb testing.TB, s *modbussim.Server, yml string, opts modbus.Options) *modbus.Driver {
	tb.Helper()
	m, err := modbus.Parse("test.yaml", []byte(strings.ReplaceAll(yml, "ADDR", s.URL())))
	if err != nil {
		tb.Fatal(err)
	}
	if opts.Backoff == nil {
		opts.Backoff = backoff.NewConstantBackOff(time.Millisecond)
	}
	d, err := modbus.New(m, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	return d
}

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

func ctxWithCancel(tb testing.TB) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	return ctx, cancel
}
