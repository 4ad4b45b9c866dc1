package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"

	"github.com/edk-go/edk/hub"
	"github.com/edk-go/edk/hub/broker"
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
	fs.IntVar(&cfg.MaxPayload, "max-payload", hub.DefaultMaxPayload, "largest message payload a device may publish, in bytes; larger ones are dropped (negative: no limit)")
	fs.Float64Var(&cfg.RateLimit, "rate-limit", hub.DefaultRateLimit, "messages per second one device connection may publish on average; a faster device is slowed down (negative: no limit)")
	fs.IntVar(&cfg.RateBurst, "rate-burst", hub.DefaultRateBurst, "how many messages a device may send in a burst before --rate-limit holds it back (zero or negative: the default)")
	fs.DurationVar(&cfg.MQTTConnectTimeout, "mqtt-connect-timeout", broker.DefaultConnectTimeout, "close an MQTT connection that has not completed its TLS handshake and CONNECT within this time (negative: never)")
	fs.IntVar(&cfg.MQTTMaxConnections, "mqtt-max-connections", 0, "most open MQTT connections, all listeners together; 0 means 10000, or the open-file limit less 512 when that is lower (negative: no cap)")
	fs.IntVar(&cfg.MQTTMaxConnectionsPerAddr, "mqtt-max-connections-per-address", broker.DefaultMaxConnectionsPerAddr, "most open MQTT connections from one IP address (IPv6: one /64) (negative: no cap)")
	fs.BoolVar(&cfg.HTTPTLS, "http-tls", false, "serve the HTTP API over HTTPS with a certificate from the hub's CA (clients trust <data>/ca/ca.pem)")
	fs.StringVar(&cfg.HTTPCertFile, "http-cert", "", "serve the HTTP API over HTTPS with this certificate (PEM; needs --http-key)")
	fs.StringVar(&cfg.HTTPKeyFile, "http-key", "", "the private key (PEM) of --http-cert")
	fs.StringVar(&cfg.MetricsAddr, "metrics", "", "serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9464 (off by default)")
	fs.BoolVar(&cfg.Profiles, "pprof", false, "also serve Go's runtime profiles at http://ADDR/debug/pprof/ on the --metrics address, for go tool pprof")
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
	if cfg.Profiles && cfg.MetricsAddr == "" {
		return usagef("--pprof serves the profiles on the --metrics address: give --metrics too, e.g. --metrics 127.0.0.1:9464 --pprof")
	}
	if (cfg.HTTPCertFile == "") != (cfg.HTTPKeyFile == "") {
		return usagef("--http-cert and --http-key go together")
	}
	if cfg.RateLimit == 0 || cfg.MaxPayload == 0 {
		return usagef("--rate-limit and --max-payload: give a positive limit, or a negative number for none")
	}
	logger, err := lf.logger(e)
	if err != nil {
		return err
	}
	cfg.Logger = logger
	cfg.Ready = func(i hub.Info) { printHubBanner(e.stdout, i) }
	err = hub.Run(ctx, cfg)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w\nAnother hub or broker is using the port: pick others with --mqtt-addr, --mqtts-addr, --http-addr and --metrics (127.0.0.1:0 picks a free one)", err)
	}
	return err
}

// printHubBanner tells the user where the hub listens and how to try it.
func printHubBanner(w io.Writer, i hub.Info) {
	mqtts := i.MQTTSAddr
	if mqtts == "" {
		mqtts = "(off)"
	}
	metrics := "(off)"
	if i.MetricsAddr != "" {
		metrics = "http://" + i.MetricsAddr + "/metrics"
	}
	curl := "curl -s"
	if i.HTTPCAFile != "" {
		curl = "curl -s --cacert " + i.HTTPCAFile
	}
	fmt.Fprintf(w, `edk hub is running.

  MQTT    %s
  MQTTS   %s
  HTTP    %s
  console %s/#token=%s
  metrics %s
  data    %s
  token   %s

Try:
  export HUB=%s TOKEN=%s
  %s -X POST $HUB/v3/provisioning/standalone -H "X-Enapter-Auth-Token: $TOKEN" -d '{"name": "Inverter", "slug": "inverter"}'
(docs/hub-api.md has every endpoint). Ctrl-C stops the hub.
`, i.MQTTAddr, mqtts, i.HTTPURL, i.HTTPURL, i.Token, metrics, i.DataDir, i.Token, i.HTTPURL, i.Token, curl)
}
