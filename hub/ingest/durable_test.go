package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edk-go/edk/hub/ingest"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

// A QoS 1 message is acknowledged only once it is in the store: right
// after the PUBACK, a query finds it, without waiting for a flush (the
// interval never fires here).
func TestAcknowledgedOnlyWhenStored(t *testing.T) {
	e := newEnv(t, ingest.Config{FlushInterval: time.Hour}, true)
	ctx := context.Background()
	c := e.connect("")
	const n = 200
	for i := range n {
		e.publish(c, "v1/telemetry", fmt.Sprintf(`{"timestamp":%d,"n":%d}`, 1700000000+i, i))
		pts, err := e.st.LatestTelemetry(ctx, e.dev.ID, []string{"n"})
		if err != nil {
			t.Fatal(err)
		}
		if got := string(pts["n"].Value); got != fmt.Sprint(i) {
			t.Fatalf("message %d acknowledged, but the store's latest n is %q", i, got)
		}
	}
	// Logs and properties too.
	e.publish(c, "v3/logs", `{"timestamp":1700000000,"message":"hello","severity":"info"}`)
	if ls, err := e.st.ListLogs(ctx, e.dev.ID, time.Time{}, 10); err != nil || len(ls) != 1 {
		t.Fatalf("log acknowledged, stored: %+v, %v", ls, err)
	}
	e.publish(c, "v1/properties", `{"timestamp":1700000000,"vendor":"acme"}`)
	if pr, err := e.st.GetProperties(ctx, e.dev.ID); err != nil || string(pr.Values["vendor"]) != `"acme"` {
		t.Fatalf("properties acknowledged, stored: %+v, %v", pr, err)
	}
	// Queued once each (OnPublish, not OnPublished again), none lost.
	if s := e.p.Stats(); s.Received != n+2 || s.Telemetry != n || s.Stored != n+1 || s.Unacknowledged != 0 || s.Dropped != 0 {
		t.Errorf("stats = %+v", s)
	}
}

