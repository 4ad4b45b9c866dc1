package hub_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/hub"
	"github.com/edk-go/edk/internal/testutil"
)

// secretLogs is a hub's log at debug level, written twice: by slog's text
// handler and by its JSON handler, which encode values (byte slices above
// all) differently.
type secretLogs struct {
	text, json testutil.SyncBuffer
}

func (l *secretLogs) logger() *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelDebug}
	return slog.New(slog.NewMultiHandler(slog.NewTextHandler(&l.text, opts), slog.NewJSONHandler(&l.json, opts)))
}

// startHubLogging is startHubWith with the caller's logger (startHubWith
// keeps the log to itself).
func startHubLogging(t testing.TB, cfg hub.Config, logger *slog.Logger) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan hub.Info, 1)
	r := &running{cancel: cancel, done: make(chan error, 1)}
	cfg.Logger, cfg.Ready = logger, func(i hub.Info) { ready <- i }
	go func() { r.done <- hub.Run(ctx, cfg) }()
	select {
	case r.info = <-ready:
	case err := <-r.done:
		t.Fatalf("hub did not start: %v", err)
	case <-time.After(waitLimit):
		t.Fatal("hub did not start")
	}
	t.Cleanup(func() { r.stop(t) })
	return r
}

// secretForms returns the ways a secret could show up in a log: as it is,
// as a byte slice printed by fmt ("[104 117 …]", what slog's text handler
// makes of a []byte inside a struct), and in base64 (what encoding/json,
// and so slog's JSON handler, makes of a []byte).
func secretForms(secret string) []string {
	b := []byte(secret)
	return []string{
		secret,
		strings.Trim(fmt.Sprint(b), "[]"),
		base64.StdEncoding.EncodeToString(b),
		base64.RawURLEncoding.EncodeToString(b),
	}
}

// pemBody returns the base64 lines of a PEM block: a logged key would show
// them even without its BEGIN/END lines.
func pemBody(p string) []string {
	var lines []string
	for line := range strings.Lines(p) {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "-----") {
			lines = append(lines, line)
		}
	}
	return lines
}

// secretSet collects secrets by name and reports where they leak.
type secretSet map[string][]string

func (s secretSet) add(name, secret string) {
	if secret == "" {
		panic("empty secret " + name) // a test mistake: an empty string is in every text
	}
	s[name] = append(s[name], secretForms(secret)...)
}

func (s secretSet) addPEM(name, pem string) { s[name] = append(s[name], pemBody(pem)...) }

// leaks describes every secret found in text, and a PEM private key marker.
func (s secretSet) leaks(where, text string) []string {
	var out []string
	if strings.Contains(text, "PRIVATE KEY") {
		out = append(out, where+" holds a PEM private key marker")
	}
	for name, forms := range s {
		for _, f := range forms {
			if i := strings.Index(text, f); i >= 0 {
				out = append(out, fmt.Sprintf("%s holds the %s (as %q) near: %q", where, name, f, text[max(0, i-120):min(len(text), i+len(f)+40)]))
				break
			}
		}
	}
	return out
}

// check fails the test for every leak in text.
func (s secretSet) check(t *testing.T, where, text string) {
	t.Helper()
	for _, l := range s.leaks(where, text) {
		t.Error(l)
	}
}

// generate issues new credentials for a device and returns the blob
// exactly as the API answered it, with the config it holds.
func generate(t *testing.T, h *running, id string, protocol commconfig.Protocol) (string, *commconfig.Config) {
	t.Helper()
	var gen struct {
		Blob string `json:"blob"`
	}
	if code := h.call(t, "POST", "/v3/devices/"+id+"/generate_config", map[string]any{"protocol": protocol}, &gen); code != http.StatusOK {
		t.Fatalf("generate_config %s: %d", protocol, code)
	}
	cfg, err := commconfig.Parse(gen.Blob)
	if err != nil {
		t.Fatal(err)
	}
	return gen.Blob, cfg
}

