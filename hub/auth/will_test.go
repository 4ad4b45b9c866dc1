package auth_test

import (
	"strings"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edk-go/edk/hub/auth"
	"github.com/edk-go/edk/internal/faultproxy"
	"github.com/edk-go/edk/internal/testutil"
)

// dropWithWill connects dev through a proxy with a last will on topic
// (retained), then cuts the socket without a DISCONNECT, as a crashing
// device would, and waits until the broker has finished with the
// connection: by then mochi has published the will, if it kept one. It
// reports whether the broker accepted the connection.
func (e *env) dropWithWill(dev device, topic, payload string) bool {
	e.t.Helper()
	proxy := faultproxy.Start(e.t, e.broker.Addr())
	opts := testutil.ClientOptions(proxy.Addr()).SetUsername(dev.user).SetPassword(dev.pass).
		SetWill(topic, payload, 1, true)
	c := paho.NewClient(opts)
	if err := testutil.Wait(c.Connect()); err != nil {
		return false
	}
	proxy.Cut()
	e.waitGone(opts.ClientID)
	c.Disconnect(0)
	return true
}

// firstIs publishes a marker as the admin on topic and checks that it is the
// next message msgs receives: anything before it (a forged will) fails.
func firstIs(t *testing.T, admin paho.Client, msgs <-chan paho.Message, topic string) {
	t.Helper()
	if err := testutil.Wait(admin.Publish(topic, 1, false, "marker")); err != nil {
		t.Fatal(err)
	}
	if gotTopic, payload := receive(t, msgs); gotTopic != topic || payload != "marker" {
		t.Fatalf("received %s %q before the marker", gotTopic, payload)
	}
}

func TestWillOutsideOwnTopics(t *testing.T) {
	e := newEnv(t, auth.Options{})
	a, b := e.provision("HWA"), e.provision("HWB")
	devB, err := connect(t, e.opts(b.user, b.pass))
	if err != nil {
		t.Fatal(err)
	}
	code, commands := subscribe(t, devB, "v1/to/HWB/#")
	if code == subackNo {
		t.Fatal("B's subscription refused")
	}
	admin, err := connect(t, e.opts(adminUser, adminPass))
	if err != nil {
		t.Fatal(err)
	}
	_, telemetry := subscribe(t, admin, "v1/from/HWB/#")

	for _, topic := range []string{
		"v1/to/HWB/ch/v1/command/requests", // B would run a forged command
		"v1/from/HWB/ch/v1/telemetry",      // subscribers would read forged telemetry as B's
		"v1/from/HWA/#",                    // no publish may carry a wildcard
		"v1/from/HWA",                      // not under the prefix
	} {
		if e.dropWithWill(a, topic, `{"command_name":"reboot","command_id":"forged"}`) {
			t.Errorf("A connected with a will on %s, want refused", topic)
		}
	}
	if !e.log.WaitFor("last will on", waitLimit) {
		t.Error("refusal not explained in the log")
	}
	firstIs(t, admin, commands, "v1/to/HWB/ch/marker")
	firstIs(t, admin, telemetry, "v1/from/HWB/ch/marker")
	// Nor is anything retained for B: a new subscriber gets the marker first.
	late, err := connect(t, e.opts(adminUser, adminPass))
	if err != nil {
		t.Fatal(err)
	}
	_, lateMsgs := subscribe(t, late, "v1/to/HWB/#")
	firstIs(t, admin, lateMsgs, "v1/to/HWB/ch/marker2")
}

// TestWillOverPayloadLimit leaves a will larger than MaxWillPayload, which
// hub/limits would have dropped as a publish.
func TestWillOverPayloadLimit(t *testing.T) {
	e := newEnv(t, auth.Options{MaxWillPayload: 100})
	a := e.provision("HWA")
	if e.dropWithWill(a, "v1/from/HWA/ch/v1/gone", strings.Repeat("x", 101)) {
		t.Fatal("a will over the payload limit was accepted")
	}
	if !e.dropWithWill(a, "v1/from/HWA/ch/v1/gone", strings.Repeat("x", 100)) {
		t.Fatal("a will at the payload limit was refused")
	}
}

func TestWillOnOwnTopic(t *testing.T) {
	e := newEnv(t, auth.Options{})
	a := e.provision("HWA")
	admin, err := connect(t, e.opts(adminUser, adminPass))
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan paho.Message, 8)
	if err := testutil.Wait(admin.Subscribe("v1/from/HWA/#", 1, func(_ paho.Client, m paho.Message) { msgs <- m })); err != nil {
		t.Fatal(err)
	}
	if !e.dropWithWill(a, "v1/from/HWA/ch/v1/gone", "bye") {
		t.Fatal("a will on the device's own topic refused")
	}
	m := testutil.Receive(t, msgs)
	if m.Topic() != "v1/from/HWA/ch/v1/gone" || string(m.Payload()) != "bye" {
		t.Fatalf("will: %s %q", m.Topic(), m.Payload())
	}
	// The will was sent, but not retained: a device may not pin messages
	// in the broker's memory.
	late, err := connect(t, e.opts(adminUser, adminPass))
	if err != nil {
		t.Fatal(err)
	}
	_, lateMsgs := subscribe(t, late, "v1/from/HWA/#")
	firstIs(t, admin, lateMsgs, "v1/from/HWA/ch/marker")
}