// Messages that need no write are acknowledged at once: malformed ones
// (counted), those of unknown devices, command responses (with the sink).
func TestAcknowledgedAtOnceWhenNothingToWrite(t *testing.T) {
	e := newEnv(t, ingest.Config{FlushInterval: time.Hour, Sink: sinkFunc(func(string, string, string, mqttapi.CommandResponse) {})}, true)
	c := e.connect("")
	start := time.Now()
	e.publish(c, "v1/telemetry", `not json`)
	e.publish(c, "v1/command/responses", `{"id":"r1","state":"completed"}`)
	if err := testutil.Wait(c.Publish("v1/from/nobody/ch1/v1/telemetry", 1, false, `{"timestamp":1,"x":1}`)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	if s := e.p.Stats(); s.Malformed != 1 || s.Responses != 1 || s.UnknownDevice != 1 || s.Unacknowledged != 0 {
		t.Errorf("stats = %+v", s)
	}
}

// Many devices share commits: while the writer commits one batch, the
// next gathers what the others sent.
func TestDevicesShareCommits(t *testing.T) {
	e := newEnv(t, ingest.Config{FlushInterval: time.Hour}, true)
	const clients, each = 10, 30
	var wg sync.WaitGroup
	for i := range clients {
		c := e.connect("")
		wg.Go(func() {
			for j := range each {
				tok := c.Publish("v1/from/hw1/ch1/v1/telemetry", 1, false, fmt.Sprintf(`{"timestamp":%d,"c%d":%d}`, 1700000000+j, i, j))
				if err := testutil.Wait(tok); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	s := e.p.Stats()
	if s.Stored != clients*each || s.Unacknowledged != 0 {
		t.Fatalf("stats = %+v, want %d stored", s, clients*each)
	}
	if s.Flushes >= clients*each {
		t.Errorf("%d commits for %d messages: none shared", s.Flushes, s.Stored)
	}
	t.Logf("%d messages in %d commits", s.Stored, s.Flushes)
}

// A message that cannot be stored in time is not acknowledged: the
// publisher keeps it and sends it again. Here nothing writes (Run never
// starts): the first message waits CommitTimeout in the queue, the next
// finds the queue full.
func TestNotAcknowledgedWhenNotStored(t *testing.T) {
	e := newEnv(t, ingest.Config{QueueSize: 1, QueueWait: 10 * time.Millisecond, CommitTimeout: 50 * time.Millisecond}, false)
	c := e.connect("")
	first := c.Publish("v1/from/hw1/ch1/v1/telemetry", 1, false, `{"timestamp":1700000000,"n":1}`)
	waitFor(t, "commit timed out", func() bool { return e.p.Stats().Unacknowledged == 1 })
	second := c.Publish("v1/from/hw1/ch1/v1/telemetry", 1, false, `{"timestamp":1700000001,"n":2}`)
	waitFor(t, "queue full", func() bool { return e.p.Stats().Unacknowledged == 2 })
	if first.WaitTimeout(100*time.Millisecond) || second.WaitTimeout(time.Millisecond) {
		t.Error("a message that was not stored was acknowledged")
	}
	if s := e.p.Stats(); s.Received != 1 || s.Dropped != 0 || s.QueueLength != 1 {
		t.Errorf("stats = %+v", s)
	}
	if !c.IsConnectionOpen() {
		t.Error("the connection was closed")
	}
	if !strings.Contains(e.logs.String(), "not acknowledged") {
		t.Errorf("no log line about it:\n%s", e.logs)
	}
}

// A store that fails makes the hook refuse the acknowledgement too.
func TestNotAcknowledgedWhenStoreFails(t *testing.T) {
	e := newEnv(t, ingest.Config{}, true)
	c := e.connect("")
	e.publish(c, "v1/telemetry", `{"timestamp":1700000000,"n":1}`) // caches the device
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	tok := c.Publish("v1/from/hw1/ch1/v1/telemetry", 1, false, `{"timestamp":1700000001,"n":2}`)
	waitFor(t, "refused", func() bool { return e.p.Stats().Unacknowledged == 1 })
	if tok.WaitTimeout(100 * time.Millisecond) {
		t.Error("a message the store failed to write was acknowledged")
	}
	if s := e.p.Stats(); s.StoreErrors == 0 {
		t.Errorf("stats = %+v, want a store error", s)
	}
}

// ignoreHook drops, the way hub/limits does, every publish whose payload
// holds "drop"; with fail set it returns a packets.Code that mochi, for an
// MQTT 3.1.1 client, ignores (it delivers and acknowledges the message).
type ignoreHook struct {
	mqtt.HookBase
	fail bool
}

func (h *ignoreHook) ID() string           { return "test-ignore" }
func (h *ignoreHook) Provides(b byte) bool { return b == mqtt.OnPublish }
func (h *ignoreHook) OnPublish(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if !bytes.Contains(pk.Payload, []byte("drop")) {
		return pk, nil
	}
	if h.fail {
		return pk, packets.ErrUnspecifiedError
	}
	return pk, packets.CodeSuccessIgnore
}

// A hook before ingest that drops a message (mochi's "ignore", as
// hub/limits does) keeps ingest's OnPublish from seeing it: acknowledged,
// never stored.
func TestIgnoredByEarlierHookNotStored(t *testing.T) {
	e := newEnvWithHooks(t, ingest.Config{FlushInterval: time.Hour}, true, &ignoreHook{})
	c := e.connect("")
	e.publish(c, "v1/telemetry", `{"timestamp":1700000000,"drop":1}`)
	e.publish(c, "v1/telemetry", `{"timestamp":1700000001,"keep":1}`)
	if _, ok := e.latest("keep"); !ok {
		t.Fatal("the next message was not stored")
	}
	if _, ok := e.latest("drop"); ok {
		t.Error("an ignored message was stored")
	}
	if s := e.p.Stats(); s.Received != 1 || s.Telemetry != 1 {
		t.Errorf("stats = %+v, want only the kept message queued", s)
	}
}

// When a hook before ingest stops mochi's OnPublish chain without dropping
// the message (an error mochi ignores for MQTT 3.1.1), ingest still
// queues it once, in OnPublished.
func TestPublishedWithoutIngestOnPublishStillStored(t *testing.T) {
	e := newEnvWithHooks(t, ingest.Config{}, true, &ignoreHook{fail: true})
	c := e.connect("")
	e.publish(c, "v1/telemetry", `{"timestamp":1700000000,"drop":1}`)
	waitFor(t, "stored after delivery", func() bool { _, ok := e.latest("drop"); return ok })
	e.publish(c, "v1/telemetry", `{"timestamp":1700000001,"keep":1}`)
	if _, ok := e.latest("keep"); !ok {
		t.Fatal("the next message was acknowledged before it was stored")
	}
	if s := e.p.Stats(); s.Received != 2 || s.Telemetry != 2 {
		t.Errorf("stats = %+v, want each message queued once", s)
	}
}

// QoS 0 messages are not waited for: nothing is stored before the flush.
func TestQoS0NotWaitedFor(t *testing.T) {
	e := newEnv(t, ingest.Config{FlushInterval: time.Hour}, true)
	c := e.connect("")
	e.publishQoS0(c, "v1/telemetry", `{"timestamp":1700000000,"n":1}`)
	waitFor(t, "decoded", func() bool { return e.p.Stats().Telemetry == 1 })
	if _, ok := e.latest("n"); ok {
		t.Error("a QoS 0 message was written before its batch was due")
	}
	// A QoS 1 message takes it along in its commit.
	e.publish(c, "v1/telemetry", `{"timestamp":1700000001,"m":1}`)
	if _, ok := e.latest("n"); !ok {
		t.Error("the QoS 0 message queued before was not written with the QoS 1 one")
	}
}
