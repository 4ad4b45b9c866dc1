package auth_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"go.uber.org/goleak"

	"github.com/edk-go/edk/hub/auth"
	"github.com/edk-go/edk/hub/broker"
	"github.com/edk-go/edk/hub/ca"
	"github.com/edk-go/edk/hub/store"
	"github.com/edk-go/edk/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	adminUser = "hub-admin"
	adminPass = "admin-secret-4711"
	subackNo  = 0x80
	waitLimit = 10 * time.Second
)

// device is a provisioned test device with a password and a certificate.
type device struct {
	hw, user, pass string
	tls            *tls.Config // client config presenting the device certificate
}

type env struct {
	t      *testing.T
	store  *store.Store
	ca     *ca.CA
	broker *broker.Broker
	log    *testutil.SyncBuffer
	gone   *disconnects
	seq    int
}

// disconnects is a mochi hook that reports the client id of every
// connection the broker has finished with. mochi publishes a will before it
// calls OnDisconnect, on the same goroutine, so once a client id is reported
// here its will, if any, has been delivered.
type disconnects struct {
	mqtt.HookBase
	ids chan string
}

func (*disconnects) ID() string           { return "test-disconnects" }
func (*disconnects) Provides(b byte) bool { return b == mqtt.OnDisconnect }
func (d *disconnects) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	select {
	case d.ids <- cl.ID:
	default: // nobody waits for this one
	}
}

// waitGone waits until the broker has finished with the connection of id.
func (e *env) waitGone(id string) {
	e.t.Helper()
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	for {
		select {
		case got := <-e.gone.ids:
			if got == id {
				return
			}
		case <-timer.C:
			e.t.Fatalf("the broker never noticed that %s was gone", id)
		}
	}
}

