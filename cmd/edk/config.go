package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/edk-go/edk/commconfig"
)

func runConfig(ctx context.Context, e *env, args []string) error {
	return dispatch(ctx, e, "config", []subcommand{
		{"decode", "show a config, secrets redacted", withoutContext(runConfigDecode)},
		{"encode", "make one for your own broker", withoutContext(runConfigEncode)},
	}, args)
}

func runConfigDecode(e *env, args []string) error {
	fs := newFlags("config decode", "[--config-file F | --config-blob B]", e.stderr)
	var cf configFlags
	cf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := cf.load(e)
	if err != nil {
		return err
	}
	if err := cfg.Describe(e.stdout); err != nil {
		return fmt.Errorf("print config: %w", err)
	}
	return nil
}

// runConfigEncode makes a v3 communication config for a plain MQTT broker
// (mosquitto, a test broker), so that a device can be run without Enapter.
func runConfigEncode(e *env, args []string) error {
	fs := newFlags("config encode", "--hardware-id ID --host HOST [flags]", e.stderr)
	cfg := commconfig.Config{Version: commconfig.Version3, Protocol: commconfig.ProtocolMQTT}
	fs.StringVar(&cfg.HardwareID, "hardware-id", "", "the device's hardware id (required)")
	fs.StringVar(&cfg.ChannelID, "channel-id", "primary", "the device's channel id")
	fs.StringVar(&cfg.Host, "host", "127.0.0.1", "MQTT broker host")
	fs.IntVar(&cfg.Port, "port", 1883, "MQTT broker port")
	fs.StringVar(&cfg.Username, "username", "", "MQTT user name")
	fs.StringVar(&cfg.Password, "password", "", "MQTT password (or set EDK_MQTT_PASSWORD, which the process list does not show)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if cfg.Password == "" {
		cfg.Password = e.getenv("EDK_MQTT_PASSWORD")
	}
	if err := cfg.Validate(); err != nil {
		return usagef("%s", encodeFlagProblem(err))
	}
	blob, err := cfg.Encode()
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, blob)
	return nil
}

// encodeFlagProblem names the flag behind a config field, since the person
// typing 'edk config encode' gave flags, not JSON.
func encodeFlagProblem(err error) string {
	var fe *commconfig.FieldError
	if !errors.As(err, &fe) {
		return err.Error()
	}
	flags := map[string]string{
		"hardware_id": "--hardware-id", "channel_id": "--channel-id",
		"mqtt_host": "--host", "mqtt_port": "--port",
	}
	flag, ok := flags[fe.Field]
	if !ok {
		return err.Error()
	}
	if strings.HasPrefix(fe.Problem, "is missing") {
		return flag + " is required"
	}
	return flag + " " + fe.Problem
}
