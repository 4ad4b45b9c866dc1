// TEMPORARY: profiling copy of examples/inverter. Deleted after use.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/bench/proftmp/device"
	"github.com/edk-go/edk/bench/proftmp/inverter"
)

func main() {
	out := os.Getenv("PROF_OUT")
	var f *os.File
	if out != "" {
		f, _ = os.Create(out + ".cpu")
		pprof.StartCPUProfile(f)
	}
	level, _ := commconfig.LogLevel(os.Getenv)
	if os.Getenv("PROF_NOLOG") != "" {
		level = slog.LevelWarn
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	inv := inverter.New("SIM-0001")
	d, err := device.FromEnv(append(inv.Options(), device.WithLogger(logger))...)
	if err != nil {
		panic(err)
	}
	inv.Register(d)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d.Run(ctx)
	if out != "" {
		pprof.StopCPUProfile()
		f.Close()
	}
}
