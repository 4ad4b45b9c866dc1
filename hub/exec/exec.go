// Package exec runs the hub's command executions: it stores an execution,
// sends the request to the device over MQTT, records every response the
// device sends back (ingest hands them over through OnResponse), and wakes
// the caller when the final one arrives or the timeout passes.
//
// Waiters are kept in a map keyed by execution id, each with a buffered
// channel; an entry is removed when the final response arrives, when the
// timeout passes and when the caller's context ends, so nothing leaks.
// The store settles the race between a timeout and a late answer: a finished
// execution refuses further changes (store.ErrConflict), so whichever comes
// first wins and the other is ignored.
package exec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edk-go/edk/hub/store"
	"github.com/edk-go/edk/mqttapi"
)

// DefaultTimeout is the wait for a final response when Execute is given none.
const DefaultTimeout = 30 * time.Second

// storeTimeout bounds the store calls made outside the caller's context (the
// final state after a timeout, and responses, which arrive on ingest's
// goroutine).
const storeTimeout = 10 * time.Second

// Publisher sends a message to the broker; hub/broker.Broker satisfies it.
type Publisher interface {
	Publish(topic string, payload []byte, retain bool, qos byte) error
}

// PublisherFunc adapts a function to Publisher, e.g. to break the
// construction cycle broker → ingest hook → executor → broker.
type PublisherFunc func(topic string, payload []byte, retain bool, qos byte) error

// Publish calls f.
func (f PublisherFunc) Publish(topic string, payload []byte, retain bool, qos byte) error {
	return f(topic, payload, retain, qos)
}

// Executor runs command executions. It is safe for concurrent use.
type Executor struct {
	// OnlyPending makes OnResponse ignore responses that no Execute of this
	// Executor waits for. Set it when several hub processes share one store
	// and each sees every response (external-broker mode): the process that
	// sent the command records its answers, the others would duplicate them.
	OnlyPending bool

	store *store.Store
	pub   Publisher
	log   *slog.Logger

	mu      sync.Mutex
	pending map[string]*waiter // execution id → waiter

	success, failed, timedOut atomic.Uint64
}

// Stats are the Executor's counters since New.
type Stats struct {
	// Executions this Executor saw finish, by final state: a final
	// response it recorded (SUCCESS or ERROR), a request it could not
	// send (ERROR), a timeout it recorded (TIMEOUT).
	Success, Error, Timeout uint64
	Pending                 int // executions waiting for their final response
}

// Stats returns a snapshot of the counters.
func (x *Executor) Stats() Stats {
	return Stats{Success: x.success.Load(), Error: x.failed.Load(), Timeout: x.timedOut.Load(), Pending: x.Pending()}
}

// finished counts an execution that this Executor moved to a final state.
func (x *Executor) finished(st store.ExecutionState) {
	switch st {
	case store.ExecutionSuccess:
		x.success.Add(1)
	case store.ExecutionError:
		x.failed.Add(1)
	case store.ExecutionTimeout:
		x.timedOut.Add(1)
	}
}

type waiter struct {
	deviceID string
	done     chan store.Execution // buffered (1): the final execution
}

// New returns an Executor writing to st and publishing with pub. A nil
// logger discards.
func New(st *store.Store, pub Publisher, logger *slog.Logger) *Executor {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Executor{store: st, pub: pub, log: logger, pending: make(map[string]*waiter)}
}

// Pending returns how many executions are waiting for their final response.
func (x *Executor) Pending() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.pending)
}

