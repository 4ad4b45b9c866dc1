package ingest

import (
	"bytes"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// fromPrefix starts every device → hub topic.
const fromPrefix = "v1/from/"

// hook is the mochi side of a Pipeline. mochi calls it on the goroutine of
// the client concerned; every method returns without waiting for the store.
type hook struct {
	mqtt.HookBase
	p *Pipeline
}

// ID implements mqtt.Hook.
func (h *hook) ID() string { return "edk-ingest" }

// Provides implements mqtt.Hook.
func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnPublished, mqtt.OnSessionEstablished, mqtt.OnDisconnect}, []byte{b})
}

// OnPublished sees every message the broker accepted from a client (after
// the ACL check), once, whatever its QoS; the hub's own inline publishes too.
// mochi calls it also for a message that a hook told it to ignore (hub/limits
// drops a flooding device's messages that way); those were not delivered
// and are not stored either.
func (h *hook) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	if pk.Ignore || !strings.HasPrefix(pk.TopicName, fromPrefix) {
		return
	}
	h.p.enqueue(message{topic: pk.TopicName, payload: pk.Payload, at: h.p.cfg.Now()})
}

// OnSessionEstablished marks the client's device online.
func (h *hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) { h.p.connected(cl) }

// OnDisconnect marks the client's device offline when it was its last
// connection.
func (h *hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) { h.p.disconnected(cl) }

// Ingest queues one device message that arrived some other way than
// through the hook: from the hub's subscription to an external broker.
// Like the hook it waits when the queue is full (Config.QueueWait).
func (p *Pipeline) Ingest(topic string, payload []byte) {
	if !strings.HasPrefix(topic, fromPrefix) {
		return
	}
	p.enqueue(message{topic: topic, payload: payload, at: p.cfg.Now()})
}
