package hub_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/hub"
	"github.com/edk-go/edk/hub/store"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

// scrape fetches the hub's /metrics and returns every sample by its name
// and labels as written ("name{label="value"}").
func scrape(t testing.TB, h *running) map[string]float64 {
	t.Helper()
	if h.info.MetricsAddr == "" {
		t.Fatal("the hub serves no metrics")
	}
	resp, err := http.Get("http://" + h.info.MetricsAddr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("scrape: %s %q\n%s", resp.Status, resp.Header.Get("Content-Type"), b)
	}
	out := make(map[string]float64)
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// waitMetric scrapes until the sample satisfies ok.
func waitMetric(t testing.TB, h *running, name string, ok func(float64) bool) map[string]float64 {
	t.Helper()
	var m map[string]float64
	testutil.EventuallyWithin(t, waitLimit, name+" as expected", func() bool {
		m = scrape(t, h)
		v, found := m[name]
		return found && ok(v)
	})
	return m
}

func TestFloodingDeviceLimited(t *testing.T) {
	dir := t.TempDir()
	h := startHubWith(t, hub.Config{DataDir: dir, MQTTAddr: "127.0.0.1:0", MQTTSAddr: "-", HTTPAddr: "127.0.0.1:0",
		MetricsAddr: "127.0.0.1:0", RateLimit: 50, RateBurst: 5, MaxPayload: 1000})
	id, cfg := h.provision(t, "flood", commconfig.ProtocolMQTT)
	dev := testutil.ConnectWith(t, testutil.ClientOptions(h.info.MQTTAddr).SetUsername(cfg.Username).SetPassword(cfg.Password))
	topic, err := mqttapi.NewTopic(mqttapi.FromDevice, cfg.HardwareID, cfg.ChannelID, mqttapi.KindLogs)
	if err != nil {
		t.Fatal(err)
	}
	send := func(msg string) {
		t.Helper()
		b, _ := json.Marshal(mqttapi.Log{Timestamp: time.Now().Unix(), Message: msg, Severity: "info"})
		if err := testutil.Wait(dev.Publish(topic.String(), 1, false, b)); err != nil {
			t.Fatalf("publish %q: %v", msg[:min(len(msg), 20)], err)
		}
	}

	// An oversized message is dropped; the connection stays and the next
	// message (within the burst) is stored.
	send(strings.Repeat("x", 2000))
	send("after the oversized one")
	if !dev.IsConnectionOpen() {
		t.Fatal("the device was disconnected for an oversized message")
	}
	// Then a flood, pipelined like a device draining its backlog: 50 msg/s
	// with a burst of 5 slows it down to about a second, and drops nothing.
	sent := 1
	var toks []mqtt.Token
	for i := range 60 {
		b, _ := json.Marshal(mqttapi.Log{Timestamp: time.Now().Unix(), Message: "flood " + strconv.Itoa(i), Severity: "info"})
		toks = append(toks, dev.Publish(topic.String(), 1, false, b))
		sent++
	}
	for _, tok := range toks {
		if err := testutil.Wait(tok); err != nil {
			t.Fatal(err)
		}
	}
	m := scrape(t, h)
	// Counted before the broker acknowledges, so these are final.
	if m[`edk_hub_messages_dropped_total{reason="size"}`] != 1 || m[`edk_hub_messages_dropped_total{reason="rate"}`] != 0 ||
		m[`edk_hub_messages_throttled_total`] < 1 {
		t.Fatalf("size drops %v, rate drops %v, slowed %v; want 1, 0 and most of the flood",
			m[`edk_hub_messages_dropped_total{reason="size"}`], m[`edk_hub_messages_dropped_total{reason="rate"}`], m[`edk_hub_messages_throttled_total`])
	}
	want := sent
	waitMetric(t, h, "edk_hub_log_entries_stored_total", func(v float64) bool { return int(v) == want })
	// Every one of them went through the inbox (acknowledged once
	// committed), and the inbox is empty once they are written.
	m = waitMetric(t, h, "edk_hub_ingest_inbox_length", func(v float64) bool { return v == 0 })
	if got := m["edk_hub_messages_inboxed_total"]; int(got) != want {
		t.Fatalf("inboxed %v messages, want %d", got, want)
	}
	h.stop(t)

	// What the store holds is exactly what was sent minus what was counted as dropped.
	st, err := store.Open(context.Background(), filepath.Join(dir, "hub.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	logs, err := st.ListLogs(context.Background(), id, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(logs) != want || logs[0].Message != "after the oversized one" {
		t.Fatalf("stored %d logs (first %q), want all %d sent after the oversized one", len(logs), logs[0].Message, want)
	}
	for _, l := range logs {
		if strings.HasPrefix(l.Message, "xxx") {
			t.Fatal("the oversized message was stored")
		}
	}
}

func TestHTTPS(t *testing.T) {
	dir := t.TempDir()
	h := startHubWith(t, hub.Config{DataDir: dir, MQTTAddr: "127.0.0.1:0", MQTTSAddr: "-", HTTPAddr: "127.0.0.1:0", HTTPTLS: true})
	if h.info.HTTPURL != "https://"+h.info.HTTPAddr || h.info.HTTPCAFile != filepath.Join(dir, "ca", "ca.pem") {
		t.Fatalf("info: %+v", h.info)
	}
	pem, err := os.ReadFile(h.info.HTTPCAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatal("the CA file holds no certificate")
	}
	tlsCfg := &tls.Config{RootCAs: roots}
	h.client = &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	defer h.client.CloseIdleConnections()

	// The API works, WebSockets too, checking the host name (127.0.0.1).
	id, _ := h.provision(t, "over-tls", commconfig.ProtocolMQTT)
	dialer := websocket.Dialer{TLSClientConfig: tlsCfg, HandshakeTimeout: waitLimit}
	ws, resp, err := dialer.Dial("wss://"+h.info.HTTPAddr+"/v3/devices/"+id+"/telemetry", http.Header{"X-Enapter-Auth-Token": {h.info.Token}})
	if err != nil {
		t.Fatalf("wss: %v (%v)", err, resp)
	}
	ws.Close()
	// So does "localhost", which the certificate names too.
	_, port, _ := strings.Cut(h.info.HTTPAddr, ":")
	local := &running{info: h.info, client: h.client}
	local.info.HTTPURL = "https://localhost:" + port
	var list struct {
		Devices []json.RawMessage `json:"devices"`
	}
	if code := local.call(t, "GET", "/v3/devices", nil, &list); code != http.StatusOK || len(list.Devices) != 1 {
		t.Fatalf("via localhost: %d %d devices", code, len(list.Devices))
	}

	// A client that does not trust the hub's CA is refused ...
	_, err = http.Get(h.info.HTTPURL + "/v3/devices")
	if uerr := new(x509.UnknownAuthorityError); !errors.As(err, uerr) {
		t.Fatalf("without the CA: %v, want an unknown-authority error", err)
	}
	// ... and plain HTTP is told what is wrong.
	resp, err = http.Get("http://" + h.info.HTTPAddr + "/v3/devices")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "HTTPS") {
		t.Fatalf("plain HTTP: %s %s", resp.Status, b)
	}
}

func TestHTTPSOwnCertificate(t *testing.T) {
	pki := testutil.NewPKI(t)
	h := startHubWith(t, hub.Config{DataDir: t.TempDir(), MQTTAddr: "127.0.0.1:0", MQTTSAddr: "-", HTTPAddr: "127.0.0.1:0",
		HTTPCertFile: pki.ServerCertFile, HTTPKeyFile: pki.ServerKeyFile})
	if !strings.HasPrefix(h.info.HTTPURL, "https://") || h.info.HTTPCAFile != "" {
		t.Fatalf("info: %+v", h.info)
	}
	h.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.CertPool()}}}
	defer h.client.CloseIdleConnections()
	if code := h.call(t, "GET", "/v3/devices", nil, nil); code != http.StatusOK {
		t.Fatalf("GET /v3/devices: %d", code)
	}

	err := hub.Run(failCtx(t), hub.Config{DataDir: t.TempDir(), MQTTAddr: "127.0.0.1:0", MQTTSAddr: "-", HTTPAddr: "127.0.0.1:0",
		HTTPCertFile: pki.ServerCertFile})
	if err == nil || !strings.Contains(err.Error(), "--http-key") {
		t.Fatalf("certificate without key: %v", err)
	}
	err = hub.Run(failCtx(t), hub.Config{DataDir: t.TempDir(), MQTTAddr: "127.0.0.1:0", MQTTSAddr: "-", HTTPAddr: "127.0.0.1:0",
		HTTPCertFile: pki.ServerCertFile, HTTPKeyFile: pki.WrongHostKeyFile})
	if err == nil || !strings.Contains(err.Error(), "HTTPS: load certificate") || strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Fatalf("mismatched key: %v", err)
	}
}

