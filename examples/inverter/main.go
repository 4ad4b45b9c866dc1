// Command inverter is a simulated solar inverter connected to Enapter (or
// an edk hub) with the edk device runtime. It reads its connection from
// ENAPTER_STANDALONE_COMMUNICATION_CONFIG, like Enapter's Python SDK.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/sim/inverter"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "inverter:", err)
		os.Exit(1)
	}
}

func run() error {
	level, err := commconfig.LogLevel(os.Getenv)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	// The simulator is a driver.Driver: WithDriver publishes its telemetry
	// every second and its properties, and runs its commands. The manifest
	// makes the runtime refuse bad command arguments before the driver sees
	// them and warn about telemetry the manifest does not declare.
	inv := inverter.New("SIM-0001")
	d, err := device.FromEnv(device.WithDriver(inv, device.DefaultTelemetryInterval), device.WithLogger(logger), device.WithManifest(inverter.Manifest()))
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return d.Run(ctx)
}