func newEnv(t *testing.T, opts auth.Options) *env {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "hub.db"), store.Options{PasswordIterations: 1000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	authority, err := ca.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := authority.ServerTLSConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := new(testutil.SyncBuffer)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", buf.String())
		}
	})
	opts.Logger = buf.Logger()
	if opts.Admin == nil {
		opts.Admin = auth.AdminPassword(adminUser, adminPass)
	}
	gone := &disconnects{ids: make(chan string, 64)}
	b, err := broker.Start(ctx, broker.Config{
		Addr:      "127.0.0.1:0",
		TLSAddr:   "127.0.0.1:0",
		TLSConfig: tlsCfg,
		Logger:    buf.Logger(),
		Hooks:     []mqtt.Hook{auth.New(st, opts), gone},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return &env{t: t, store: st, ca: authority, broker: b, log: buf, gone: gone}
}

// provision creates a device with a password and a client certificate.
func (e *env) provision(hw string) device {
	e.t.Helper()
	ctx := context.Background()
	e.seq++
	d, err := e.store.CreateDevice(ctx, store.NewDevice{
		Name: "dev " + hw, Slug: fmt.Sprintf("dev-%d", e.seq), HardwareID: hw, ChannelID: "ch",
	})
	if err != nil {
		e.t.Fatal(err)
	}
	dev := device{hw: hw, user: "user-" + hw, pass: "pass-" + hw + "-secret"}
	if err := e.store.SetPassword(ctx, d.ID, dev.user, dev.pass); err != nil {
		e.t.Fatal(err)
	}
	certPEM, keyPEM, fp, err := e.ca.IssueDevice(hw)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.SetCertFingerprint(ctx, d.ID, fp); err != nil {
		e.t.Fatal(err)
	}
	dev.tls = clientTLS(e.t, e.ca, certPEM, keyPEM)
	return dev
}

func clientTLS(t *testing.T, c *ca.CA, certPEM, keyPEM []byte) *tls.Config {
	t.Helper()
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{RootCAs: c.Pool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
}

func (e *env) opts(user, pass string) *paho.ClientOptions {
	o := testutil.ClientOptions(e.broker.Addr())
	if user != "" {
		o.SetUsername(user).SetPassword(pass)
	}
	return o
}

func (e *env) tlsOpts(cfg *tls.Config) *paho.ClientOptions {
	return testutil.ClientOptions("ssl://" + e.broker.TLSAddr()).SetTLSConfig(cfg)
}

// connect connects with opts and returns the client or the refusal.
func connect(t *testing.T, opts *paho.ClientOptions) (paho.Client, error) {
	t.Helper()
	c := paho.NewClient(opts)
	if err := testutil.Wait(c.Connect()); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

func mustRefuse(t *testing.T, what string, opts *paho.ClientOptions) {
	t.Helper()
	if c, err := connect(t, opts); err == nil {
		c.Disconnect(0)
		t.Fatalf("%s: connected, want refused", what)
	}
}

// subscribe returns the SUBACK code for filter (0x80: refused) and, when
// granted, the channel of received messages.
func subscribe(t *testing.T, c paho.Client, filter string) (byte, <-chan paho.Message) {
	t.Helper()
	msgs := make(chan paho.Message, 64)
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		select {
		case msgs <- m:
		case <-done:
		}
	})
	if err := testutil.Wait(tok); err != nil {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
	// One filter, one code. (paho keys the result of "$share/g/f" as "f".)
	res := tok.(*paho.SubscribeToken).Result()
	if len(res) != 1 {
		t.Fatalf("subscribe %s: result %v", filter, res)
	}
	for _, code := range res {
		return code, msgs
	}
	panic("unreachable")
}

func publish(t *testing.T, c paho.Client, topic, payload string) {
	t.Helper()
	if err := testutil.Wait(c.Publish(topic, 0, false, payload)); err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
}

// receive returns the next message's topic and payload.
func receive(t *testing.T, msgs <-chan paho.Message) (topic, payload string) {
	t.Helper()
	m := testutil.Receive(t, msgs)
	return m.Topic(), string(m.Payload())
}

func (e *env) noSecretsLogged(devs ...device) {
	e.t.Helper()
	logs := e.log.String()
	for _, d := range devs {
		if strings.Contains(logs, d.pass) {
			e.t.Errorf("log contains the password of %s", d.hw)
		}
	}
	if strings.Contains(logs, adminPass) {
		e.t.Error("log contains the admin password")
	}
}

func TestPasswordAuthentication(t *testing.T) {
	e := newEnv(t, auth.Options{})
	a := e.provision("HWA")

	if _, err := connect(t, e.opts(a.user, a.pass)); err != nil {
		t.Fatalf("right password refused: %v", err)
	}
	mustRefuse(t, "wrong password", e.opts(a.user, "wrong-"+a.pass))
	mustRefuse(t, "unknown user", e.opts("nobody", a.pass))
	mustRefuse(t, "empty password", e.opts(a.user, ""))
	mustRefuse(t, "anonymous", e.opts("", ""))
	mustRefuse(t, "admin user, device password", e.opts(adminUser, a.pass))
	if !e.log.WaitFor("mqtt connection refused", waitLimit) {
		t.Error("refusals not logged")
	}
	e.noSecretsLogged(a)
}

func TestAnonymous(t *testing.T) {
	t.Run("refused by default", func(t *testing.T) {
		e := newEnv(t, auth.Options{})
		mustRefuse(t, "anonymous", e.opts("", ""))
		if strings.Contains(e.log.String(), "anonymous clients are allowed") {
			t.Error("anonymous warning logged without AllowAnonymous")
		}
	})
	t.Run("allowed", func(t *testing.T) {
		e := newEnv(t, auth.Options{AllowAnonymous: true})
		if !strings.Contains(e.log.String(), "anonymous clients are allowed") {
			t.Error("no warning at start")
		}
		c, err := connect(t, e.opts("", ""))
		if err != nil {
			t.Fatalf("anonymous refused: %v", err)
		}
		code, msgs := subscribe(t, c, "#")
		if code == subackNo {
			t.Fatal("anonymous subscription to # refused")
		}
		publish(t, c, "v1/from/ANY/ch/v1/telemetry", "x")
		if topic, _ := receive(t, msgs); topic != "v1/from/ANY/ch/v1/telemetry" {
			t.Fatalf("got %s", topic)
		}
		a := e.provision("HWA")
		mustRefuse(t, "wrong password despite AllowAnonymous", e.opts(a.user, "wrong"))
	})
}

func TestAdmin(t *testing.T) {
	e := newEnv(t, auth.Options{})
	a := e.provision("HWA")
	admin, err := connect(t, e.opts(adminUser, adminPass))
	if err != nil {
		t.Fatalf("admin refused: %v", err)
	}
	code, msgs := subscribe(t, admin, "#")
	if code == subackNo {
		t.Fatal("admin subscription to # refused")
	}
	dev, err := connect(t, e.opts(a.user, a.pass))
	if err != nil {
		t.Fatal(err)
	}
	_, cmds := subscribe(t, dev, "v1/to/HWA/#")
	publish(t, admin, "v1/to/HWA/ch/v1/command/requests", "cmd")
	if topic, _ := receive(t, cmds); topic != "v1/to/HWA/ch/v1/command/requests" {
		t.Fatalf("device got %s", topic)
	}
	if topic, _ := receive(t, msgs); topic != "v1/to/HWA/ch/v1/command/requests" {
		t.Fatalf("admin got %s", topic)
	}
	mustRefuse(t, "admin with wrong password", e.opts(adminUser, "nope"))
	e.noSecretsLogged(a)
}

func TestCertificateAuthentication(t *testing.T) {
	e := newEnv(t, auth.Options{})
	a := e.provision("HWA")
	admin, err := connect(t, e.opts(adminUser, adminPass))
	if err != nil {
		t.Fatal(err)
	}
	_, seen := subscribe(t, admin, "v1/#")

	dev, err := connect(t, e.tlsOpts(a.tls))
	if err != nil {
		t.Fatalf("device certificate refused: %v", err)
	}
	// The certificate makes the client device HWA, with HWA's ACL.
	if code, _ := subscribe(t, dev, "v1/to/HWB/#"); code != subackNo {
		t.Errorf("certificate client subscribed to another device's commands: code %#x", code)
	}
	if code, _ := subscribe(t, dev, "v1/to/HWA/#"); code == subackNo {
		t.Error("certificate client refused its own commands")
	}
	publish(t, dev, "v1/from/HWB/ch/v1/telemetry", "forged")
	publish(t, dev, "v1/from/HWA/ch/v1/telemetry", "own")
	if topic, payload := receive(t, seen); topic != "v1/from/HWA/ch/v1/telemetry" || payload != "own" {
		t.Fatalf("admin got %s %q, want only the device's own telemetry", topic, payload)
	}

	// A certificate of the hub's CA that the store does not know (revoked,
	// or never recorded) is refused.
	certPEM, keyPEM, _, err := e.ca.IssueDevice("HWA")
	if err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, "unrecorded certificate", e.tlsOpts(clientTLS(t, e.ca, certPEM, keyPEM)))
	// ...unless the password is right.
	if _, err := connect(t, e.tlsOpts(clientTLS(t, e.ca, certPEM, keyPEM)).SetUsername(a.user).SetPassword(a.pass)); err != nil {
		t.Errorf("unrecorded certificate with the right password refused: %v", err)
	}
	mustRefuse(t, "unrecorded certificate, wrong password",
		e.tlsOpts(clientTLS(t, e.ca, certPEM, keyPEM)).SetUsername(a.user).SetPassword("wrong"))
}

func TestACL(t *testing.T) {
	e := newEnv(t, auth.Options{})
	a, b := e.provision("HWA"), e.provision("HWB")
	admin, err := connect(t, e.opts(adminUser, adminPass))
	if err != nil {
		t.Fatal(err)
	}
	_, seen := subscribe(t, admin, "v1/#")
	clA, err := connect(t, e.opts(a.user, a.pass))
	if err != nil {
		t.Fatal(err)
	}
	cb, err := connect(t, e.opts(b.user, b.pass))
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		filter string
		ok     bool
	}{
		{"v1/to/HWA/#", true},
		{"v1/to/HWA/ch/v1/command/requests", true},
		{"v1/to/HWA/+/v1/command/requests", true},
		{"v1/to/HWB/#", false},
		{"v1/to/HWB/ch/v1/command/requests", false},
		{"v1/to/#", false},
		{"v1/to/+/#", false},
		{"v1/+/HWA/#", false},
		{"v1/to/HWA", false},
		{"v1/from/HWA/#", false},
		{"#", false},
		{"$SYS/#", false},
		{"$share/g/v1/to/HWA/#", false},
	} {
		code, _ := subscribe(t, clA, tc.filter)
		if got := code != subackNo; got != tc.ok {
			t.Errorf("device HWA subscribe %s: granted=%v (code %#x), want %v", tc.filter, got, code, tc.ok)
		}
	}

	// A cannot publish as B: the denied messages are dropped, and the
	// allowed one published after them is the first the admin sees.
	publish(t, clA, "v1/from/HWB/ch/v1/telemetry", "forged")
	publish(t, clA, "v1/from/HWB/ch/v1/telemetry", "forged again")
	publish(t, clA, "v1/to/HWB/ch/v1/command/requests", "fake command")
	publish(t, clA, "v1/from/HWA/ch/v1/telemetry", "own")
	if topic, payload := receive(t, seen); topic != "v1/from/HWA/ch/v1/telemetry" || payload != "own" {
		t.Fatalf("admin got %s %q, want only A's own telemetry", topic, payload)
	}

	// B's commands reach B and not A; A's own commands reach A.
	_, cmdsA := subscribe(t, clA, "v1/to/HWA/#")
	_, cmdsB := subscribe(t, cb, "v1/to/HWB/#")
	publish(t, admin, "v1/to/HWB/ch/v1/command/requests", "for B")
	if err := e.broker.Publish("v1/to/HWA/ch/v1/command/requests", []byte("for A"), false, 0); err != nil {
		t.Fatal(err)
	}
	if topic, payload := receive(t, cmdsB); topic != "v1/to/HWB/ch/v1/command/requests" || payload != "for B" {
		t.Fatalf("B got %s %q", topic, payload)
	}
	if topic, payload := receive(t, cmdsA); topic != "v1/to/HWA/ch/v1/command/requests" || payload != "for A" {
		t.Fatalf("A got %s %q, want only its own command", topic, payload)
	}

	// Each denial is logged once per client and topic, with both ids.
	logs := e.log.String()
	if n := strings.Count(logs, "topic=v1/from/HWB/ch/v1/telemetry"); n != 1 {
		t.Errorf("denied publish logged %d times, want once:\n%s", n, logs)
	}
	for _, want := range []string{"hardware_id=HWA", "access=subscribe", "access=publish", "topic=v1/to/HWB/#"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	e.noSecretsLogged(a, b)
}

// TestPersistentSessionQueue checks that a device's persistent session keeps
// its identity while offline, so that commands queued for it are delivered
// when it reconnects.
func TestPersistentSessionQueue(t *testing.T) {
	e := newEnv(t, auth.Options{})
	a := e.provision("HWA")
	msgs := make(chan paho.Message, 8)
	opts := func() *paho.ClientOptions {
		return e.opts(a.user, a.pass).SetClientID("persistent-HWA").SetCleanSession(false).
			SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { msgs <- m })
	}
	c, err := connect(t, opts())
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := subscribe(t, c, "v1/to/HWA/#"); code == subackNo {
		t.Fatal("subscription refused")
	}
	c.Disconnect(100)

	admin, err := connect(t, e.opts(adminUser, adminPass))
	if err != nil {
		t.Fatal(err)
	}
	if err := testutil.Wait(admin.Publish("v1/to/HWA/ch/v1/command/requests", 1, false, "queued")); err != nil {
		t.Fatal(err)
	}
	if _, err := connect(t, opts()); err != nil {
		t.Fatal(err)
	}
	if topic, payload := receive(t, msgs); topic != "v1/to/HWA/ch/v1/command/requests" || payload != "queued" {
		t.Fatalf("got %s %q", topic, payload)
	}
}