func TestMetrics(t *testing.T) {
	h := startHubWith(t, hub.Config{DataDir: t.TempDir(), MQTTAddr: "127.0.0.1:0", MQTTSAddr: "-", HTTPAddr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0"})
	id, cfg := h.provision(t, "measured", commconfig.ProtocolMQTT)
	runInverter(t, cfg)
	var out struct {
		Execution execution `json:"execution"`
	}
	if code := h.call(t, "POST", "/v3/devices/"+id+"/execute_command", map[string]any{"name": "set_power", "arguments": map[string]any{"power": 10}}, &out); code != http.StatusOK || out.Execution.State != "SUCCESS" {
		t.Fatalf("execute_command: %d %+v", code, out.Execution)
	}
	h.call(t, "POST", "/v3/devices/"+id+"/execute_command", map[string]any{"name": "set_power", "arguments": map[string]any{"power": "abc"}}, nil)

	waitMetric(t, h, "edk_hub_telemetry_samples_stored_total", func(v float64) bool { return v >= 1 })
	m := waitMetric(t, h, `edk_hub_messages_received_total{kind="properties"}`, func(v float64) bool { return v >= 1 })
	want := map[string]func(float64) bool{
		"edk_hub_connected_devices":                                    eq(1),
		`edk_hub_messages_received_total{kind="telemetry"}`:            atLeast(1),
		`edk_hub_messages_received_total{kind="logs"}`:                 atLeast(0),
		`edk_hub_messages_received_total{kind="responses"}`:            atLeast(2),
		"edk_hub_messages_malformed_total":                             eq(0),
		`edk_hub_messages_dropped_total{reason="rate"}`:                eq(0),
		`edk_hub_messages_dropped_total{reason="size"}`:                eq(0),
		`edk_hub_messages_dropped_total{reason="queue_full"}`:          eq(0),
		"edk_hub_messages_unacknowledged_total":                        eq(0),
		"edk_hub_ingest_queue_length":                                  atLeast(0),
		"edk_hub_ingest_inbox_length":                                  atLeast(0),
		"edk_hub_messages_inboxed_total":                               atLeast(0), // this device sends telemetry at QoS 0
		"edk_hub_ingest_queue_capacity":                                eq(10000),
		"edk_hub_log_entries_stored_total":                             atLeast(0),
		`edk_hub_command_executions_total{state="success"}`:            eq(1),
		`edk_hub_command_executions_total{state="error"}`:              eq(1),
		`edk_hub_command_executions_total{state="timeout"}`:            eq(0),
		"edk_hub_command_executions_pending":                           eq(0),
		"go_goroutines":                                                atLeast(1),
		"process_resident_memory_bytes":                                atLeast(1),
		`promhttp_metric_handler_requests_total{code="200"}`:           atLeast(1),
		"edk_hub_messages_unknown_device_total":                        eq(0),
		"edk_hub_store_errors_total":                                   eq(0),
		`edk_hub_messages_received_total{kind="properties"}`:           atLeast(1),
		"edk_hub_telemetry_samples_stored_total":                       atLeast(1),
		"edk_hub_mqtt_connections":                                     atLeast(1),
		`edk_hub_mqtt_connections_refused_total{reason="credentials"}`: eq(0),
		`edk_hub_mqtt_connections_refused_total{reason="will"}`:        eq(0),
		"edk_hub_messages_retain_cleared_total":                        eq(0),
		"edk_hub_ingest_write_retries_total":                           eq(0),
		"edk_hub_ingest_writes_waiting_retry":                          eq(0),
	}
	for name, ok := range want {
		v, found := m[name]
		if !found || !ok(v) {
			t.Errorf("%s = %v (present: %v)", name, v, found)
		}
	}
	if t.Failed() {
		t.Logf("scrape: %v", m)
	}
	if !regexp.MustCompile(`^127\.0\.0\.1:\d+$`).MatchString(h.info.MetricsAddr) {
		t.Fatalf("metrics address %q", h.info.MetricsAddr)
	}
}

func eq(want float64) func(float64) bool      { return func(v float64) bool { return v == want } }
func atLeast(want float64) func(float64) bool { return func(v float64) bool { return v >= want } }

func TestMetricsAddrTaken(t *testing.T) {
	h := startHubWith(t, hub.Config{DataDir: t.TempDir(), MQTTAddr: "127.0.0.1:0", MQTTSAddr: "-", HTTPAddr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0"})
	err := hub.Run(failCtx(t), hub.Config{DataDir: t.TempDir(), MQTTAddr: "127.0.0.1:0", MQTTSAddr: "-", HTTPAddr: "127.0.0.1:0", MetricsAddr: h.info.MetricsAddr})
	if err == nil || !strings.Contains(err.Error(), "--metrics") {
		t.Fatalf("metrics port taken: %v", err)
	}
}

// failCtx bounds a hub.Run that a test expects to fail at start.
func failCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}
