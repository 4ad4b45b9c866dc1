package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/edk-go/edk/mqttapi"
)

// Request is a command to send to a device.
type Request struct {
	// ID is the request id. Leave it empty to get a fresh random one (the
	// normal case); set it to resend a request under the same id, e.g. to
	// test that a device does not run a duplicate delivery twice.
	ID string
	// Name is the command's name, as the device's blueprint declares it. Required.
	Name string
	// Arguments are marshalled to a JSON object; a json.RawMessage or []byte
	// is sent as is (it must hold an object). nil sends no arguments.
	Arguments any
}

// idBytes is the number of random bytes in a request id (16 hex digits).
const idBytes = 8

// pending is one execution waiting for its responses. The handler appends
// to queue and wakes the waiter; the waiter drains queue in order, so
// progress is never dropped and the handler never blocks.
type pending struct {
	wake chan struct{} // capacity 1

	mu    sync.Mutex
	queue []delivery
}

// delivery is a response for a pending execution, or the reason a message
// that carried its id could not be read.
type delivery struct {
	resp mqttapi.CommandResponse
	err  error
}

func (p *pending) push(d delivery) {
	p.mu.Lock()
	p.queue = append(p.queue, d)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default: // already woken
	}
}

func (p *pending) take() []delivery {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.queue
	p.queue = nil
	return q
}

// Execute sends req to the channel channelID of device hardwareID and waits
// for the final response.
//
// The request is published with QoS 1 on v1/to/<hw>/<ch>/v1/command/requests
// under req.ID, or else under a fresh random id (64 bits from crypto/rand);
// an id that is already waiting is refused. The first Execute for a
// hardware/channel pair subscribes to its responses topic, and the Client
// keeps that subscription until Close.
//
// Each "log" response is passed to onProgress (which may be nil) on the
// caller's goroutine, in arrival order; onProgress may block, and later
// responses wait for it. Execute returns the final response, whose State is
// StateCompleted or StateError: a command that failed on the device is a
// response, not a Go error.
//
// The wait is bounded by ctx: when ctx is done Execute returns ctx.Err()
// itself, or, if the device sent a response under this id that could not be
// decoded, an error that wraps both ctx.Err() and that *mqttapi.DecodeError.
// It returns ErrClosed when the Client is closed meanwhile. Either way
// nothing of the execution is left behind. Responses that arrive later, with
// an unknown id, or after the final one are ignored.
func (c *Client) Execute(ctx context.Context, hardwareID, channelID string, req Request, onProgress func(mqttapi.CommandResponse)) (mqttapi.CommandResponse, error) {
	var none mqttapi.CommandResponse
	reqTopic, err := mqttapi.NewTopic(mqttapi.ToDevice, hardwareID, channelID, mqttapi.KindCommandRequests)
	if err != nil {
		return none, fmt.Errorf("controller: execute %q: %w", req.Name, err)
	}
	if req.Name == "" {
		return none, errors.New("controller: execute: command name is empty")
	}
	args, err := encodeArguments(req.Arguments)
	if err != nil {
		return none, fmt.Errorf("controller: execute %q: %w", req.Name, err)
	}
	id := req.ID
	if id == "" {
		id = randomHex(idBytes)
	}
	payload, err := mqttapi.CommandRequest{ID: id, Name: req.Name, Arguments: args}.MarshalJSON()
	if err != nil {
		return none, fmt.Errorf("controller: execute %q: %w", req.Name, err)
	}

	respFilter := mqttapi.Topic{Direction: mqttapi.FromDevice, HardwareID: hardwareID, ChannelID: channelID, Kind: mqttapi.KindCommandResponses}.String()
	if _, err := c.subscribe(ctx, respFilter, true); err != nil {
		return none, fmt.Errorf("controller: execute %q: %w", req.Name, err)
	}

	p := &pending{wake: make(chan struct{}, 1)}
	c.mu.Lock()
	switch {
	case c.isClosed:
		c.mu.Unlock()
		return none, ErrClosed
	case c.pending[id] != nil:
		c.mu.Unlock()
		return none, fmt.Errorf("controller: execute %q: request id %q is already waiting for a response", req.Name, id)
	}
	c.pending[id] = p
	c.mu.Unlock()
	defer c.forget(id, p)

	tok := c.mqtt.Publish(reqTopic.String(), requestQoS, false, payload)
	published := tok.Done()
	var malformed error // last undecodable response that carried our id
	for {
		select {
		case <-published:
			published = nil
			if err := tok.Error(); err != nil {
				return none, fmt.Errorf("controller: execute %q: publish request to %s: %w", req.Name, reqTopic, err)
			}
		case <-p.wake:
			for _, d := range p.take() {
				switch {
				case d.err != nil:
					malformed = d.err
				case d.resp.State.Final():
					return d.resp, nil
				case onProgress != nil:
					onProgress(d.resp)
				}
			}
		case <-ctx.Done():
			if malformed != nil {
				return none, fmt.Errorf("controller: execute %q (id %s): %w; the device sent a malformed response: %w", req.Name, id, ctx.Err(), malformed)
			}
			return none, ctx.Err()
		case <-c.closed:
			return none, ErrClosed
		}
	}
}

// forget removes a pending execution, unless a final response did already.
func (c *Client) forget(id string, p *pending) {
	c.mu.Lock()
	if c.pending[id] == p {
		delete(c.pending, id)
	}
	c.mu.Unlock()
}

// onResponse hands a response to the execution waiting for its id. A final
// response removes the execution, so a second one finds nobody.
func (c *Client) onResponse(topic mqttapi.Topic, payload []byte) {
	resp, err := mqttapi.DecodeCommandResponse(payload)
	id := resp.ID
	var derr *mqttapi.DecodeError
	if err != nil {
		if !errors.As(err, &derr) || derr.ID == "" {
			c.log.Warn("controller: ignored a malformed command response", logKeyTopic, topic.String(), logKeyError, err)
			return
		}
		id = derr.ID
	}
	c.mu.Lock()
	p := c.pending[id]
	if p != nil && err == nil && resp.State.Final() {
		delete(c.pending, id)
	}
	c.mu.Unlock()
	switch {
	case p == nil:
		c.log.Debug("controller: ignored a response nobody waits for", logKeyTopic, topic.String(), logKeyID, id)
	case err != nil:
		c.log.Warn("controller: malformed command response", logKeyTopic, topic.String(), logKeyID, id, logKeyError, err)
		p.push(delivery{err: err})
	default:
		p.push(delivery{resp: resp})
	}
}

// encodeArguments turns Request.Arguments into a JSON object, or nil for none.
func encodeArguments(v any) (json.RawMessage, error) {
	var b []byte
	switch a := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		b = a
	case []byte:
		b = a
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			return nil, fmt.Errorf("arguments: %w", err)
		}
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return nil, nil
	}
	if !json.Valid(b) {
		return nil, errors.New("arguments are not valid JSON")
	}
	if b[0] != '{' {
		return nil, errors.New("arguments must be a JSON object (a struct or map), not an array or a single value")
	}
	return b, nil
}
