package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/internal/hubclient"
)

func TestHubCommand(t *testing.T) {
	h := startCLI(t, nil, "hub", "--data", t.TempDir(), "--mqtt-addr", "127.0.0.1:0", "--mqtts-addr", "-", "--http-addr", "127.0.0.1:0", "--log-level", "warning")
	h.waitFor(t, "Ctrl-C stops the hub")
	out := h.stdout.String()
	httpAddr := regexp.MustCompile(`HTTP    (http://\S+)`).FindStringSubmatch(out)
	token := regexp.MustCompile(`token   (\S+)`).FindStringSubmatch(out)
	if httpAddr == nil || token == nil || !strings.Contains(out, "MQTTS   (off)") {
		t.Fatalf("hub output:\n%s", out)
	}
	api := &hubclient.Client{BaseURL: httpAddr[1], Token: token[1]}
	ctx := context.Background()
	id, cfg, err := api.Provision(ctx, "cli", "cli", commconfig.ProtocolMQTT)
	if err != nil {
		t.Fatalf("provisioning through the CLI's hub: %v", err)
	}
	blob, err := cfg.Encode()
	if err != nil {
		t.Fatal(err)
	}
	dev := startCLI(t, map[string]string{commconfig.EnvConfig: blob}, "run")
	if !dev.stderr.WaitFor("state=connected", waitLimit) {
		t.Fatalf("edk run did not connect with the hub's config: %s", dev.stderr)
	}
	if e, err := api.ExecuteCommand(ctx, id, "set_power", map[string]any{"power": 1234}); err != nil || e.State != "SUCCESS" {
		t.Fatalf("execute_command: %+v, %v", e, err)
	}
	if code := dev.interrupt(t); code != 0 {
		t.Fatalf("run exit %d", code)
	}
	if code := h.interrupt(t); code != 0 {
		t.Fatalf("hub exit %d: %s", code, h.stderr)
	}
}

func TestHubCommandHTTPSAndMetrics(t *testing.T) {
	dir := t.TempDir()
	h := startCLI(t, nil, "hub", "--data", dir, "--mqtt-addr", "127.0.0.1:0", "--mqtts-addr", "-", "--http-addr", "127.0.0.1:0",
		"--http-tls", "--metrics", "127.0.0.1:0", "--rate-limit", "50", "--rate-burst", "10", "--max-payload", "4096", "--log-level", "warning")
	h.waitFor(t, "Ctrl-C stops the hub")
	out := h.stdout.String()
	base := regexp.MustCompile(`HTTP    (https://\S+)`).FindStringSubmatch(out)
	metrics := regexp.MustCompile(`metrics (http://\S+/metrics)`).FindStringSubmatch(out)
	cacert := regexp.MustCompile(`curl -s --cacert (\S+) `).FindStringSubmatch(out)
	token := regexp.MustCompile(`token   (\S+)`).FindStringSubmatch(out)
	if base == nil || metrics == nil || cacert == nil || token == nil || !strings.Contains(out, "export HUB="+base[1]) {
		t.Fatalf("hub output:\n%s", out)
	}
	pem, err := os.ReadFile(cacert[1])
	if err != nil {
		t.Fatalf("the banner's --cacert file: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	defer client.CloseIdleConnections()
	api := &hubclient.Client{BaseURL: base[1], Token: token[1], HTTP: client}
	if err := api.Do(context.Background(), "GET", "/v3/devices", nil, nil); err != nil {
		t.Fatalf("API over HTTPS with the hub's CA: %v", err)
	}

	resp, err := http.Get(metrics[1])
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	if !strings.Contains(string(b), "edk_hub_connected_devices 0") || !strings.Contains(string(b), `edk_hub_messages_dropped_total{reason="rate"} 0`) {
		t.Fatalf("metrics:\n%s", b)
	}
	if code := h.interrupt(t); code != 0 {
		t.Fatalf("hub exit %d: %s", code, h.stderr)
	}
}

func TestHubCommandUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--http-cert", "cert.pem"}, "--http-cert and --http-key go together"},
		{[]string{"--http-key", "key.pem"}, "--http-cert and --http-key go together"},
		{[]string{"--pprof"}, "--pprof serves the profiles on the --metrics address"},
		{[]string{"--rate-limit", "0"}, "negative number for none"},
		{[]string{"--max-payload", "0"}, "negative number for none"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			c := startCLI(t, nil, append([]string{"hub", "--data", t.TempDir()}, tt.args...)...)
			if code := c.wait(t); code != 2 || !strings.Contains(c.stderr.String(), tt.want) {
				t.Fatalf("exit %d, stderr:\n%s\nwant code 2 and %q", code, c.stderr, tt.want)
			}
		})
	}
}

// TestHubConnectionFlags checks that the connection limit flags reach the
// broker: with --mqtt-connect-timeout 100ms a connection that never sends
// CONNECT is closed.
func TestHubConnectionFlags(t *testing.T) {
	h := startCLI(t, nil, "hub", "--data", t.TempDir(), "--mqtt-addr", "127.0.0.1:0", "--mqtts-addr", "-", "--http-addr", "127.0.0.1:0",
		"--mqtt-connect-timeout", "100ms", "--mqtt-max-connections-per-address", "5", "--log-level", "warning")
	h.waitFor(t, "Ctrl-C stops the hub")
	addr := regexp.MustCompile(`MQTT    (\S+)`).FindStringSubmatch(h.stdout.String())
	if addr == nil {
		t.Fatalf("hub output:\n%s", h.stdout)
	}
	c, err := net.Dial("tcp", strings.TrimPrefix(addr[1], "mqtt://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(waitLimit))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("a connection without CONNECT was held for %v: %v", waitLimit, err)
	}
	if code := h.interrupt(t); code != 0 {
		t.Fatalf("hub exit %d: %s", code, h.stderr)
	}
}
