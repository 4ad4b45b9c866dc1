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
//
// Every execution ends in a final state: Close stores the ones still
// waiting as ERROR when the hub stops, and each execution carries its
// deadline in the store, so that Recover (at start) and Sweep finish those
// whose waiter went away with a crashed process.
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

// MaxTimeout is the deadline Sweep gives executions stored without one (by
// an edk from before deadlines were kept): the API's longest timeout.
const MaxTimeout = 10 * time.Minute

// SweepInterval is how often Run looks for executions past their deadline.
const SweepInterval = 30 * time.Second

// sweepGrace is how long past its deadline an execution is left to its
// waiter, whose timer starts a moment after the deadline was stored, before
// Sweep finishes it.
const sweepGrace = 5 * time.Second

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
	closed  bool
	stop    chan struct{}  // closed by Close
	bg      sync.WaitGroup // the waits of Start

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
	return &Executor{store: st, pub: pub, log: logger, pending: make(map[string]*waiter), stop: make(chan struct{})}
}

// Pending returns how many executions are waiting for their final response.
func (x *Executor) Pending() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.pending)
}

// Execute sends req to the device and waits up to timeout (DefaultTimeout
// when <= 0) for its final response. It returns the execution as stored:
// SUCCESS or ERROR as the device answered, TIMEOUT, or ERROR when the
// Executor is closed while it waits (the hub is stopping). The execution id
// is the request id the device sees.
//
// Errors: the device does not exist (wraps store.ErrNotFound), the request
// is invalid (store.ErrInvalid), the request could not be published (the
// execution is then stored as ERROR), or ctx ended, in which case ctx.Err()
// is returned as is and the execution stays open until its deadline (the
// timeout): a response that arrives before then is still recorded.
func (x *Executor) Execute(ctx context.Context, deviceID string, req store.ExecutionRequest, timeout time.Duration) (store.Execution, error) {
	e, w, timeout, err := x.send(ctx, deviceID, req, timeout)
	if err != nil {
		return store.Execution{}, err
	}
	defer x.remove(e.ID)
	return x.wait(ctx, e, w, timeout)
}

// Start sends req to the device like Execute but does not wait: it returns
// the NEW execution at once, and the Executor records what the device
// answers, the timeout, or ERROR when it is closed first. It is Enapter's
// POST /v3/devices/{id}/command_executions.
func (x *Executor) Start(ctx context.Context, deviceID string, req store.ExecutionRequest, timeout time.Duration) (store.Execution, error) {
	x.mu.Lock()
	closed := x.closed
	if !closed {
		x.bg.Add(1)
	}
	x.mu.Unlock()
	if closed {
		return store.Execution{}, fmt.Errorf("execute %q on %s: %w", req.Name, deviceID, ErrClosed)
	}
	e, w, timeout, err := x.send(ctx, deviceID, req, timeout)
	if err != nil {
		x.bg.Done()
		return store.Execution{}, err
	}
	go func() {
		defer x.bg.Done()
		defer x.remove(e.ID)
		_, err := x.wait(context.WithoutCancel(ctx), e, w, timeout)
		switch {
		case errors.Is(err, store.ErrNotFound):
			// The device was deleted meanwhile, and its executions with it.
			x.log.Debug("exec: started execution gone with its device", "execution_id", e.ID)
		case err != nil:
			x.log.Error("exec: finish started execution", "execution_id", e.ID, "err", err)
		}
	}()
	return e, nil
}

// ErrClosed is returned by Start once Close has been called.
var ErrClosed = errors.New("the hub is stopping")