// Execute sends req to the device and waits up to timeout (DefaultTimeout
// when <= 0) for its final response. It returns the execution as stored:
// SUCCESS or ERROR as the device answered, or TIMEOUT. The execution id is
// the request id the device sees.
//
// Errors: the device does not exist (wraps store.ErrNotFound), the request
// is invalid (store.ErrInvalid), the request could not be published (the
// execution is then stored as ERROR), or ctx ended, in which case ctx.Err()
// is returned as is and the execution stays open: a response that arrives
// later is still recorded.
func (x *Executor) Execute(ctx context.Context, deviceID string, req store.ExecutionRequest, timeout time.Duration) (store.Execution, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	dev, err := x.store.GetDevice(ctx, deviceID)
	if err != nil {
		return store.Execution{}, fmt.Errorf("execute %q: %w", req.Name, err)
	}
	topic, err := mqttapi.NewTopic(mqttapi.ToDevice, dev.HardwareID, dev.ChannelID, mqttapi.KindCommandRequests)
	if err != nil {
		return store.Execution{}, fmt.Errorf("execute %q on %s: %w", req.Name, deviceID, err)
	}
	if len(req.Arguments) > 0 && !isObject(req.Arguments) {
		return store.Execution{}, fmt.Errorf("execute %q on %s: arguments must be a JSON object: %w", req.Name, deviceID, store.ErrInvalid)
	}
	e, err := x.store.CreateExecution(ctx, deviceID, req)
	if err != nil {
		return store.Execution{}, fmt.Errorf("execute %q: %w", req.Name, err)
	}
	payload, err := json.Marshal(mqttapi.CommandRequest{ID: e.ID, Name: req.Name, Arguments: req.Arguments})
	if err != nil {
		return x.fail(e, fmt.Errorf("execute %q on %s: %w", req.Name, deviceID, err))
	}

	// Register before publishing: the answer cannot come before the request.
	w := &waiter{deviceID: deviceID, done: make(chan store.Execution, 1)}
	x.mu.Lock()
	x.pending[e.ID] = w
	x.mu.Unlock()
	defer x.remove(e.ID)

	if err := x.pub.Publish(topic.String(), payload, false, 1); err != nil {
		return x.fail(e, fmt.Errorf("execute %q on %s: send request: %w", req.Name, deviceID, err))
	}

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case final := <-w.done:
		return final, nil
	case <-ctx.Done():
		return store.Execution{}, ctx.Err()
	case <-timer.C:
	}

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	out, err := x.store.SetExecutionState(sctx, e.ID, store.ExecutionTimeout)
	if err == nil {
		x.finished(store.ExecutionTimeout)
	}
	if errors.Is(err, store.ErrConflict) {
		// The final response won the race with the timer (and counted).
		out, err = x.store.GetExecution(sctx, e.ID)
	}
	if err != nil {
		return store.Execution{}, fmt.Errorf("execute %q on %s: %w", req.Name, deviceID, err)
	}
	return out, nil
}

// fail stores the execution as ERROR and returns err.
func (x *Executor) fail(e store.Execution, err error) (store.Execution, error) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if _, serr := x.store.SetExecutionState(ctx, e.ID, store.ExecutionError); serr != nil {
		x.log.Error("exec: mark execution failed", "execution_id", e.ID, "error", serr)
	} else {
		x.finished(store.ExecutionError)
	}
	return store.Execution{}, err
}

func (x *Executor) remove(id string) {
	x.mu.Lock()
	delete(x.pending, id)
	x.mu.Unlock()
}

// responseState maps a device's response state to the v3 API's.
func responseState(s mqttapi.ResponseState) (store.ResponseState, bool) {
	switch s {
	case mqttapi.StateLog:
		return store.ResponseInProgress, true
	case mqttapi.StateCompleted:
		return store.ResponseSucceeded, true
	case mqttapi.StateError:
		return store.ResponseError, true
	}
	return "", false
}

// OnResponse records a response of a device (it implements
// ingest.ResponseSink). A response whose id is no execution of that device,
// or whose execution is already finished (a late answer after a timeout, a
// second final answer), is ignored. A final response wakes the Execute
// waiting for it. It is called on ingest's goroutine and returns after one
// or two store calls.
func (x *Executor) OnResponse(deviceID, hardwareID, channelID string, resp mqttapi.CommandResponse) {
	st, ok := responseState(resp.State)
	if !ok {
		return // mqttapi's decoder lets only the three states through
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()

	x.mu.Lock()
	w := x.pending[resp.ID]
	x.mu.Unlock()
	if (w == nil || w.deviceID != deviceID) && x.OnlyPending {
		return
	}
	if w == nil || w.deviceID != deviceID {
		// Nobody waits (the caller went away, or the hub restarted): record
		// it all the same, if the execution is this device's.
		e, err := x.store.GetExecution(ctx, resp.ID)
		if err != nil || e.DeviceID != deviceID || e.State.Finished() {
			x.log.Debug("exec: response ignored", "device_id", deviceID, "execution_id", shortID(resp.ID),
				"state", resp.State, "error", err)
			return
		}
		w = nil
	}
	e, err := x.store.AddExecutionResponse(ctx, resp.ID, store.ExecutionResponse{State: st, Payload: resp.Payload})
	switch {
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
		x.log.Debug("exec: response to a finished execution ignored", "device_id", deviceID,
			"execution_id", resp.ID, "state", resp.State)
		return
	case err != nil:
		x.log.Error("exec: record response", "device_id", deviceID, "execution_id", resp.ID, "error", err)
		return
	}
	if e.State.Finished() {
		x.finished(e.State)
	}
	if w != nil && resp.State.Final() {
		select {
		case w.done <- e:
		default: // already woken: cannot happen, the store refuses a second final
		}
	}
}

func isObject(b json.RawMessage) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c == '{' && json.Valid(b)
	}
	return false
}

// shortID cuts a device-chosen id for a log line.
func shortID(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
