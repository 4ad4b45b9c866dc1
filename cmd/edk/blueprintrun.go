package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/edk-go/edk/blueprint/luarun"
	"github.com/edk-go/edk/buffer"
	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/lua"
)

// wantsBlueprint reports whether edk run was given --blueprint: that run
// has flags of its own (--config is key=value there).
func wantsBlueprint(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name == "blueprint" {
			return true
		}
	}
	return false
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

// runLuaBlueprint is edk run --blueprint DIR: the blueprint's Lua script
// as a standalone device.
func runLuaBlueprint(ctx context.Context, e *env, args []string) error {
	fs := newFlags("run", "--blueprint DIR [--config key=value ...] [flags]", e.stderr)
	var cf configFlags
	cf.register(fs)
	var lf logFlags
	lf.register(fs, e.getenv("ENAPTER_LOG_LEVEL"))
	dir := fs.String("blueprint", "", "run the Lua blueprint in this folder (manifest.yml and its script); needs an edk built with -tags lua")
	var config, rewrites, ports, mbRewrites multiFlag
	fs.Var(&config, "config", "a v3 configuration value, param=value or group.param=value (repeatable)")
	configFile := fs.String("configuration-file", "", "v3 configuration from this YAML or JSON file (group: {param: value}), re-read when it changes and on SIGHUP; the script's configuration.after_write handlers run for the groups that changed")
	fs.Var(&rewrites, "http-base-url", "send the script's HTTP requests to this base URL instead (URL for all, or ORIGIN=URL for one origin; repeatable)")
	fs.Var(&ports, "port", "map a UCM serial port to this host's device (Modbus RTU, serial.new): rs485=/dev/ttyUSB0[?baud=9600&data_bits=8&parity=N&stop_bits=1], or a CAN port (can.new) to a bus: can-1=socketcan:can0 or can-1=slcan:/dev/ttyACM0?bitrate=500000 (repeatable)")
	fs.Var(&mbRewrites, "modbus-tcp", "send the script's Modbus TCP connections for one address to another: FROM=TO, e.g. 192.168.1.50:502=127.0.0.1:5020 (repeatable)")
	storage := fs.String("storage", "", "file that keeps the script's storage across restarts (default: edk-storage-<hardware id>.json in the user config folder)")
	callTimeout := fs.Duration("call-timeout", luarun.DefaultCallTimeout, "watchdog: stop one call into the script after this long")
	register := fs.Bool("register-topic", false, "publish properties on v1/register instead of v1/properties")
	strict := fs.Bool("strict-tls", false, "also check that the broker's certificate names its host")
	strictManifest := fs.Bool("strict-manifest", false, "refuse to send telemetry or properties that break the manifest (default: warn once per attribute)")
	bufferDir := fs.String("buffer", "", "keep outgoing messages in this folder until the broker has them (README: Working offline)")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics at http://ADDR/metrics (off by default)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if !lua.Available {
		return lua.ErrNotBuilt
	}
	if *dir == "" {
		return usagef("--blueprint needs the blueprint folder")
	}
	logger, err := lf.logger(e)
	if err != nil {
		return err
	}
	bp, err := luarun.LoadBlueprint(*dir)
	if err != nil {
		return fmt.Errorf("--blueprint: %w (edk blueprint check %s lists the manifest's problems)", err, *dir)
	}
	cfgValues, err := luarun.ParseConfig(bp.Manifest, config)
	if err != nil {
		return usagef("%v", err)
	}
	if *configFile != "" {
		if len(config) > 0 {
			return usagef("--config and --configuration-file: use one (the file is where changes come from)")
		}
		if cfgValues, err = luarun.LoadConfigFile(bp.Manifest, *configFile); err != nil {
			return usagef("--configuration-file: %v", err)
		}
	}
	var rws []luarun.HTTPRewrite
	for _, s := range rewrites {
		rw, err := luarun.ParseHTTPRewrite(s)
		if err != nil {
			return usagef("--http-base-url: %v", err)
		}
		rws = append(rws, rw)
	}
	portMap := map[string]luarun.SerialPort{}
	canMap := map[string]luarun.CANPort{}
	for _, s := range ports {
		if name, p, isCAN, err := luarun.ParseCANPort(s); isCAN {
			if err != nil {
				return usagef("--port: %v", err)
			}
			canMap[name] = p
			continue
		}
		name, p, err := luarun.ParsePort(s)
		if err != nil {
			return usagef("--port: %v", err)
		}
		portMap[name] = p
	}
	mbMap := map[string]string{}
	for _, s := range mbRewrites {
		from, to, err := luarun.ParseModbusRewrite(s)
		if err != nil {
			return usagef("--modbus-tcp: %v", err)
		}
		mbMap[from] = to
	}
	cfg, err := cf.load(e)
	if err != nil {
		return err
	}
	if *storage == "" {
		base, err := os.UserConfigDir()
		if err != nil {
			return fmt.Errorf("no place for the script's storage: %w (pass --storage FILE)", err)
		}
		*storage = filepath.Join(base, "edk", "edk-storage-"+cfg.HardwareID+".json")
	}
	opts := []device.Option{device.WithLogger(logger)}
	if len(bp.Problems) == 0 {
		opts = append(opts, device.WithManifest(bp.Manifest))
	} else {
		logger.Warn("the manifest has problems; running the script without holding the device to it", "problems", strings.Join(bp.Problems, "; "))
	}
	if *strictManifest {
		opts = append(opts, device.WithStrictManifest())
	}
	opts = append(opts, topicAndTLSOptions(*register, *strict)...)
	if *bufferDir != "" {
		buf, err := buffer.Open(*bufferDir, buffer.Options{MaxBytes: buffer.DefaultMaxBytes, MaxAge: buffer.DefaultMaxAge, Logger: logger})
		if err != nil {
			return fmt.Errorf("--buffer: %w", err)
		}
		defer buf.Close()
		opts = append(opts, device.WithBuffer(buf))
	}
	var rt *luarun.Runtime
	opts = append(opts, device.WithStateHandler(func(s device.State) {
		if rt != nil {
			rt.SetConnected(s == device.StateConnected)
		}
	}))
	d, err := device.New(cfg, opts...)
	if err != nil {
		return err
	}
	rt, err = luarun.New(bp, luarun.Options{
		Sink: d, Logger: logger.With("component", "lua"), Config: cfgValues,
		StorageFile: *storage, HTTPRewrites: rws, CallTimeout: *callTimeout, Ports: portMap,
		CANPorts:          canMap,
		ModbusTCPRewrites: mbMap,
	})
	if err != nil {
		return fmt.Errorf("blueprint %s: %w", *dir, err)
	}
	rt.HandleCommands(d)
	stopMetrics, err := serveDeviceMetrics(*metricsAddr, d, logger)
	if err != nil {
		return err
	}
	defer stopMetrics()
	logger.Info("starting blueprint", "blueprint", bp.Dir, "script", bp.Main, "api", bp.APIVersion(), "config", cfg, "storage", *storage)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	luaDone := make(chan error, 1)
	go func() { luaDone <- rt.Run(ctx) }()
	if *configFile != "" {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		watchDone := make(chan struct{})
		defer func() { cancel(); <-watchDone }()
		go func() {
			defer close(watchDone)
			luarun.WatchConfigFile(ctx, *configFile, bp.Manifest, cfgValues, time.Second, hup, logger, rt.SetConfiguration)
		}()
	}
	err = d.Run(ctx)
	cancel()
	select {
	case lerr := <-luaDone:
		if err == nil {
			err = lerr
		}
	case <-time.After(luarun.DefaultCallTimeout + time.Second):
		err = errors.Join(err, errors.New("the blueprint's script did not stop in time"))
	}
	return err
}

// checkLua compiles a blueprint's Lua files for edk blueprint check. It
// reports nothing for a manifest without a Lua script.
func checkLua(e *env, path string) error {
	dir := path
	if st, err := os.Stat(path); err == nil && !st.IsDir() {
		dir = filepath.Dir(path)
	}
	bp, err := luarun.LoadBlueprint(dir)
	if err != nil {
		return nil // no script (or named elsewhere): the manifest check said what it could
	}
	if !lua.Available {
		fmt.Fprintf(e.stderr, "lua: not checked: %v\n", lua.ErrNotBuilt)
		return nil
	}
	if err := luarun.Check(bp); err != nil {
		fmt.Fprintln(e.stdout, err)
		return &exitError{code: 1, err: fmt.Errorf("the Lua script of %s does not compile", dir)}
	}
	fmt.Fprintf(e.stdout, "%s: lua ok (Lua 5.3)\n", bp.Main)
	return nil
}