// rawAPI makes one request with the given token header (none when empty)
// and returns the status and body.
func rawAPI(t *testing.T, h *running, method, path, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, h.info.HTTPURL+path, strings.NewReader(`{"protocol": "MQTT"}`))
	if token != "" {
		req.Header.Set("X-Enapter-Auth-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// refused connects with opts and fails the test unless the broker refuses.
func refused(t *testing.T, what string, opts *mqtt.ClientOptions) {
	t.Helper()
	c := mqtt.NewClient(opts)
	if err := testutil.Wait(c.Connect()); err == nil {
		c.Disconnect(0)
		t.Fatalf("%s: accepted", what)
	}
}

// TestNoSecretsInLogs runs a hub with a debug-level log and has it
// authenticate and refuse devices (MQTT and MQTTS), an admin and API
// clients, rotate credentials and refuse to start on a loose key or token;
// then no password, token, private key or communication config may be in
// its log (text or JSON), in an API error body or in an error it returned.
func TestNoSecretsInLogs(t *testing.T) {
	const adminUser, adminPassword = "site-admin", "admin-Pa55-word-never-logged"
	dir := t.TempDir()
	var logs secretLogs
	h := startHubLogging(t, hub.Config{DataDir: dir, MQTTAddr: "127.0.0.1:0", MQTTSAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		AdminUser: adminUser, AdminPassword: adminPassword}, logs.logger())
	secrets := secretSet{}
	secrets.add("API token", h.info.Token)
	secrets.add("admin password", adminPassword)
	caKey, err := os.ReadFile(filepath.Join(dir, "ca", "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	secrets.addPEM("CA private key", string(caKey))

	// Devices over MQTT and MQTTS; each config is generated twice, so the
	// devices run on rotated credentials and the first ones are refused.
	mqttID, oldMQTT := h.provision(t, "secret-mqtt", commconfig.ProtocolMQTT)
	mqttsID, oldMQTTS := h.provision(t, "secret-mqtts", commconfig.ProtocolMQTTS)
	mqttBlob, mqttCfg := generate(t, h, mqttID, commconfig.ProtocolMQTT)
	mqttsBlob, mqttsCfg := generate(t, h, mqttsID, commconfig.ProtocolMQTTS)
	secrets.add("device password", mqttCfg.Password)
	secrets.add("rotated device password", oldMQTT.Password)
	secrets.add("MQTT config blob", mqttBlob)
	secrets.add("MQTTS config blob", mqttsBlob)
	secrets.addPEM("device private key", mqttsCfg.ClientKey)
	secrets.addPEM("rotated device private key", oldMQTTS.ClientKey)
	runInverter(t, mqttCfg)
	runInverter(t, mqttsCfg)

	mqttOpts := func(user, pass string) *mqtt.ClientOptions {
		return testutil.ClientOptions(h.info.MQTTAddr).SetUsername(user).SetPassword(pass)
	}
	refused(t, "wrong password", mqttOpts(mqttCfg.Username, "wrong-"+mqttCfg.Password))
	refused(t, "rotated password", mqttOpts(oldMQTT.Username, oldMQTT.Password))
	refused(t, "device password under an unknown user", mqttOpts("nobody", mqttCfg.Password))
	refused(t, "admin password under a device's user", mqttOpts(mqttCfg.Username, adminPassword))
	refused(t, "wrong admin password", mqttOpts(adminUser, adminPassword+"x"))
	refused(t, "no credentials", testutil.ClientOptions(h.info.MQTTAddr))
	oldTLS, err := oldMQTTS.TLSConfig(false)
	if err != nil {
		t.Fatal(err)
	}
	refused(t, "rotated client certificate", testutil.ClientOptions("ssl://"+h.info.MQTTSAddr).SetTLSConfig(oldTLS))

	// The admin gets in and sees the devices' traffic.
	admin := testutil.ConnectWith(t, mqttOpts(adminUser, adminPassword))
	testutil.Receive(t, testutil.Subscribe(t, admin, "v1/from/"+mqttCfg.HardwareID+"/#"))

	// The API: wrong tokens, the token in a URL, an error with the right token.
	var bodies []string
	for _, c := range []struct {
		what, method, path, token string
		want                      int
	}{
		{"wrong token", "GET", "/v3/devices", "wrong-" + h.info.Token, http.StatusUnauthorized},
		{"no token", "POST", "/v3/devices/" + mqttID + "/generate_config", "", http.StatusUnauthorized},
		{"token in the query of a plain request", "GET", "/v3/devices?token=" + url.QueryEscape(h.info.Token), "", http.StatusUnauthorized},
		{"unknown device", "POST", "/v3/devices/no-such-device/generate_config", h.info.Token, http.StatusNotFound},
	} {
		code, body := rawAPI(t, h, c.method, c.path, c.token)
		if code != c.want {
			t.Errorf("%s: %d %s, want %d", c.what, code, body, c.want)
		}
		bodies = append(bodies, c.what+": "+body)
	}
	wsURL := "ws://" + h.info.HTTPAddr + "/v3/devices/" + mqttID + "/telemetry?token="
	ws, resp, err := websocket.DefaultDialer.Dial(wsURL+url.QueryEscape("wrong-"+h.info.Token), nil)
	if err == nil {
		ws.Close()
		t.Fatal("WebSocket with a wrong token accepted")
	}
	if resp != nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		bodies = append(bodies, "WebSocket with a wrong token: "+string(b))
	}
	ws, _, err = websocket.DefaultDialer.Dial(wsURL+url.QueryEscape(h.info.Token), nil)
	if err != nil {
		t.Fatalf("WebSocket with the token in its URL: %v", err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(waitLimit))
	if _, _, err := ws.ReadMessage(); err != nil {
		t.Fatalf("WebSocket stream: %v", err)
	}
	ws.Close()
	h.stop(t) // the shutdown lines count too

	// A token or CA key that others may read stops the hub at start; the
	// error names the file, never its content.
	var startErrs []string
	for _, f := range []string{filepath.Join(dir, "api-token"), filepath.Join(dir, "ca", "ca-key.pem")} {
		if err := os.Chmod(f, 0o644); err != nil {
			t.Fatal(err)
		}
		err := hub.Run(failCtx(t), hub.Config{DataDir: dir, MQTTAddr: "127.0.0.1:0", MQTTSAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
			AdminUser: adminUser, AdminPassword: adminPassword, Logger: logs.logger()})
		if err == nil || !strings.Contains(err.Error(), "chmod 600 "+f) {
			t.Errorf("start with %s readable by others: %v", f, err)
		} else {
			startErrs = append(startErrs, err.Error())
		}
		if err := os.Chmod(f, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	text, js := logs.text.String(), logs.json.String()
	// The log is worth checking only if it saw what happened.
	for _, want := range []string{"mqtt device authenticated", "mqtt connection refused", "access=admin", "not (or no longer) issued", "api: stream opened"} {
		if !strings.Contains(text, want) {
			t.Errorf("the hub's log lacks %q: the test did not exercise what it means to", want)
		}
	}
	secrets.check(t, "the hub's text log", text)
	secrets.check(t, "the hub's JSON log", js)
	secrets.check(t, "API error bodies", strings.Join(bodies, "\n"))
	secrets.check(t, "start-up errors", strings.Join(startErrs, "\n"))
	if t.Failed() {
		t.Logf("hub log:\n%s", text)
	}
}

// TestNoSecretsInLogsSecondConnect sends a second CONNECT packet on an
// established MQTT connection, a protocol violation that mochi (the
// embedded broker) logs at Warn with the whole packet: username and
// password included, printed as byte slices. hub/broker's log handler
// replaces packets with their type and topic (redactPackets).
func TestNoSecretsInLogsSecondConnect(t *testing.T) {
	const adminUser, adminPassword = "site-admin", "admin-Pa55-word-never-logged"
	var logs secretLogs
	h := startHubLogging(t, hub.Config{DataDir: t.TempDir(), MQTTAddr: "127.0.0.1:0", MQTTSAddr: "-", HTTPAddr: "127.0.0.1:0",
		AdminUser: adminUser, AdminPassword: adminPassword}, logs.logger())
	secrets := secretSet{}
	secrets.add("admin password", adminPassword)

	conn, err := net.DialTimeout("tcp", h.info.MQTTAddr, waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitLimit))
	connect := connectPacket("second-connect", adminUser, adminPassword)
	if _, err := conn.Write(connect); err != nil {
		t.Fatal(err)
	}
	connack := make([]byte, 4)
	if _, err := io.ReadFull(conn, connack); err != nil || connack[0] != 0x20 || connack[3] != 0 {
		t.Fatalf("CONNACK % x: %v", connack, err)
	}
	if _, err := conn.Write(connect); err != nil {
		t.Fatal(err)
	}
	// The broker closes the connection after the violation.
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatalf("after the second CONNECT: %v", err)
	}
	h.stop(t)

	leaks := append(secrets.leaks("the hub's text log", logs.text.String()), secrets.leaks("the hub's JSON log", logs.json.String())...)
	if len(leaks) > 0 {
		t.Errorf("secrets in the log after a second CONNECT:\n%s", strings.Join(leaks, "\n"))
	}
}

// connectPacket is an MQTT 3.1.1 CONNECT with a clean session, a username
// and a password.
func connectPacket(clientID, user, password string) []byte {
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	body := append(str("MQTT"), 4, 0xC2, 0, 30) // level 4, flags: username, password, clean session; keepalive 30 s
	body = append(body, str(clientID)...)
	body = append(body, str(user)...)
	body = append(body, str(password)...)
	return append([]byte{0x10, byte(len(body))}, body...)
}
