package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/sim/fleet"
)

// runSimFleet wires `edk sim fleet`'s flags to package fleet.
func runSimFleet(ctx context.Context, e *env, args []string) error {
	fs := newFlags("sim fleet", "--devices N (--hub URL --token T | --broker URL) [flags]", e.stderr)
	var cfg fleet.Config
	fs.IntVar(&cfg.Devices, "devices", 0, "how many simulated inverters to run, each on its own MQTT connection")
	fs.DurationVar(&cfg.Interval, "interval", fleet.DefaultInterval, "telemetry period of each device")
	fs.IntVar(&cfg.Values, "values", fleet.DefaultValues, "values per telemetry message (the inverter's 3, then extra_NN readings)")
	qos := fs.Int("qos", 1, "QoS of telemetry and properties: 1 (acknowledged) or 0")
	fs.StringVar(&cfg.HubURL, "hub", "", "provision the devices on this edk hub (its API URL, e.g. http://127.0.0.1:8080) and send commands through it")
	fs.StringVar(&cfg.Token, "token", "", "the hub's API token (or set EDK_HUB_TOKEN)")
	protocol := fs.String("protocol", string(commconfig.ProtocolMQTT), "with --hub: MQTT (password) or MQTTS (client certificate)")
	fs.StringVar(&cfg.Prefix, "prefix", fleet.DefaultPrefix, "device names are <prefix>-00001 …; a later run with the same prefix reuses them")
	fs.IntVar(&cfg.ProvisionConcurrency, "provision-concurrency", fleet.DefaultProvisionConcurrency, "provisioning requests to the hub at once")
	fs.StringVar(&cfg.Broker, "broker", "", "instead of --hub: run anonymous devices against this broker (mqtt://host:port)")
	fs.Float64Var(&cfg.Commands, "commands", 0, "execute_command calls a second through the hub (set_power to random connected devices)")
	fs.DurationVar(&cfg.CommandTimeout, "command-timeout", fleet.DefaultCommandTimeout, "each command's timeout at the hub")
	fs.Float64Var(&cfg.ReadProbes, "read-probes", 0, fmt.Sprintf("with --hub: read probes a second, each timing how soon the hub's API serves a device's last acknowledged telemetry (default %d; negative: none)", fleet.DefaultReadProbes))
	fs.Float64Var(&cfg.StartRate, "start-rate", fleet.DefaultStartRate, "devices started per second (negative: all at once)")
	fs.DurationVar(&cfg.MinBackoff, "min-backoff", 0, "devices' shortest reconnect delay (default the runtime's, 500ms)")
	fs.DurationVar(&cfg.MaxBackoff, "max-backoff", 0, "devices' longest reconnect delay (default the runtime's, 30s)")
	fs.DurationVar(&cfg.StatusEvery, "status-every", fleet.DefaultStatusEvery, "how often the status line is updated")
	deviceLog := fs.String("log-level", "", "also print the devices' own log lines at this level and up (debug, info, warning, error); off by default")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *qos < 0 || *qos > 1 {
		return usagef("--qos %d: want 0 or 1", *qos)
	}
	q := byte(*qos)
	cfg.QoS = &q
	cfg.Protocol = commconfig.Protocol(*protocol)
	if cfg.Token == "" {
		cfg.Token = e.getenv("EDK_HUB_TOKEN")
	}
	if cfg.Devices <= 0 {
		return usagef("--devices: give how many devices to run (at least 1)")
	}
	if cfg.MinBackoff != 0 && cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = max(cfg.MinBackoff, 30*time.Second)
	}
	if cfg.MaxBackoff != 0 && cfg.MinBackoff == 0 {
		cfg.MinBackoff = min(cfg.MaxBackoff, 500*time.Millisecond)
	}
	if *deviceLog != "" {
		lf := logFlags{level: *deviceLog, format: "text"}
		l, err := lf.logger(e)
		if err != nil {
			return usagef("--log-level: %v", err)
		}
		cfg.DeviceLog = l.Handler()
	}
	cfg.Status = e.stdout
	cfg.Live = isTerminal(e.stdout)
	_, err := fleet.Run(ctx, cfg)
	if err != nil {
		if errors.Is(err, fleet.ErrConfig) {
			// A flag value the package refused: exit 2, with the -h hint.
			return usagef("%s", strings.TrimPrefix(err.Error(), "fleet: "))
		}
		return err
	}
	return nil
}

// isTerminal reports whether w is a terminal, where the status line is
// rewritten in place.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
