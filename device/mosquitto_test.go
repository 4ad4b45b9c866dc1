package device_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

// The interop tests run the device against a real mosquitto: they are
// required in CI (testutil fails rather than skips when CI=true).

func pingHandler(d *device.Device) {
	d.Handle("ping", func(context.Context, *device.Command) (any, error) { return map[string]any{"pong": true}, nil })
}

func TestMosquittoPassword(t *testing.T) {
	m := testutil.StartMosquitto(t, testutil.MosquittoOptions{Username: "device", Password: "s3cret-pw"})
	cfg := testConfig(t, m.Addr)
	cfg.Username, cfg.Password = "device", "s3cret-pw"
	d := startDevice(t, cfg, pingHandler, device.WithKeepAlive(time.Second))

	cloudOpts := testutil.ClientOptions(m.Addr).SetUsername("device").SetPassword("s3cret-pw")
	check := func(id string) {
		t.Helper()
		c := testutil.ConnectWith(t, cloudOpts)
		cl := &cloud{t: t, c: c, hw: testHW, ch: testCH,
			responses: testutil.Subscribe(t, c, fromTopic(testHW, testCH, mqttapi.KindCommandResponses))}
		cl.send(id, "ping", nil)
		if r, _ := cl.final(); r.State != mqttapi.StateCompleted {
			t.Fatalf("response = %+v", r)
		}
	}
	check("m-1")

	// A real broker restart: the device reconnects and resubscribes.
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	m.Stop()
	if err := d.WaitState(ctx, device.StateDisconnected); err != nil {
		t.Fatal(err)
	}
	m.Start()
	if err := d.WaitState(ctx, device.StateConnected); err != nil {
		t.Fatal(err)
	}
	check("m-2")
}

func TestMosquittoWrongPasswordIsRetriedWithHint(t *testing.T) {
	m := testutil.StartMosquitto(t, testutil.MosquittoOptions{Username: "device", Password: "right"})
	cfg := testConfig(t, m.Addr)
	cfg.Username, cfg.Password = "device", "wrong-password-value"
	logs := &testutil.SyncBuffer{}
	d, err := device.New(cfg, device.WithBackoff(5*time.Millisecond, 10*time.Millisecond), device.WithLogger(logs.Logger()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	if !logs.WaitFor("generate a new communication config", waitLimit) {
		t.Fatalf("no hint about credentials in the log:\n%s", logs.String())
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "wrong-password-value") {
		t.Fatal("the password appeared in the log")
	}
}

func TestMosquittoTLSClientCertificate(t *testing.T) {
	pki := testutil.NewPKI(t)
	for _, tt := range []struct {
		name      string
		wrongHost bool
		strict    bool
		wantOK    bool
	}{
		{"chain and host valid", false, false, true},
		{"host name not checked by default", true, false, true},
		{"strict mode checks the host name", true, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := testutil.StartMosquitto(t, testutil.MosquittoOptions{TLS: pki, WrongHostCert: tt.wrongHost})
			host, port, _ := net.SplitHostPort(m.TLSAddr)
			p, _ := strconv.Atoi(port)
			cert, key := pki.IssueClient(t, testHW)
			cfg := &commconfig.Config{Version: commconfig.Version3, HardwareID: testHW, ChannelID: testCH,
				Host: host, Port: p, Protocol: commconfig.ProtocolMQTTS,
				CACert: string(pki.CACertPEM), ClientCert: string(cert), ClientKey: string(key)}
			var opts []device.Option
			if tt.strict {
				opts = append(opts, device.WithStrictTLS())
			}
			if !tt.wantOK {
				logs := &testutil.SyncBuffer{}
				d, err := device.New(cfg, append(opts, device.WithBackoff(5*time.Millisecond, 10*time.Millisecond), device.WithLogger(logs.Logger()))...)
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				errc := make(chan error, 1)
				go func() { errc <- d.Run(ctx) }()
				if !logs.WaitFor("cannot connect to broker", waitLimit) {
					t.Fatalf("strict TLS connected to a broker with a wrong host name:\n%s", logs.String())
				}
				cancel()
				<-errc
				if d.State() == device.StateConnected {
					t.Fatal("connected")
				}
				return
			}
			startDevice(t, cfg, pingHandler, opts...)
			// Check the device really talks through the TLS listener.
			cloudTLS := pki.ClientTLSConfig(t, "cloud")
			if tt.wrongHost {
				cloudTLS.ServerName = testutil.WrongHostName
			}
			c := testutil.ConnectWith(t, testutil.ClientOptions("ssl://"+m.TLSAddr).SetTLSConfig(cloudTLS))
			cl := &cloud{t: t, c: c, hw: testHW, ch: testCH,
				responses: testutil.Subscribe(t, c, fromTopic(testHW, testCH, mqttapi.KindCommandResponses))}
			cl.send("tls-1", "ping", nil)
			if r, _ := cl.final(); r.State != mqttapi.StateCompleted {
				t.Fatalf("response = %+v", r)
			}
		})
	}
}
