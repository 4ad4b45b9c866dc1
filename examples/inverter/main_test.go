package main_test

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

// These tests build the example and run it as a user would: only
// ENAPTER_STANDALONE_COMMUNICATION_CONFIG set, against a real mosquitto.

const waitLimit = 20 * time.Second

func buildInverter(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "inverter")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestInverterAgainstMosquitto(t *testing.T) {
	bin := buildInverter(t)
	pki := testutil.NewPKI(t)
	// Enapter's MQTTS uses the client certificate alone, so each mode gets
	// its own broker: one that wants a password, one that wants a certificate.
	withPassword := testutil.StartMosquitto(t, testutil.MosquittoOptions{Username: "inv", Password: "pw-123"})
	withTLS := testutil.StartMosquitto(t, testutil.MosquittoOptions{TLS: pki})

	plainHost, plainPort := splitAddr(t, withPassword.Addr)
	tlsHost, tlsPort := splitAddr(t, withTLS.TLSAddr)
	cert, key := pki.IssueClient(t, "inverter")
	for _, tt := range []struct {
		name  string
		cfg   commconfig.Config
		cloud *mqtt.ClientOptions
	}{
		{"MQTT with user and password", commconfig.Config{Version: commconfig.Version3, HardwareID: "inv-plain", ChannelID: "primary",
			Host: plainHost, Port: plainPort, Protocol: commconfig.ProtocolMQTT, Username: "inv", Password: "pw-123"},
			testutil.ClientOptions(withPassword.Addr).SetUsername("inv").SetPassword("pw-123")},
		{"MQTTS with a client certificate", commconfig.Config{Version: commconfig.Version3, HardwareID: "inv-tls", ChannelID: "primary",
			Host: tlsHost, Port: tlsPort, Protocol: commconfig.ProtocolMQTTS,
			CACert: string(pki.CACertPEM), ClientCert: string(cert), ClientKey: string(key)},
			testutil.ClientOptions(withTLS.Addr)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			blob, err := tt.cfg.Encode()
			if err != nil {
				t.Fatal(err)
			}
			cloud := testutil.ConnectWith(t, tt.cloud)
			hw := tt.cfg.HardwareID
			props := testutil.Subscribe(t, cloud, "v1/from/"+hw+"/primary/v1/properties")
			telemetry := testutil.Subscribe(t, cloud, "v1/from/"+hw+"/primary/v1/telemetry")
			responses := testutil.Subscribe(t, cloud, "v1/from/"+hw+"/primary/v1/command/responses")

			stderr := &testutil.SyncBuffer{}
			cmd := exec.Command(bin)
			cmd.Env = append(os.Environ(), commconfig.EnvConfig+"="+blob, "ENAPTER_LOG_LEVEL=debug")
			cmd.Stderr = stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
				if t.Failed() {
					t.Logf("inverter log:\n%s", stderr)
				}
			})

			p := decode(t, testutil.Receive(t, props), mqttapi.DecodeProperties)
			if p.Values["vendor"] == nil || p.Values["model"] == nil || p.Values["serial_number"] == nil {
				t.Fatalf("properties = %v", p.Values)
			}
			send := func(id, name string, args map[string]any) {
				b, _ := json.Marshal(map[string]any{"id": id, "name": name, "arguments": args})
				if err := testutil.Wait(cloud.Publish("v1/to/"+hw+"/primary/v1/command/requests", 1, false, b)); err != nil {
					t.Fatal(err)
				}
			}
			next := func() mqttapi.CommandResponse {
				return decode(t, testutil.Receive(t, responses), mqttapi.DecodeCommandResponse)
			}

			send("1", "set_power", map[string]any{"power": 4700})
			if r := next(); r.ID != "1" || r.State != mqttapi.StateCompleted || string(r.Payload) != `{"new_power":4700}` {
				t.Fatalf("set_power response = %+v %s", r, r.Payload)
			}
			// Later telemetry reports the new power.
			for {
				tm := decode(t, testutil.Receive(t, telemetry), mqttapi.DecodeTelemetry)
				if tm.Values["power"] == 4700.0 {
					if tm.Values["status"] == nil || tm.Values["voltage"] == nil {
						t.Fatalf("telemetry lacks status or voltage: %v", tm.Values)
					}
					break
				}
			}

			for i, bad := range []struct {
				args map[string]any
				want string
			}{
				{map[string]any{}, `argument "power" of set_power is required`},
				{map[string]any{"power": "abc"}, `argument "power" of set_power must be a float (a number), not the string "abc"`},
				{map[string]any{"power": 10001}, `argument "power" of set_power must be at most 10000 (max), not 10001`},
				{map[string]any{"power": -1}, `argument "power" of set_power must be at least 0 (min), not -1`},
			} {
				id := "bad-" + strconv.Itoa(i)
				send(id, "set_power", bad.args)
				if r := next(); r.ID != id || r.State != mqttapi.StateError || !strings.Contains(r.Message(), bad.want) {
					t.Fatalf("set_power %v: response %s, want error containing %q", bad.args, r.Payload, bad.want)
				}
			}
			send("unknown", "self_destruct", nil)
			if r := next(); r.State != mqttapi.StateError || !strings.Contains(r.Message(), "unknown command") {
				t.Fatalf("unknown command response: %s", r.Payload)
			}

			send("ramp", "ramp_power", map[string]any{"power": 2700, "step_seconds": 0})
			var logs int
			for {
				r := next()
				if r.State == mqttapi.StateLog {
					logs++
					continue
				}
				if r.State != mqttapi.StateCompleted || string(r.Payload) != `{"new_power":2700}` || logs != 2 {
					t.Fatalf("ramp_power final %s after %d log responses, want completed 2700 after 2", r.Payload, logs)
				}
				break
			}

			// Ctrl-C: a clean stop, exit status 0.
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				exited <- err
				if err != nil {
					t.Fatalf("exit after SIGINT: %v", err)
				}
			case <-time.After(waitLimit):
				t.Fatal("no exit after SIGINT")
			}
			if strings.Contains(stderr.String(), "pw-123") || strings.Contains(stderr.String(), "PRIVATE KEY") {
				t.Fatal("a secret appeared in the log")
			}
		})
	}
}

func decode[T any](t *testing.T, m mqtt.Message, fn func([]byte) (T, error)) T {
	t.Helper()
	v, err := fn(m.Payload())
	if err != nil {
		t.Fatalf("%s: %v", m.Payload(), err)
	}
	return v
}

func splitAddr(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return host, p
}
