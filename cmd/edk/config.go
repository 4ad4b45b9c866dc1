package main

import (
	"context"
	"fmt"

	"github.com/edk-go/edk/commconfig"
)

func runConfig(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "decode":
			return runConfigDecode(e, args[1:])
		case "encode":
			return runConfigEncode(e, args[1:])
		}
	}
	return usagef("want 'edk config decode' (show a config, secrets redacted) or 'edk config encode' (make one for your own broker)")
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
		return usagef("%v", err)
	}
	blob, err := cfg.Encode()
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, blob)
	return nil
}