func TestClientIDTakeOver(t *testing.T) {
	e := newEnv(t, auth.Options{})
	a, b := e.provision("HWA"), e.provision("HWB")
	ca, err := connect(t, e.opts(a.user, a.pass).SetClientID("shared-id"))
	if err != nil {
		t.Fatal(err)
	}
	// Another device may not knock A off by using its client id.
	mustRefuse(t, "another device taking over a client id", e.opts(b.user, b.pass).SetClientID("shared-id"))
	if !ca.IsConnectionOpen() {
		t.Fatal("device A was disconnected by B's attempt")
	}
	if !e.log.WaitFor("in use by another identity", waitLimit) {
		t.Error("refusal not explained in the log")
	}
	// The same device reconnecting before its old link is noticed dead may.
	ca2, err := connect(t, e.opts(a.user, a.pass).SetClientID("shared-id"))
	if err != nil {
		t.Fatalf("the same device taking over its own client id: %v", err)
	}
	// Once A's connection is gone, the id is free for others. mochi ends
	// the session on its own goroutine, so try until it has.
	ca2.Disconnect(250)
	testutil.Eventually(t, "the freed client id to be accepted", func() bool {
		_, err := connect(t, e.opts(b.user, b.pass).SetClientID("shared-id"))
		return err == nil
	})
}

