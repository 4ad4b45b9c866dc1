package main

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/edk-go/edk/hub"
)

func runHub(ctx context.Context, e *env, args []string) error {
	fs := newFlags("hub", "[flags]", e.stderr)
	var cfg hub.Config
	fs.StringVar(&cfg.DataDir, "data", hub.DefaultDataDir(), "data folder: database, CA, API token")
	fs.StringVar(&cfg.MQTTAddr, "mqtt-addr", hub.DefaultMQTTAddr, "MQTT listener for devices")
	fs.StringVar(&cfg.MQTTSAddr, "mqtts-addr", hub.DefaultMQTTSAddr, `MQTTS listener (client certificates from the hub's CA); "-" turns it off`)
	fs.StringVar(&cfg.HTTPAddr, "http-addr", hub.DefaultHTTPAddr, "HTTP API listener")
	fs.BoolVar(&cfg.AllowAnonymous, "allow-anonymous", false, "let MQTT clients in without credentials, with access to every topic (development only)")
	fs.StringVar(&cfg.AdminUser, "admin-user", "", "an MQTT user with access to every topic, for edk watch/exec against the hub")
	fs.StringVar(&cfg.AdminPassword, "admin-password", "", "its password (or set EDK_HUB_ADMIN_PASSWORD)")
	fs.StringVar(&cfg.Broker, "broker", "", "use this external broker (mqtt://host:port) instead of the embedded one; hubs on one broker split the ingest (docs/hub.md)")
	fs.StringVar(&cfg.BrokerUsername, "broker-username", "", "the hub's user on the external broker")
	fs.StringVar(&cfg.BrokerPassword, "broker-password", "", "its password (or set EDK_HUB_BROKER_PASSWORD)")
	fs.StringVar(&cfg.DeviceUsername, "device-username", "", "with --broker: the MQTT user name generate_config puts in device configs")
	fs.StringVar(&cfg.DevicePassword, "device-password", "", "with --broker: its password (or set EDK_HUB_DEVICE_PASSWORD)")
	fs.DurationVar(&cfg.Retention, "retention", hub.DefaultRetention, "keep raw telemetry and logs this long (latest values, properties and executions are kept); negative keeps everything")
	var lf logFlags
	lf.register(fs, "info")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if cfg.AdminPassword == "" {
		cfg.AdminPassword = e.getenv("EDK_HUB_ADMIN_PASSWORD")
	}
	if cfg.BrokerPassword == "" {
		cfg.BrokerPassword = e.getenv("EDK_HUB_BROKER_PASSWORD")
	}
	if cfg.DevicePassword == "" {
		cfg.DevicePassword = e.getenv("EDK_HUB_DEVICE_PASSWORD")
	}
	if cfg.Broker != "" {
		cfg.MQTTSAddr = "-" // the external broker serves the devices
	}
	if cfg.AdminUser != "" && cfg.AdminPassword == "" {
		return usagef("--admin-user needs --admin-password or EDK_HUB_ADMIN_PASSWORD")
	}
	logger, err := lf.logger(e)
	if err != nil {
		return err
	}
	cfg.Logger = logger
	cfg.Ready = func(i hub.Info) {
		mqtts := i.MQTTSAddr
		if mqtts == "" {
			mqtts = "(off)"
		}
		fmt.Fprintf(e.stdout, `edk hub is running.

  MQTT    %s
  MQTTS   %s
  HTTP    http://%s
  data    %s
  token   %s

Try:
  export HUB=http://%s TOKEN=%s
  curl -s -X POST $HUB/v3/provisioning/standalone -H "X-Enapter-Auth-Token: $TOKEN" -d '{"name": "Inverter", "slug": "inverter"}'
(docs/hub-api.md has every endpoint). Ctrl-C stops the hub.
`, i.MQTTAddr, mqtts, i.HTTPAddr, i.DataDir, i.Token, i.HTTPAddr, i.Token)
	}
	err = hub.Run(ctx, cfg)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w\nAnother hub or broker is using the port: pick others with --mqtt-addr, --mqtts-addr and --http-addr (127.0.0.1:0 picks a free one)", err)
	}
	return err
}
