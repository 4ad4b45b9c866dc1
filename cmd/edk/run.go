package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/edk-go/edk/blueprint"
	"github.com/edk-go/edk/buffer"
	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/devicemetrics"
	"github.com/edk-go/edk/driver/modbus"
	"github.com/edk-go/edk/internal/metricsrv"
	"github.com/edk-go/edk/sim/inverter"
)

func runRun(ctx context.Context, e *env, args []string) error {
	if wantsBlueprint(args) {
		return runLuaBlueprint(ctx, e, args)
	}
	fs := newFlags("run", "[--config-file F | --config-blob B] [flags]", e.stderr)
	var cf configFlags
	cf.register(fs)
	var lf logFlags
	lf.register(fs, e.getenv("ENAPTER_LOG_LEVEL"))
	serial := fs.String("serial", "SIM-0001", "serial number the simulated inverter reports")
	register := fs.Bool("register-topic", false, "publish properties on v1/register (as Enapter's Python SDK does) instead of v1/properties")
	strict := fs.Bool("strict-tls", false, "also check that the broker's certificate names its host (off by default, as in Enapter's SDK)")
	publishLogs := fs.String("publish-logs", "", "also publish the device's own log lines at this level and above to v3/logs (e.g. warning)")
	mapPath := fs.String("config", "", "run a Modbus device from this register map (YAML, see docs/modbus.md) instead of the simulated inverter")
	manifestPath := fs.String("manifest", "", "blueprint manifest to hold the device to (file or folder; default: the simulated inverter's own; none with --config)")
	strictManifest := fs.Bool("strict-manifest", false, "refuse to send telemetry or properties that break the manifest (default: warn once per attribute)")
	bufferDir := fs.String("buffer", "", "keep outgoing messages in this folder until the broker has them: nothing is lost while offline, even across restarts (README: Working offline)")
	bufferMax := byteSize(buffer.DefaultMaxBytes)
	fs.Var(&bufferMax, "buffer-max-size", "with --buffer: bound on buffered topics and payloads; the oldest messages are dropped beyond it")
	bufferAge := fs.Duration("buffer-max-age", buffer.DefaultMaxAge, "with --buffer: drop buffered messages older than this")
	replayRate := fs.Float64("replay-rate", device.DefaultReplayRate, "with --buffer: send at most this many messages a second when draining a backlog (0: as fast as the broker acknowledges)")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9465 (off by default)")
	// handled by runLuaBlueprint before this flag set sees it; listed for -h
	fs.String("blueprint", "", "run the Enapter Lua blueprint in this folder instead (its own flags: edk run --blueprint DIR -h; needs -tags lua)")
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
	var manifest *blueprint.Manifest
	if *manifestPath != "" {
		if manifest, err = blueprint.Load(*manifestPath); err != nil {
			return fmt.Errorf("--manifest: %w (edk blueprint check %s lists every problem)", err, *manifestPath)
		}
		for _, w := range manifest.Warnings { // Enapter takes them; likely typos all the same
			logger.Warn("manifest: "+w.Message, "at", fmt.Sprintf("%s:%d:%d", w.File, w.Line, w.Column), "hint", w.Hint)
		}
	}
	var opts []device.Option
	if *mapPath != "" {
		drv, err := modbusDriver(*mapPath, manifest, logger)
		if err != nil {
			return err
		}
		defer drv.Close()
		opts = append(opts, device.WithDriver(drv, drv.Interval()))
	} else {
		if manifest == nil {
			manifest = inverter.Manifest()
		}
		inv := inverter.New(*serial)
		opts = append(opts, inv.Options()...)
	}
	opts = append(opts, device.WithLogger(logger))
	if manifest != nil {
		opts = append(opts, device.WithManifest(manifest))
	}
	if *strictManifest {
		if manifest == nil {
			return usagef("--strict-manifest needs --manifest")
		}
		opts = append(opts, device.WithStrictManifest())
	}
	opts = append(opts, topicAndTLSOptions(*register, *strict)...)
	if *publishLogs != "" {
		lf := logFlags{level: *publishLogs, format: "text"}
		l, err := lf.logger(e)
		if err != nil {
			return usagef("--publish-logs: %v", err)
		}
		opts = append(opts, device.WithLogPublishing(minLevel(l)))
	}
	if *bufferDir != "" {
		buf, err := buffer.Open(*bufferDir, buffer.Options{MaxBytes: int64(bufferMax), MaxAge: *bufferAge, Logger: logger})
		if err != nil {
			return fmt.Errorf("--buffer: %w", err)
		}
		defer buf.Close()
		opts = append(opts, device.WithBuffer(buf), device.WithReplayRate(*replayRate, device.DefaultReplayBurst))
	}
	d, err := device.New(cfg, opts...)
	if err != nil {
		return err
	}
	stopMetrics, err := serveDeviceMetrics(*metricsAddr, d, logger)
	if err != nil {
		return err
	}
	defer stopMetrics()
	logger.Info("starting device", "config", cfg, "register_map", *mapPath, "buffer", *bufferDir)
	return d.Run(ctx)
}

// modbusDriver loads a register map, checks it against the manifest when
// there is one, and returns the driver for it (not yet connected: the
// device's first telemetry read connects, and reconnects after failures).
func modbusDriver(path string, manifest *blueprint.Manifest, logger *slog.Logger) (*modbus.Driver, error) {
	m, err := modbus.Load(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	if manifest != nil {
		if problems := m.CheckManifest(manifest); len(problems) > 0 {
			return nil, fmt.Errorf("register map %s does not match the manifest:\n  %s", path, strings.Join(problems, "\n  "))
		}
	}
	drv, err := modbus.New(m, modbus.Options{Logger: logger.With("component", "modbus")})
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	logger.Info("register map loaded", "file", path, "device", m.Connection.Address, "reads_per_poll", drv.Plan().Requests())
	return drv, nil
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

// topicAndTLSOptions are the device options of --register-topic and
// --strict-tls, which edk run has in every mode.
func topicAndTLSOptions(register, strictTLS bool) []device.Option {
	var opts []device.Option
	if register {
		opts = append(opts, device.WithRegisterTopic())
	}
	if strictTLS {
		opts = append(opts, device.WithStrictTLS())
	}
	return opts
}

// serveDeviceMetrics serves d's Stats as Prometheus metrics at addr (edk
// run --metrics) until the returned stop; with no addr it serves nothing.
func serveDeviceMetrics(addr string, d *device.Device, logger *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	reg := metricsrv.NewRegistry()
	reg.MustRegister(devicemetrics.NewCollector(d))
	_, stop, err = metricsrv.Start(addr, reg, logger)
	if err != nil {
		return nil, err
	}
	return stop, nil
}
