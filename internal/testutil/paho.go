package testutil

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

const (
	// pahoTimeout bounds every wait on a paho token in these helpers.
	pahoTimeout = 10 * time.Second
	mqtt311     = 4 // MQTT 3.1.1's protocol level
	// subackFailure is the SUBACK return code of a refused subscription.
	subackFailure = 0x80
)

var clientSeq atomic.Uint64

// ClientOptions returns paho options for a test client of the broker at addr
// ("host:port" means plain TCP; a URL such as "ssl://host:port" is kept): a
// client id unique in this process, MQTT 3.1.1 only (as Enapter's brokers;
// paho would otherwise retry a refused CONNECT as 3.1), bounded timeouts, and
// no automatic reconnect, so that a test decides when to connect again.
func ClientOptions(addr string) *mqtt.ClientOptions {
	if !strings.Contains(addr, "://") {
		addr = "tcp://" + addr
	}
	return mqtt.NewClientOptions().
		AddBroker(addr).
		SetClientID(fmt.Sprintf("edk-test-%d-%d", os.Getpid(), clientSeq.Add(1))).
		SetProtocolVersion(mqtt311).
		SetConnectTimeout(pahoTimeout).
		SetWriteTimeout(pahoTimeout).
		SetAutoReconnect(false)
}

// Connect connects a plain TCP paho client to addr and disconnects it when the
// test ends.
func Connect(t testing.TB, addr string) mqtt.Client {
	t.Helper()
	return ConnectWith(t, ClientOptions(addr))
}

// ConnectWith connects a paho client built from opts, failing the test if
// that does not succeed within pahoTimeout, and disconnects it when the test
// ends.
func ConnectWith(t testing.TB, opts *mqtt.ClientOptions) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(opts)
	if err := Wait(c.Connect()); err != nil {
		t.Fatalf("connect to %v: %v", opts.Servers, err)
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// Subscribe subscribes c to filter at QoS 1 and returns the messages it
// receives. The paho handler blocks until the test reads a message or ends,
// so none is dropped.
func Subscribe(t testing.TB, c mqtt.Client, filter string) <-chan mqtt.Message {
	t.Helper()
	msgs := make(chan mqtt.Message, 64)
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	tok := c.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case msgs <- m:
		case <-done:
		}
	})
	if err := Wait(tok); err != nil {
		t.Fatalf("subscribe to %s: %v", filter, err)
	}
	// paho reports a refused subscription only in the SUBACK return code.
	if st, ok := tok.(*mqtt.SubscribeToken); ok && st.Result()[filter] == subackFailure {
		t.Fatalf("subscribe to %s: refused by the broker", filter)
	}
	return msgs
}

// Wait waits up to pahoTimeout for tok and returns its error.
func Wait(tok mqtt.Token) error {
	if !tok.WaitTimeout(pahoTimeout) {
		return fmt.Errorf("no answer from the broker after %v", pahoTimeout)
	}
	return tok.Error()
}

// Receive returns the next message from msgs, failing the test if none
// arrives within pahoTimeout.
func Receive(t testing.TB, msgs <-chan mqtt.Message) mqtt.Message {
	t.Helper()
	timer := time.NewTimer(pahoTimeout)
	defer timer.Stop()
	select {
	case m := <-msgs:
		return m
	case <-timer.C:
		t.Fatalf("no message within %v", pahoTimeout)
		return nil
	}
}
