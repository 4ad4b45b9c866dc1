package ingest_test

import (
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edk-go/edk/hub/ingest"
	"github.com/edk-go/edk/internal/testutil"
)

func TestIgnoredMessagesNotQueued(t *testing.T) {
	e := newEnv(t, ingest.Config{QueueSize: 4}, false) // Run never starts: the queue keeps what it gets
	h := e.p.Hook()
	pk := packets.Packet{TopicName: "v1/from/hw1/ch1/v1/telemetry", Payload: []byte(`{"timestamp":1,"n":1}`)}
	pk.Ignore = true // what hub/limits makes mochi do with a dropped message
	h.OnPublished(&mqtt.Client{ID: "c"}, pk)
	if s := e.p.Stats(); s.Received != 0 || s.QueueLength != 0 {
		t.Fatalf("an ignored message was queued: %+v", s)
	}
	pk.Ignore = false
	h.OnPublished(&mqtt.Client{ID: "c"}, pk)
	if s := e.p.Stats(); s.Received != 1 || s.QueueLength != 1 || s.QueueCapacity != 4 {
		t.Fatalf("stats = %+v, want 1 received and queued of 4", s)
	}
}

func TestStatsSplitStoredAndCountConnectedDevices(t *testing.T) {
	e := newEnv(t, ingest.Config{}, true)
	c := e.connect("user1")
	testutil.Eventually(t, "device connected", func() bool { return e.p.Stats().ConnectedDevices == 1 })
	e.publish(c, "v1/telemetry", `{"timestamp":1700000000,"n":1}`)
	e.publish(c, "v3/logs", `{"timestamp":1700000001,"message":"hello","severity":"info"}`)
	e.publish(c, "v3/logs", `{"timestamp":1700000002,"message":"again","severity":"info"}`)
	testutil.Eventually(t, "all stored", func() bool { return e.p.Stats().Stored == 3 })
	if s := e.p.Stats(); s.StoredSamples != 1 || s.StoredLogs != 2 {
		t.Fatalf("stats = %+v, want 1 sample and 2 log entries stored", s)
	}
	c.Disconnect(100)
	testutil.Eventually(t, "device disconnected", func() bool { return e.p.Stats().ConnectedDevices == 0 })
}
