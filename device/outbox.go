package device

import (
	"context"
	"errors"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/time/rate"
)

// Defaults for WithBuffer's replay pacing.
const (
	DefaultReplayRate  = 200 // messages per second
	DefaultReplayBurst = 50
)

// forwardBatch is how many buffered messages are published before waiting
// for their acknowledgements: enough to keep the link busy, few enough that
// a dropped connection re-sends little.
const forwardBatch = 64

// Buffered is one message in a device's outbox.
type Buffered struct {
	ID      int64 // assigned by the buffer
	Topic   string
	QoS     byte
	Payload []byte
	// Urgent messages (command responses) are sent before the backlog:
	// someone is waiting for them.
	Urgent  bool
	Created time.Time
}

// BufferStats are a buffer's gauges and counters.
type BufferStats struct {
	Messages    int    // messages waiting
	Bytes       int64  // their topics and payloads
	DroppedFull uint64 // dropped to make room (oldest first)
	DroppedOld  uint64 // dropped for being older than the age bound
}

// Buffer is a device's outbox: where every outgoing message is kept until
// the broker has acknowledged it. buffer.Open returns one on disk.
type Buffer interface {
	// Put keeps m; once it returns nil, m survives the process.
	Put(ctx context.Context, m Buffered) error
	// Peek returns up to max of the oldest messages, urgent ones first.
	Peek(ctx context.Context, max int) ([]Buffered, error)
	// Ack removes messages the broker has acknowledged.
	Ack(ctx context.Context, ids []int64) error
	Stats() BufferStats
}

// WithBuffer makes every outgoing message (telemetry, properties, logs and
// command responses) go through b: Send returns once the message is kept,
// and a forwarder publishes the kept messages at QoS 1, in order (command
// responses first), deleting each when the broker acknowledges it.
// Telemetry and properties are also produced while offline. After an
// outage the backlog is sent before newer messages, paced (see
// WithReplayRate), with the timestamps taken when each was produced.
func WithBuffer(b Buffer) Option { return func(o *options) { o.buffer = b } }

// WithReplayRate paces the forwarder of WithBuffer to perSecond messages
// with bursts of burst, so that draining a long backlog does not flood the
// broker. perSecond <= 0 sends as fast as the broker acknowledges.
func WithReplayRate(perSecond float64, burst int) Option {
	return func(o *options) { o.replayRate, o.replayBurst = perSecond, burst }
}

// outbox forwards a Buffer's messages to the broker.
type outbox struct {
	buf     Buffer
	limiter *rate.Limiter // nil: unpaced
	wake    chan struct{} // a message was put
	sent    chan struct{} // a batch was acknowledged
}

func newOutbox(b Buffer, perSecond float64, burst int) *outbox {
	o := &outbox{buf: b, wake: make(chan struct{}, 1), sent: make(chan struct{}, 1)}
	if perSecond > 0 {
		o.limiter = rate.NewLimiter(rate.Limit(perSecond), max(burst, 1))
	}
	return o
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// enqueue keeps one message and wakes the forwarder. The write is local
// and short, so it is not cut off by ctx: a reading taken just as the
// device stops is kept rather than lost.
func (d *Device) enqueue(ctx context.Context, topic string, payload []byte, urgent bool) error {
	if err := d.outbox.buf.Put(context.WithoutCancel(ctx), Buffered{Topic: topic, QoS: 1, Payload: payload, Urgent: urgent}); err != nil {
		d.stats.dropped.Add(1)
		return err
	}
	signal(d.outbox.wake)
	return nil
}

// forward publishes buffered messages whenever the device is connected,
// until ctx is done. It is the only reader of the buffer.
func (d *Device) forward(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		d.connMu.RLock()
		client, changed := d.client, d.stateC
		d.connMu.RUnlock()
		if client == nil {
			select {
			case <-changed:
			case <-ctx.Done():
			}
			continue
		}
		msgs, err := d.outbox.buf.Peek(ctx, forwardBatch)
		if err != nil {
			if ctx.Err() == nil {
				failures++
				if failures == 1 || failures%60 == 0 {
					d.log.Error("cannot read the buffer; retrying", logKeyErr, err, "failures_in_a_row", failures)
				}
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		failures = 0
		if len(msgs) == 0 {
			select {
			case <-d.outbox.wake:
			case <-changed:
			case <-ctx.Done():
			}
			continue
		}
		if !d.sendBatch(ctx, client, msgs) {
			// The link is failing: wait for the state to change instead of
			// spinning on the same messages.
			select {
			case <-changed:
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// sendBatch publishes msgs and acks those the broker acknowledged; it
// reports whether all were.
func (d *Device) sendBatch(ctx context.Context, client mqtt.Client, msgs []Buffered) bool {
	type pending struct {
		id    int64
		tok   mqtt.Token
		start time.Time
	}
	toks := make([]pending, 0, len(msgs))
	for _, m := range msgs {
		if lim := d.outbox.limiter; lim != nil {
			if err := lim.Wait(ctx); err != nil {
				break
			}
		}
		toks = append(toks, pending{m.ID, client.Publish(m.Topic, 1, false, m.Payload), time.Now()})
	}
	deadline := time.NewTimer(d.opts.publishTimeout)
	defer deadline.Stop()
	acked := make([]int64, 0, len(toks))
	all := len(toks) == len(msgs)
	for _, p := range toks {
		select {
		case <-p.tok.Done():
		case <-deadline.C:
		}
		if !isDone(p.tok) || p.tok.Error() != nil {
			all = false
			d.stats.publishFailures.Add(1)
			continue
		}
		d.stats.observePublish(time.Since(p.start))
		acked = append(acked, p.id)
	}
	if len(acked) > 0 {
		// Ack even when ctx is done: these messages are delivered.
		if err := d.outbox.buf.Ack(context.WithoutCancel(ctx), acked); err != nil {
			d.log.Error("cannot remove sent messages from the buffer; they will be sent again", logKeyErr, err)
		}
		signal(d.outbox.sent)
	}
	return all
}

// drainUrgent waits up to limit for the forwarder to send the urgent
// messages (command responses) the buffer holds; shutdown calls it so that
// final responses go out before the disconnect.
func (d *Device) drainUrgent(limit time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	for {
		msgs, err := d.outbox.buf.Peek(ctx, 1)
		if err != nil || len(msgs) == 0 || !msgs[0].Urgent {
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				d.log.Warn("shutdown: cannot read the buffer", logKeyErr, err)
			}
			return
		}
		select {
		case <-d.outbox.sent:
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return
		}
	}
}
