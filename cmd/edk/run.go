package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/edk-go/edk/blueprint"
	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/sim/inverter"
)

func runRun(ctx context.Context, e *env, args []string) error {
	fs := newFlags("run", "[--config-file F | --config-blob B] [flags]", e.stderr)
	var cf configFlags
	cf.register(fs)
	var lf logFlags
	lf.register(fs, e.getenv("ENAPTER_LOG_LEVEL"))
	serial := fs.String("serial", "SIM-0001", "serial number the simulated inverter reports")
	register := fs.Bool("register-topic", false, "publish properties on v1/register (as Enapter's Python SDK does) instead of v1/properties")
	strict := fs.Bool("strict-tls", false, "also check that the broker's certificate names its host (off by default, as in Enapter's SDK)")
	publishLogs := fs.String("publish-logs", "", "also publish the device's own log lines at this level and above to v3/logs (e.g. warning)")
	manifestPath := fs.String("manifest", "", "blueprint manifest to hold the device to (file or folder; default: the simulated inverter's own)")
	strictManifest := fs.Bool("strict-manifest", false, "refuse to send telemetry or properties that break the manifest (default: warn once per attribute)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	logger, err := lf.logger(e)
	if err != nil {
		return err
	}
	cfg, err := cf.load(e)
	if err != nil {
		return err
	}
	manifest := inverter.Manifest()
	if *manifestPath != "" {
		if manifest, err = blueprint.Load(*manifestPath); err != nil {
			return fmt.Errorf("--manifest: %w (edk blueprint check %s lists every problem)", err, *manifestPath)
		}
	}
	inv := inverter.New(*serial)
	opts := append(inv.Options(), device.WithLogger(logger), device.WithManifest(manifest))
	if *strictManifest {
		opts = append(opts, device.WithStrictManifest())
	}
	if *register {
		opts = append(opts, device.WithRegisterTopic())
	}
	if *strict {
		opts = append(opts, device.WithStrictTLS())
	}
	if *publishLogs != "" {
		lf := logFlags{level: *publishLogs, format: "text"}
		l, err := lf.logger(e)
		if err != nil {
			return usagef("--publish-logs: %v", err)
		}
		opts = append(opts, device.WithLogPublishing(minLevel(l)))
	}
	d, err := device.New(cfg, opts...)
	if err != nil {
		return err
	}
	inv.Register(d)
	logger.Info("starting simulated inverter", "config", cfg)
	return d.Run(ctx)
}

// minLevel returns the lowest level l logs.
func minLevel(l *slog.Logger) slog.Level {
	for _, lv := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
		if l.Enabled(context.Background(), lv) {
			return lv
		}
	}
	return slog.LevelError
}
