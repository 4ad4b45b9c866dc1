package ingest

import (
	"errors"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// fromPrefix starts every device → hub topic.
const fromPrefix = "v1/from/"

// hook is the mochi side of a Pipeline. mochi calls it on the goroutine of
// the client concerned, one packet after the other.
//
// mochi handles a client's publish in this order (server.go,
// processPublish): ACL check, every hook's OnPublish in the order the hooks
// were added — stopping at the first that returns an error —, then the
// acknowledgement (QoS 1 and 2), delivery to subscribers, and every hook's
// OnPublished. So ingest stores what must be stored before it is
// acknowledged in OnPublish, and must be added after hooks that may drop a
// message there (hub/limits returns packets.CodeSuccessIgnore): mochi does
// not call ingest's OnPublish for a message such a hook dropped.
type hook struct {
	mqtt.HookBase
	p *Pipeline
	// stored maps a client to the last publish its OnPublish stored, so
	// that OnPublished, which mochi calls next on the same goroutine,
	// does not queue it again.
	stored sync.Map // *mqtt.Client → mark
}

// mark tells one publish from the next of the same client.
type mark struct {
	topic    string
	id       uint16
	payload0 *byte // first byte of mochi's payload buffer; nil when empty
	n        int
}

func markOf(pk packets.Packet) mark {
	m := mark{topic: pk.TopicName, id: pk.PacketID, n: len(pk.Payload)}
	if cap(pk.Payload) > 0 {
		m.payload0 = &pk.Payload[:1][0]
	}
	return m
}

// ID implements mqtt.Hook.
func (h *hook) ID() string { return "edk-ingest" }

// Provides implements mqtt.Hook.
func (h *hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnPublish, mqtt.OnPublished, mqtt.OnSessionEstablished, mqtt.OnDisconnect:
		return true
	}
	return false
}

// waited reports whether the acknowledgement of pk waits for the store: a
// device message at QoS 1 or 2 from a client of the broker (mochi treats
// the hub's own inline publishes as QoS 0).
func waited(cl *mqtt.Client, pk packets.Packet) bool {
	return pk.FixedHeader.Qos > 0 && !cl.Net.Inline && strings.HasPrefix(pk.TopicName, fromPrefix)
}

// errNotStored is why the hook closes a connection.
var errNotStored = errors.New("ingest: a QoS 1 message could not be stored; disconnected so that the device sends it again")

// OnPublish stores a device message at QoS 1 or 2 before mochi
// acknowledges it: it waits until the message is committed to the store's
// inbox (bounded, see Pipeline.store). A message that could not be
// stored is rejected: mochi neither acknowledges nor delivers it, and the
// hook closes the connection. An MQTT 3.1.1 client resends an
// unacknowledged message only when it reconnects, so without the
// disconnect the device would wait for the acknowledgement (and stop
// sending, once its in-flight window is full) until its keepalive gave
// up, even after the store works again.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.Ignore || !waited(cl, pk) {
		return pk, nil
	}
	if !h.p.store(message{topic: pk.TopicName, payload: pk.Payload, at: h.p.cfg.Now()}) {
		cl.Stop(errNotStored)
		return pk, packets.ErrRejectPacket
	}
	h.stored.Store(cl, markOf(pk))
	return pk, nil
}

// OnPublished sees every message the broker accepted from a client (after
// the ACL check), once, whatever its QoS; the hub's own inline publishes too.
// It queues those that OnPublish did not store already: QoS 0 messages, the
// hub's own, and any that a hook before ingest kept from reaching its
// OnPublish without dropping it.
// mochi calls it also for a message that a hook told it to ignore (hub/limits
// drops a flooding device's messages that way); those were not delivered
// and are not stored either.
func (h *hook) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	if pk.Ignore || !strings.HasPrefix(pk.TopicName, fromPrefix) {
		return
	}
	if waited(cl, pk) {
		if m, ok := h.stored.LoadAndDelete(cl); ok && m.(mark) == markOf(pk) {
			return
		}
	}
	h.p.enqueue(message{topic: pk.TopicName, payload: pk.Payload, at: h.p.cfg.Now()})
}

// OnSessionEstablished marks the client's device online.
func (h *hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) { h.p.connected(cl) }

// OnDisconnect marks the client's device offline when it was its last
// connection.
func (h *hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.stored.Delete(cl)
	h.p.disconnected(cl)
}

// Ingest queues one device message that arrived some other way than
// through the hook: from the hub's subscription to an external broker.
// Like the hook it waits when the queue is full (Config.QueueWait), but
// not for the store.
func (p *Pipeline) Ingest(topic string, payload []byte) {
	if !strings.HasPrefix(topic, fromPrefix) {
		return
	}
	p.enqueue(message{topic: topic, payload: payload, at: p.cfg.Now()})
}