// send stores the execution with its deadline, registers its waiter and
// publishes the request. The caller removes the waiter.
func (x *Executor) send(ctx context.Context, deviceID string, req store.ExecutionRequest, timeout time.Duration) (store.Execution, *waiter, time.Duration, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	fail := func(err error) (store.Execution, *waiter, time.Duration, error) {
		return store.Execution{}, nil, 0, err
	}
	x.mu.Lock()
	closed := x.closed
	x.mu.Unlock()
	if closed {
		return fail(fmt.Errorf("execute %q on %s: %w", req.Name, deviceID, ErrClosed))
	}
	dev, err := x.store.GetDevice(ctx, deviceID)
	if err != nil {
		return fail(fmt.Errorf("execute %q: %w", req.Name, err))
	}
	topic, err := mqttapi.NewTopic(mqttapi.ToDevice, dev.HardwareID, dev.ChannelID, mqttapi.KindCommandRequests)
	if err != nil {
		return fail(fmt.Errorf("execute %q on %s: %w", req.Name, deviceID, err))
	}
	if len(req.Arguments) > 0 && !isObject(req.Arguments) {
		return fail(fmt.Errorf("execute %q on %s: arguments must be a JSON object: %w", req.Name, deviceID, store.ErrInvalid))
	}
	e, err := x.store.CreateExecution(ctx, deviceID, req)
	if err != nil {
		return fail(fmt.Errorf("execute %q: %w", req.Name, err))
	}
	// The deadline lets a sweep finish the execution if this process goes
	// away while it waits.
	if err := x.store.SetExecutionDeadline(ctx, e.ID, e.CreatedAt.Add(timeout)); err != nil {
		_, err = x.fail(e, fmt.Errorf("execute %q on %s: %w", req.Name, deviceID, err))
		return fail(err)
	}
	payload, err := json.Marshal(mqttapi.CommandRequest{ID: e.ID, Name: req.Name, Arguments: req.Arguments})
	if err != nil {
		_, err = x.fail(e, fmt.Errorf("execute %q on %s: %w", req.Name, deviceID, err))
		return fail(err)
	}

	// Register before publishing: the answer cannot come before the request.
	w := &waiter{deviceID: deviceID, done: make(chan store.Execution, 1)}
	x.mu.Lock()
	x.pending[e.ID] = w
	x.mu.Unlock()

	if err := x.pub.Publish(topic.String(), payload, false, 1); err != nil {
		x.remove(e.ID)
		_, err = x.fail(e, fmt.Errorf("execute %q on %s: send request: %w", req.Name, deviceID, err))
		return fail(err)
	}
	return e, w, timeout, nil
}

// wait waits for the final response, the timeout, ctx or Close, and
// returns the execution as it ended.
func (x *Executor) wait(ctx context.Context, e store.Execution, w *waiter, timeout time.Duration) (store.Execution, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	final := store.ExecutionTimeout
	select {
	case done := <-w.done:
		return done, nil
	case <-ctx.Done():
		return store.Execution{}, ctx.Err()
	case <-timer.C:
	case <-x.stop:
		final = store.ExecutionError
	}

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	out, err := x.store.SetExecutionState(sctx, e.ID, final)
	if err == nil {
		x.finished(final)
	}
	if errors.Is(err, store.ErrConflict) {
		// The final response won the race with the timer (and counted).
		out, err = x.store.GetExecution(sctx, e.ID)
	}
	if err != nil {
		return store.Execution{}, fmt.Errorf("execute %q on %s: %w", e.Request.Name, e.DeviceID, err)
	}
	return out, nil
}

// Close ends every wait: each execution still waiting for its device is
// stored as ERROR (Execute returns it so), and Start refuses new ones. It
// returns once the executions started with Start are finished. The hub
// calls it before it stops serving HTTP, so that every caller gets an
// answer and no execution is left NEW.
func (x *Executor) Close() {
	x.mu.Lock()
	if !x.closed {
		x.closed = true
		close(x.stop)
	}
	x.mu.Unlock()
	x.bg.Wait()
}

// Recover finishes the executions that nobody waits for any more. With
// OnlyPending unset (this process is the only one using the store) every
// unfinished execution is one the previous run left behind, and becomes
// ERROR; otherwise only those past their deadline become TIMEOUT, as
// another process may still wait for the rest. The hub calls it once when
// it starts; Run calls Sweep after that.
func (x *Executor) Recover(ctx context.Context) error {
	if x.OnlyPending {
		return x.Sweep(ctx)
	}
	n, err := x.store.FailUnfinishedExecutions(ctx)
	if err != nil {
		return fmt.Errorf("exec: recover: %w", err)
	}
	if n > 0 {
		x.log.Info("exec: executions left unfinished by the last run are ERROR", "count", n)
	}
	return nil
}

// Sweep stores as TIMEOUT every unfinished execution more than a few
// seconds past its deadline (one whose waiter is gone: its process stopped
// or crashed). Executions
// made without a deadline get MaxTimeout after their creation.
func (x *Executor) Sweep(ctx context.Context) error {
	n, err := x.store.ExpireExecutions(ctx, time.Now().Add(-sweepGrace), MaxTimeout)
	if err != nil {
		return fmt.Errorf("exec: sweep: %w", err)
	}
	if n > 0 {
		x.log.Info("exec: executions past their deadline are TIMEOUT", "count", n)
	}
	return nil
}

// Run sweeps every interval (SweepInterval when <= 0) until ctx ends.
func (x *Executor) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = SweepInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := x.Sweep(ctx); err != nil && ctx.Err() == nil {
				x.log.Error("exec: sweep", "err", err)
			}
		}
	}
}

// fail stores the execution as ERROR and returns err.
func (x *Executor) fail(e store.Execution, err error) (store.Execution, error) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if _, serr := x.store.SetExecutionState(ctx, e.ID, store.ExecutionError); serr != nil {
		x.log.Error("exec: mark execution failed", "execution_id", e.ID, "err", serr)
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
				"state", resp.State, "err", err)
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
		x.log.Error("exec: record response", "device_id", deviceID, "execution_id", resp.ID, "err", err)
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
