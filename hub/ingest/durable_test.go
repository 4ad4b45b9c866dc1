package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edk-go/edk/buffer"
	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/hub/ingest"
	"github.com/edk-go/edk/hub/store"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

// inboxLength is how many messages the store's inbox holds.
func inboxLength(t *testing.T, st *store.Store) int {
	t.Helper()
	n, err := st.InboxLength(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A QoS 1 message is acknowledged only once it is committed to the store's
// inbox: right after the PUBACK, the inbox holds it, without waiting for a
// flush (the interval never fires here, so nothing is decoded into
// telemetry yet).
func TestAcknowledgedOnlyWhenStored(t *testing.T) {
	e := newEnv(t, ingest.Config{FlushInterval: time.Hour}, true)
	c := e.connect("")
	const n = 200
	for i := range n {
		e.publish(c, "v1/telemetry", fmt.Sprintf(`{"timestamp":%d,"n":%d}`, 1700000000+i, i))
		if got := inboxLength(t, e.st); got != i+1 {
			t.Fatalf("message %d acknowledged, but the inbox holds %d messages", i, got)
		}
	}
	// Logs and properties too.
	e.publish(c, "v3/logs", `{"timestamp":1700000000,"message":"hello","severity":"info"}`)
	e.publish(c, "v1/properties", `{"timestamp":1700000000,"vendor":"acme"}`)
	if got := inboxLength(t, e.st); got != n+2 {
		t.Fatalf("inbox holds %d messages, want %d", got, n+2)
	}
	// Queued once each (OnPublish, not OnPublished again), none lost.
	if s := e.p.Stats(); s.Received != n+2 || s.Telemetry != n || s.Inboxed != n+2 || s.Unacknowledged != 0 || s.Dropped != 0 {
		t.Errorf("stats = %+v", s)
	}
}

// An acknowledged message is in telemetry (logs, properties) shortly
// after, at the next flush, and leaves the inbox in that same commit.
func TestAcknowledgedThenWrittenAtTheFlush(t *testing.T) {
	e := newEnv(t, ingest.Config{FlushInterval: 50 * time.Millisecond}, true)
	ctx := context.Background()
	c := e.connect("")
	e.publish(c, "v1/telemetry", `{"timestamp":1700000000,"n":7}`)
	e.publish(c, "v3/logs", `{"timestamp":1700000000,"message":"hello","severity":"info"}`)
	e.publish(c, "v1/properties", `{"timestamp":1700000000,"vendor":"acme"}`)
	start := time.Now()
	testutil.Eventually(t, "written", func() bool { p, ok := e.latest("n"); return ok && string(p.Value) == "7" })
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("written %v after the acknowledgement", d)
	}
	testutil.Eventually(t, "inbox emptied", func() bool { return inboxLength(t, e.st) == 0 })
	if ls, err := e.st.ListLogs(ctx, e.dev.ID, time.Time{}, 10); err != nil || len(ls) != 1 {
		t.Fatalf("logs: %+v, %v", ls, err)
	}
	if pr, err := e.st.GetProperties(ctx, e.dev.ID); err != nil || string(pr.Values["vendor"]) != `"acme"` {
		t.Fatalf("properties: %+v, %v", pr, err)
	}
}

// What was acknowledged but not written yet when the pipeline died (here:
// its store is gone, so it writes nothing more) is written, exactly once,
// by the next pipeline on the same database, before anything new.
func TestAcknowledgedMessagesSurviveARestart(t *testing.T) {
	e := newEnv(t, ingest.Config{FlushInterval: time.Hour}, false)
	ctx := context.Background()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.p.Run(runCtx) }()
	c := e.connect("")
	const n = 50
	for i := range n {
		e.publish(c, "v1/telemetry", fmt.Sprintf(`{"timestamp":%d,"n":%d}`, 1700000000+i, i))
	}
	e.publish(c, "v3/logs", `{"timestamp":1700000000,"message":"hello","severity":"info"}`)
	e.publish(c, "v1/telemetry", `not json`) // not in the inbox: nothing to write but its count
	if _, ok := e.latest("n"); ok {
		t.Fatal("written before the flush; this test needs it not to be")
	}
	// The "kill": the store closes under the pipeline, whose last batch
	// then fails.
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	st, err := store.Open(ctx, e.path, store.Options{PasswordIterations: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got := inboxLength(t, st); got != n+1 {
		t.Fatalf("inbox holds %d messages after the restart, want %d", got, n+1)
	}
	p, err := ingest.New(ingest.Config{Store: st, FlushInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(ctx)
	done2 := make(chan error, 1)
	go func() { done2 <- p.Run(ctx2) }()
	stop2 := sync.OnceValue(func() error { cancel2(); return <-done2 })
	defer stop2()
	// Written by the time Run is ready for new messages.
	select {
	case <-p.Ready():
	case <-time.After(waitTimeout):
		t.Fatal("not ready")
	}
	if got := inboxLength(t, st); got != 0 {
		t.Fatalf("ready with %d messages still in the inbox", got)
	}
	pts, err := st.LatestTelemetry(ctx, e.dev.ID, []string{"n"})
	if err != nil || string(pts["n"].Value) != fmt.Sprint(n-1) {
		t.Fatalf("latest n after the restart: %+v, %v", pts, err)
	}
	series, err := st.QueryTelemetry(ctx, e.dev.ID, []string{"n"}, time.Unix(1600000000, 0), time.Unix(1800000000, 0), 0, store.AggAuto)
	if err != nil || len(series) != 1 || len(series[0].Points) != n {
		t.Fatalf("series of n after the restart: %+v, %v; want %d points", series, err, n)
	}
	if ls, err := st.ListLogs(ctx, e.dev.ID, time.Time{}, 10); err != nil || len(ls) != 1 {
		t.Fatalf("logs after the restart: %+v, %v", ls, err)
	}
	if s := p.Stats(); s.Replayed != n+1 || s.Telemetry != n || s.Logs != 1 {
		t.Errorf("stats = %+v", s)
	}
	// Messages of an earlier run do not make the device online now.
	// Stopping writes everything pending, last-seen times included.
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if c, err := st.GetConnectivity(ctx, e.dev.ID); err != nil || c.Online {
		t.Errorf("connectivity after the restart = %+v, %v; want offline", c, err)
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
	if s.Inboxed != clients*each || s.Unacknowledged != 0 {
		t.Fatalf("stats = %+v, want %d in the inbox", s, clients*each)
	}
	if s.InboxCommits >= clients*each {
		t.Errorf("%d commits for %d messages: none shared", s.InboxCommits, s.Inboxed)
	}
	t.Logf("%d messages in %d commits", s.Inboxed, s.InboxCommits)
}

// A message that cannot be stored in time is not acknowledged, and the hub
// closes the connection: an MQTT 3.1.1 device sends it again when it
// reconnects (and only then). Here nothing writes (Run never starts): the
// first message waits CommitTimeout in the queue, the next, after a
// reconnect, finds the queue full.
func TestNotAcknowledgedWhenNotStored(t *testing.T) {
	e := newEnv(t, ingest.Config{QueueSize: 1, QueueWait: 10 * time.Millisecond, CommitTimeout: 50 * time.Millisecond}, false)
	c := e.connect("")
	first := c.Publish("v1/from/hw1/ch1/v1/telemetry", 1, false, `{"timestamp":1700000000,"n":1}`)
	testutil.Eventually(t, "commit timed out", func() bool { return e.p.Stats().Unacknowledged == 1 })
	testutil.Eventually(t, "disconnected", func() bool { return !c.IsConnectionOpen() })
	if notAcked(first) {
		t.Error("a message that was not stored was acknowledged")
	}
	c = e.connect("")
	second := c.Publish("v1/from/hw1/ch1/v1/telemetry", 1, false, `{"timestamp":1700000001,"n":2}`)
	testutil.Eventually(t, "queue full", func() bool { return e.p.Stats().Unacknowledged == 2 })
	testutil.Eventually(t, "disconnected again", func() bool { return !c.IsConnectionOpen() })
	if notAcked(second) {
		t.Error("a message that was not stored was acknowledged")
	}
	if s := e.p.Stats(); s.Received != 1 || s.Dropped != 0 || s.QueueLength != 1 {
		t.Errorf("stats = %+v", s)
	}
	if !strings.Contains(e.logs.String(), "not acknowledged") {
		t.Errorf("no log line about it:\n%s", e.logs)
	}
}

// notAcked is false when tok completed without an error: the broker
// acknowledged the message. paho ends a publish token with an error when
// the connection is lost before the acknowledgement.
func notAcked(tok paho.Token) bool {
	return tok.WaitTimeout(100*time.Millisecond) && tok.Error() == nil
}

// A store that fails makes the hook refuse the acknowledgement too, and
// close the connection.
func TestNotAcknowledgedWhenStoreFails(t *testing.T) {
	e := newEnv(t, ingest.Config{}, true)
	c := e.connect("")
	e.publish(c, "v1/telemetry", `{"timestamp":1700000000,"n":1}`) // caches the device
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	tok := c.Publish("v1/from/hw1/ch1/v1/telemetry", 1, false, `{"timestamp":1700000001,"n":2}`)
	testutil.Eventually(t, "refused", func() bool { return e.p.Stats().Unacknowledged == 1 })
	if notAcked(tok) {
		t.Error("a message the store failed to write was acknowledged")
	}
	testutil.Eventually(t, "disconnected", func() bool { return !c.IsConnectionOpen() })
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
	e := newEnvWithHooks(t, ingest.Config{}, true, &ignoreHook{})
	c := e.connect("")
	e.publish(c, "v1/telemetry", `{"timestamp":1700000000,"drop":1}`)
	e.publish(c, "v1/telemetry", `{"timestamp":1700000001,"keep":1}`)
	testutil.Eventually(t, "the next message stored", func() bool { _, ok := e.latest("keep"); return ok })
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
	testutil.Eventually(t, "stored after delivery", func() bool { _, ok := e.latest("drop"); return ok })
	e.publish(c, "v1/telemetry", `{"timestamp":1700000001,"keep":1}`)
	if s := e.p.Stats(); s.Inboxed != 1 {
		t.Fatalf("stats = %+v: the next message was acknowledged before it was in the inbox", s)
	}
	testutil.Eventually(t, "the next message stored", func() bool { _, ok := e.latest("keep"); return ok })
	if s := e.p.Stats(); s.Received != 2 || s.Telemetry != 2 {
		t.Errorf("stats = %+v, want each message queued once", s)
	}
}

// QoS 0 messages are not waited for: nothing is stored before the flush.
func TestQoS0NotWaitedFor(t *testing.T) {
	e := newEnv(t, ingest.Config{FlushInterval: time.Hour}, true)
	c := e.connect("")
	e.publishQoS0(c, "v1/telemetry", `{"timestamp":1700000000,"n":1}`)
	testutil.Eventually(t, "decoded", func() bool { return e.p.Stats().Telemetry == 1 })
	if _, ok := e.latest("n"); ok {
		t.Error("a QoS 0 message was written before its batch was due")
	}
	// A QoS 1 message goes to the inbox; the QoS 0 one is not in it.
	e.publish(c, "v1/telemetry", `{"timestamp":1700000001,"m":1}`)
	if got := inboxLength(t, e.st); got != 1 {
		t.Errorf("inbox holds %d messages, want only the QoS 1 one", got)
	}
}

// TestFullDiskWrittenOnceSpaceReturns fills the disk between a message's
// inbox commit (acknowledged) and its batch write, which fails; once space
// returns, the hub writes it while running, not only at the next start.
// The disk is "full" through SQLite's max_page_count: room for the raw
// message's inbox row, not for its thousand decoded samples.
func TestFullDiskWrittenOnceSpaceReturns(t *testing.T) {
	e := newEnv(t, ingest.Config{}, true)
	ctx := context.Background()
	c := e.connect("")
	e.publish(c, "v1/telemetry", `{"timestamp":1700000000,"n":1}`)
	testutil.Eventually(t, "first message written", func() bool { _, ok := e.latest("n"); return ok })

	pages, err := e.st.PageCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.SetMaxPageCount(ctx, pages+8); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString(`{"timestamp":1700000001`)
	for i := range 1000 {
		fmt.Fprintf(&b, `,"a%04d":%d.5`, i, i)
	}
	b.WriteString("}")
	e.publish(c, "v1/telemetry", b.String()) // acknowledged: in the inbox
	testutil.Eventually(t, "the batch write fails", func() bool { return e.p.Stats().RetryPending > 0 })
	if _, ok := e.latest("a0999"); ok {
		t.Fatal("written although the disk was full; this test needs the write to fail")
	}
	if got := inboxLength(t, e.st); got != 1 {
		t.Fatalf("inbox holds %d messages, want the acknowledged one", got)
	}

	if err := e.st.SetMaxPageCount(ctx, 1<<30); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "written once space returned", func() bool { _, ok := e.latest("a0999"); return ok })
	if got := inboxLength(t, e.st); got != 0 {
		t.Fatalf("inbox still holds %d messages", got)
	}
	// The writer counts the retry just after its commit.
	testutil.Eventually(t, "the retry counted", func() bool { s := e.p.Stats(); return s.Retried == 1 && s.RetryPending == 0 })
	// New messages are written as usual.
	e.publish(c, "v1/telemetry", `{"timestamp":1700000002,"n":3}`)
	testutil.Eventually(t, "next message written", func() bool { p, _ := e.latest("n"); return string(p.Value) == "3" })
	if !strings.Contains(e.logs.String(), "written again at the next flush") {
		t.Errorf("the failed write is not explained:\n%s", e.logs)
	}
}

// TestFullDiskDeviceSendsAgain is finding 6 of issue 11 end to end, with
// the edk device runtime and its buffer (edk run --buffer) as the device:
// the disk fills before the message reaches the inbox. The hub does not
// acknowledge it and closes the connection; the device reconnects on its
// own and sends it again, and again, until space returns; then it is
// stored and leaves the device's buffer, with nothing restarted. The
// device waits for its acknowledgement as long as an MQTT 3.1.1 device
// may (an hour here, where edk's own runtime gives up after 10 s and
// publishes again): on a hub that neither acknowledges nor disconnects
// it would wait for that hour.
func TestFullDiskDeviceSendsAgain(t *testing.T) {
	e := newEnv(t, ingest.Config{}, true)
	ctx := context.Background()
	host, port, err := net.SplitHostPort(e.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	buf, err := buffer.Open(t.TempDir(), buffer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = buf.Close() })
	d, err := device.New(&commconfig.Config{Version: commconfig.Version3, HardwareID: "hw1", ChannelID: "ch1",
		Host: host, Port: p, Protocol: commconfig.ProtocolMQTT, Username: "user1", Password: "secret"},
		device.WithBuffer(buf), device.WithBackoff(5*time.Millisecond, 50*time.Millisecond),
		device.WithPublishTimeout(time.Hour), device.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		// A publish still waiting for its acknowledgement holds Run up
		// to the publish timeout; the broker's close ends it.
		_ = e.b.Close()
		<-done
	})
	wctx, wcancel := context.WithTimeout(ctx, waitTimeout)
	defer wcancel()
	if err := d.WaitState(wctx, device.StateConnected); err != nil {
		t.Fatal(err)
	}

	// Full: not one more page, and a message that needs several (its
	// inbox row alone is some 40 KB).
	pages, err := e.st.PageCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.SetMaxPageCount(ctx, pages); err != nil {
		t.Fatal(err)
	}
	values := make(map[string]any)
	for i := range 3000 {
		values[fmt.Sprintf("a%04d", i)] = float64(i) + 0.5
	}
	if err := d.SendTelemetry(ctx, mqttapi.Telemetry{Timestamp: 1700000000, Values: values}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the device disconnected, reconnected and sent the message again", func() bool {
		return e.p.Stats().Unacknowledged >= 2 && d.Stats().Reconnects >= 1
	})
	if _, ok := e.latest("a2999"); ok {
		t.Fatal("stored although the disk was full; this test needs the inbox commit to fail")
	}
	if n := d.Stats().Buffer.Messages; n != 1 {
		t.Fatalf("the device's buffer holds %d messages, want the unacknowledged one", n)
	}

	if err := e.st.SetMaxPageCount(ctx, 1<<30); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "stored once space returned", func() bool { _, ok := e.latest("a2999"); return ok })
	testutil.Eventually(t, "acknowledged: the device's buffer empty", func() bool { return d.Stats().Buffer.Messages == 0 })
}

// TestFullDiskNotAcknowledgedThenResent is the full disk at the moment a
// QoS 1 message arrives: its inbox row cannot be written, so it is not
// acknowledged. The hub used to keep the connection, and an MQTT 3.1.1
// device waited for the PUBACK until it happened to reconnect, even after
// space returned. Now the hub closes the connection; the device (paho with
// its automatic reconnect, as edk's runtime uses it) reconnects and sends
// the message again, and once space returns it is acknowledged, with no
// restart of either. (paho completes the first publish token when it sends
// the message again, so the test watches the hub's counters instead.)
func TestFullDiskNotAcknowledgedThenResent(t *testing.T) {
	e := newEnv(t, ingest.Config{}, true)
	ctx := context.Background()
	var reconnects atomic.Int64
	opts := testutil.ClientOptions(e.b.Addr()).SetAutoReconnect(true).SetMaxReconnectInterval(50 * time.Millisecond).
		SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) { reconnects.Add(1) })
	c := testutil.ConnectWith(t, opts)
	e.publish(c, "v1/telemetry", `{"timestamp":1700000000,"n":1}`)
	testutil.Eventually(t, "first message written", func() bool { _, ok := e.latest("n"); return ok })

	pages, err := e.st.PageCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.SetMaxPageCount(ctx, pages); err != nil {
		t.Fatal(err)
	}
	// Larger than any page's free room: its inbox row needs new pages.
	big := fmt.Sprintf(`{"timestamp":1700000001,"big":%q}`, strings.Repeat("x", 64<<10))
	c.Publish("v1/from/hw1/ch1/v1/telemetry", 1, false, big)
	testutil.Eventually(t, "the inbox write to fail", func() bool { return e.p.Stats().Unacknowledged > 0 })
	testutil.Eventually(t, "the device disconnected and reconnecting", func() bool { return reconnects.Load() > 0 })
	if s := e.p.Stats(); s.Inboxed != 1 {
		t.Fatalf("stats %+v: a message was acknowledged while the disk was full", s)
	}

	if err := e.st.SetMaxPageCount(ctx, 1<<30); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the message sent again and acknowledged once space returned", func() bool { return e.p.Stats().Inboxed == 2 })
	testutil.Eventually(t, "written", func() bool { _, ok := e.latest("big"); return ok })
	e.publish(c, "v1/telemetry", `{"timestamp":1700000002,"n":3}`)
	testutil.Eventually(t, "next message written", func() bool { p, _ := e.latest("n"); return string(p.Value) == "3" })
}
