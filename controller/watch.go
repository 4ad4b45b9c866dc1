package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/edk-go/edk/mqttapi"
)

// Event is one message seen by Watch. At most one of Telemetry, Properties,
// Log, Request and Response is set, after Topic.Kind; none is set when Err is.
// An Event may be shared between watchers: treat it as read-only.
type Event struct {
	Time    time.Time     // when the message arrived
	Topic   mqttapi.Topic // zero when the topic could not be parsed (see Err)
	Payload []byte        // as received

	Telemetry  *mqttapi.Telemetry       // v1/telemetry
	Properties *mqttapi.Properties      // v1/properties, v1/register
	Log        *mqttapi.Log             // v3/logs
	Request    *mqttapi.CommandRequest  // v1/command/requests
	Response   *mqttapi.CommandResponse // v1/command/responses

	// Err says why the message could not be read: an unknown topic, or a
	// payload that does not decode (a *mqttapi.DecodeError). The message was
	// malformed; the watch goes on.
	Err error
}

// ErrEventsDropped is wrapped by the Err of the Event that reports events
// dropped because the Watch callback did not keep up.
var ErrEventsDropped = errors.New("events dropped")

// maxQueuedEvents bounds the events waiting for a slow Watch callback.
const maxQueuedEvents = 10000

// Watch shows the traffic of one device: it subscribes to
// v1/from/<hw>/<ch>/# and v1/to/<hw>/<ch>/# and calls fn with every message,
// decoded, until ctx is done. channelID "" or "+" watches every channel.
//
// fn is called on the caller's goroutine, one event at a time, in arrival
// order, so it may block; messages queue meanwhile (up to 10000; beyond that
// they are dropped and an Event whose Err wraps ErrEventsDropped says how
// many). fn must not call Watch on the same Client and wait for it.
//
// Watch returns nil when ctx is done, ErrClosed when the Client is closed, or
// the error that prevented it from subscribing.
func (c *Client) Watch(ctx context.Context, hardwareID, channelID string, fn func(Event), opts ...WatchOption) error {
	var o watchOptions
	for _, opt := range opts {
		opt(&o)
	}
	if channelID == "" {
		channelID = "+"
	}
	if err := mqttapi.ValidateID("hardware_id", hardwareID); err != nil {
		return fmt.Errorf("controller: watch: %w", err)
	}
	if channelID != "+" {
		if err := mqttapi.ValidateID("channel_id", channelID); err != nil {
			return fmt.Errorf("controller: watch: %w", err)
		}
	}

	// Register before subscribing, so that no message is missed between the
	// broker's acknowledgement and the first event.
	w := &watcher{hardwareID: hardwareID, channelID: channelID, wake: make(chan struct{}, 1)}
	c.mu.Lock()
	if c.isClosed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.watchers[w] = struct{}{}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.watchers, w)
		c.mu.Unlock()
	}()

	for _, dir := range []mqttapi.Direction{mqttapi.FromDevice, mqttapi.ToDevice} {
		filter := mqttapi.DeviceFilter(dir, hardwareID, channelID)
		s, err := c.subscribe(ctx, filter, false)
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return nil
			}
			return fmt.Errorf("controller: watch %s: %w", hardwareID, err)
		}
		defer c.unsubscribe(filter, s)
	}
	if o.onSubscribed != nil {
		o.onSubscribed()
	}
	c.mu.Lock()
	hook := c.testHookWatching
	c.mu.Unlock()
	if hook != nil {
		hook()
	}

	for {
		select {
		case <-w.wake:
			for _, e := range w.take() {
				fn(e)
			}
		case <-ctx.Done():
			return nil
		case <-c.closed:
			return ErrClosed
		}
	}
}

// WatchOption configures one Watch.
type WatchOption func(*watchOptions)

type watchOptions struct {
	onSubscribed func()
}

// OnSubscribed makes Watch call fn once the broker has acknowledged its
// subscriptions, before the first event: from then on no message to or
// from the device is missed. A program that starts the device itself
// starts it from fn (edk demo does, so that the first properties show).
func OnSubscribed(fn func()) WatchOption {
	return func(o *watchOptions) { o.onSubscribed = fn }
}

// watcher is one running Watch: onMessage pushes, Watch takes.
type watcher struct {
	hardwareID string
	channelID  string        // "+" for every channel
	wake       chan struct{} // capacity 1

	mu      sync.Mutex
	queue   []Event
	dropped int
}

// matches reports whether a message's topic lies under the watch's filters,
// v1/{from,to}/<hw>/<ch>/#; the rest of the topic may be anything, so that
// an unknown suffix shows up as a malformed message.
func (w *watcher) matches(topic string) bool {
	parts := strings.SplitN(topic, "/", 5)
	return len(parts) == 5 && parts[0] == "v1" &&
		(parts[1] == string(mqttapi.FromDevice) || parts[1] == string(mqttapi.ToDevice)) &&
		parts[2] == w.hardwareID && (w.channelID == "+" || parts[3] == w.channelID)
}

func (w *watcher) push(e Event) {
	w.mu.Lock()
	if len(w.queue) >= maxQueuedEvents {
		w.dropped++
	} else {
		if w.dropped > 0 {
			w.queue = append(w.queue, Event{Time: e.Time, Err: fmt.Errorf("%w: %d messages: the watch callback is too slow", ErrEventsDropped, w.dropped)})
			w.dropped = 0
		}
		w.queue = append(w.queue, e)
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *watcher) take() []Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.queue
	w.queue = nil
	return q
}

// decodeEvent decodes one message with package mqttapi.
func decodeEvent(at time.Time, topic mqttapi.Topic, topicErr error, payload []byte) Event {
	e := Event{Time: at, Topic: topic, Payload: payload}
	if topicErr != nil {
		e.Topic = mqttapi.Topic{}
		e.Err = topicErr
		return e
	}
	switch topic.Kind {
	case mqttapi.KindTelemetry:
		v, err := mqttapi.DecodeTelemetry(payload)
		e.Telemetry, e.Err = ptrOrNil(v, err)
	case mqttapi.KindProperties, mqttapi.KindRegister:
		v, err := mqttapi.DecodeProperties(payload)
		e.Properties, e.Err = ptrOrNil(v, err)
	case mqttapi.KindLogs:
		v, err := mqttapi.DecodeLog(payload)
		e.Log, e.Err = ptrOrNil(v, err)
	case mqttapi.KindCommandRequests:
		v, err := mqttapi.DecodeCommandRequest(payload)
		e.Request, e.Err = ptrOrNil(v, err)
	case mqttapi.KindCommandResponses:
		v, err := mqttapi.DecodeCommandResponse(payload)
		e.Response, e.Err = ptrOrNil(v, err)
	}
	return e
}

func ptrOrNil[T any](v T, err error) (*T, error) {
	if err != nil {
		return nil, err
	}
	return &v, nil
}