// TestPersistentSessionTakeOver checks that another identity cannot take
// over a device's offline persistent session with its client id, and so
// receive the commands queued for the device.
func TestPersistentSessionTakeOver(t *testing.T) {
	e := newEnv(t, auth.Options{})
	a, b := e.provision("HWA"), e.provision("HWB")
	msgs := make(chan paho.Message, 8)
	opts := func(d device) *paho.ClientOptions {
		return e.opts(d.user, d.pass).SetClientID("persistent-HWA").SetCleanSession(false).
			SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { msgs <- m })
	}
	c, err := connect(t, opts(a))
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := subscribe(t, c, "v1/to/HWA/#"); code == subackNo {
		t.Fatal("subscription refused")
	}
	c.Disconnect(100)
	e.waitGone("persistent-HWA")

	admin, err := connect(t, e.opts(adminUser, adminPass))
	if err != nil {
		t.Fatal(err)
	}
	if err := testutil.Wait(admin.Publish("v1/to/HWA/ch/v1/command/requests", 1, false, "queued for A")); err != nil {
		t.Fatal(err)
	}
	// B, with its own valid credentials, asks for A's session: refused,
	// persistent or clean (a clean session would throw A's queue away).
	for _, clean := range []bool{false, true} {
		if thief, err := connect(t, opts(b).SetCleanSession(clean)); err == nil {
			select {
			case m := <-msgs:
				t.Errorf("B received A's queued %s %q", m.Topic(), m.Payload())
			default:
			}
			thief.Disconnect(100)
			e.waitGone("persistent-HWA")
			t.Fatalf("B took over A's persistent session (clean session %v)", clean)
		}
	}
	if !e.log.WaitFor("belongs to another identity's persistent session", waitLimit) {
		t.Error("refusal not explained in the log")
	}
	// A comes back and gets its command.
	if _, err := connect(t, opts(a)); err != nil {
		t.Fatal(err)
	}
	if topic, payload := receive(t, msgs); topic != "v1/to/HWA/ch/v1/command/requests" || payload != "queued for A" {
		t.Fatalf("A got %s %q", topic, payload)
	}
}

// TestLongFieldsAndRefusalFloodLogged sends CONNECTs with 60 KB client ids
// and user names, many times: the log holds each cut to a few hundred
// bytes, and at most a burst of refusal lines per interval, counting the
// rest.
func TestLongFieldsAndRefusalFloodLogged(t *testing.T) {
	e := newEnv(t, auth.Options{})
	long := strings.Repeat("A", 60000)
	const attempts = 40
	for i := range attempts {
		mustRefuse(t, "a long user name", e.opts(long+fmt.Sprint(i), "wrong").SetClientID(long+fmt.Sprint(i)))
	}
	logs := e.log.String()
	if strings.Contains(logs, long[:1000]) {
		t.Error("a long client id or user name was logged whole")
	}
	if n := strings.Count(logs, "mqtt connection refused"); n == 0 || n >= attempts {
		t.Errorf("%d refusal lines for %d refusals, want a bounded burst", n, attempts)
	}
	if len(logs) > 64<<10 {
		t.Errorf("%d bytes of log for %d refused CONNECTs", len(logs), attempts)
	}
}
