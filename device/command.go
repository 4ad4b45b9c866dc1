package device

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edk-go/edk/driver"
	"github.com/edk-go/edk/internal/ratelog"
	"github.com/edk-go/edk/mqttapi"
)

// HandlerFunc runs one command. It returns the payload of the completed
// response (a map or struct that encodes to a JSON object, or nil for {}),
// or an error for an error response whose payload.message is err's text
// (see CommandError to control the payload). ctx is cancelled when the
// command times out or the device shuts down.
type HandlerFunc func(ctx context.Context, cmd *Command) (any, error)

type handler struct {
	fn      HandlerFunc
	timeout time.Duration
}

// HandleOption configures one command handler.
type HandleOption func(*handler)

// Timeout overrides the device's command timeout for one command.
func Timeout(d time.Duration) HandleOption { return func(h *handler) { h.timeout = d } }

// Handle registers fn for the command name, replacing any earlier handler.
// It may be called before or during Run.
func (d *Device) Handle(name string, fn HandlerFunc, opts ...HandleOption) {
	h := d.newHandler(fn, opts)
	d.handlersMu.Lock()
	d.handlers[name] = h
	d.handlersMu.Unlock()
}

// HandleAny registers fn for every command that has no handler of its
// own. Without it such commands get an "unknown command" error.
func (d *Device) HandleAny(fn HandlerFunc, opts ...HandleOption) {
	h := d.newHandler(fn, opts)
	d.handlersMu.Lock()
	d.fallback = &h
	d.handlersMu.Unlock()
}

func (d *Device) newHandler(fn HandlerFunc, opts []HandleOption) handler {
	h := handler{fn: fn, timeout: d.opts.commandTimeout}
	for _, o := range opts {
		o(&h)
	}
	return h
}

func (d *Device) handler(name string) (handler, bool) {
	d.handlersMu.RLock()
	defer d.handlersMu.RUnlock()
	h, ok := d.handlers[name]
	if !ok && d.fallback != nil {
		return *d.fallback, true
	}
	return h, ok
}

func (d *Device) commandNames() string {
	d.handlersMu.RLock()
	names := make([]string, 0, len(d.handlers))
	for n := range d.handlers {
		names = append(names, n)
	}
	d.handlersMu.RUnlock()
	if len(names) == 0 {
		return "none"
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// Command is one command request being executed.
type Command struct {
	ID        string
	Name      string
	Arguments json.RawMessage // a JSON object, or empty

	d       *Device
	channel string
	exec    *execution
	args    map[string]any // decoded on first use
}

// Decode decodes the arguments into v (a pointer to a struct or map). A
// type mismatch comes back as an *ArgumentError naming the argument.
func (c *Command) Decode(v any) error {
	args := c.Arguments
	if len(args) == 0 {
		args = json.RawMessage("{}")
	}
	if err := json.Unmarshal(args, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return &ArgumentError{Argument: te.Field, Problem: fmt.Sprintf("is a JSON %s, want %s", te.Value, te.Type)}
		}
		return fmt.Errorf("decode arguments of %q: %w", c.Name, err)
	}
	return nil
}

// Args returns the arguments as a map (empty, never nil, when none were
// sent). The map is decoded once and shared between calls.
func (c *Command) Args() map[string]any {
	if c.args == nil {
		c.args = map[string]any{}
		_ = c.Decode(&c.args) // the decoder already checked that arguments are an object
	}
	return c.args
}

// Number returns a required numeric argument (driver.Number of Args).
func (c *Command) Number(name string) (float64, error) {
	return driver.Number(c.Args(), name)
}

// Progress sends a "log" response carrying payload, telling the sender how
// the command is getting on. It does nothing once the command has finished.
// It does not wait for the broker: responses of one command leave in the
// order they were sent, and an error means the response could not be sent.
func (c *Command) Progress(ctx context.Context, payload any) error {
	if c.exec.finished.Load() {
		return nil
	}
	r, err := mqttapi.NewCommandResponse(c.ID, mqttapi.StateLog, payload)
	if err != nil {
		return err
	}
	return c.d.respond(c.channel, r)
}

// Logf sends a "log" response whose payload is {"message": <text>}.
func (c *Command) Logf(ctx context.Context, format string, args ...any) error {
	return c.Progress(ctx, map[string]string{"message": fmt.Sprintf(format, args...)})
}

// execution is the runtime's record of one request id.
type execution struct {
	name     string
	finished atomic.Bool
}

// onRequest is paho's callback for command requests. paho calls it on its
// router goroutine (OrderMatters is on), which must never block: the
// request goes straight to a worker.
func (d *Device) onRequest(_ mqtt.Client, msg mqtt.Message) {
	topic, payload := msg.Topic(), msg.Payload()
	if !d.admit() {
		return
	}
	if !d.workers.submit(func() { defer d.intake.open.Add(-1); d.route(topic, payload) }) {
		d.intake.open.Add(-1)
		d.log.Warn("dropped a command request that arrived during shutdown", "topic", topic)
	}
}

// intake counts the command requests a device has open, and those it
// dropped for being over WithMaxOpenRequests.
type intake struct {
	open    atomic.Int64 // requests on a worker
	dropped atomic.Uint64
	log     *ratelog.Limiter // one line per 10 s about drops
}

// admit counts a request in, or drops it when the device already has
// maxOpen requests open: on workers, or answered and waiting for the
// broker's acknowledgement (paho holds each such response, and runs out of
// message ids at 65 535).
func (d *Device) admit() bool {
	limit := int64(d.opts.maxOpen)
	if limit <= 0 {
		d.intake.open.Add(1)
		return true
	}
	if n := d.intake.open.Add(1); n <= limit && n+int64(d.responses.pending()) <= limit {
		return true
	}
	d.intake.open.Add(-1)
	d.intake.dropped.Add(1)
	if ok, more := d.intake.log.Allow(); ok {
		d.log.Warn("dropped command requests: the device has too many open (running, or answered and not yet acknowledged by the broker); the sender sends faster than the device answers (logged at most once every 10 s)",
			"limit", limit, "dropped", more+1, "dropped_total", d.intake.dropped.Load())
	}
	return false
}

func (d *Device) route(topic string, payload []byte) {
	// Only two topics are subscribed to; comparing with them is much cheaper
	// than parsing the topic of every request.
	switch topic {
	case d.requestTopic:
		d.dispatch(d.cfg.ChannelID, payload)
	case d.ucmRequestTopic:
		d.onUCMRequest(payload)
	default:
		d.log.Warn("ignored a message on an unexpected topic", "topic", topic)
	}
}

func (d *Device) dispatch(channel string, payload []byte) {
	req, err := mqttapi.DecodeCommandRequest(payload)
	if err == nil && len(payload) > d.opts.maxRequestSize {
		err = &mqttapi.DecodeError{Message: "command request", ID: req.ID,
			Problem: fmt.Sprintf("request is %d bytes, more than this device's limit of %d", len(payload), d.opts.maxRequestSize)}
	}
	if err != nil {
		var derr *mqttapi.DecodeError
		if errors.As(err, &derr) && derr.ID != "" {
			d.log.Warn("refused a malformed command request", logKeyID, derr.ID, logKeyErr, err)
			d.finishAndRespond(channel, derr.ID, mqttapi.ErrorResponse(derr.ID, err.Error()), false)
			return
		}
		d.log.Warn("dropped a command request without a usable id", logKeyErr, err, "bytes", len(payload))
		return
	}

	exec, st, final := d.cmds.begin(req.ID, req.Name)
	switch st {
	case beginRunning:
		d.log.Debug("ignored a duplicate of a running command", logKeyID, req.ID, logKeyCommand, req.Name)
	case beginFinished:
		d.log.Info("re-sent the final response to a duplicate request", logKeyID, req.ID, logKeyCommand, req.Name)
		d.sendFinal(channel, final)
	case beginClosing:
		d.sendFinal(channel, mqttapi.ErrorResponse(req.ID, "device is shutting down; send the command again once it is back"))
	case beginStarted:
		d.execute(channel, req, exec)
	}
}

// execute runs the handler for req on the calling worker and sends its one
// final response. A timeout or shutdown answers at once, from the context's
// AfterFunc, even if the handler ignores its context and never returns.
func (d *Device) execute(channel string, req mqttapi.CommandRequest, exec *execution) {
	h, ok := d.handler(req.Name)
	if !ok {
		d.log.Warn("unknown command", logKeyCommand, req.Name, logKeyID, req.ID)
		d.finishAndRespond(channel, req.ID, mqttapi.ErrorResponse(req.ID,
			fmt.Sprintf("unknown command %q; this device handles: %s", req.Name, d.commandNames())), false)
		return
	}
	start := time.Now()
	cmd := &Command{ID: req.ID, Name: req.Name, Arguments: req.Arguments, d: d, channel: channel, exec: exec}
	if d.manifest != nil {
		if err := d.manifest.checkCommand(cmd); err != nil {
			d.finish(channel, req, start, d.responseFor(context.Background(), req, h.timeout, nil, err), false)
			return
		}
	}
	ctx, cancel := context.WithTimeout(d.cmds.ctx, h.timeout)
	defer cancel()
	stopWatch := context.AfterFunc(ctx, func() {
		d.finish(channel, req, start, d.responseFor(ctx, req, h.timeout, nil, ctx.Err()), timedOut(ctx, ctx.Err()))
	})
	payload, err := d.call(ctx, h.fn, cmd)
	if !stopWatch() {
		return // the timeout or shutdown already answered
	}
	d.finish(channel, req, start, d.responseFor(ctx, req, h.timeout, payload, err), timedOut(ctx, err))
}

// call runs a handler, turning a panic into an error.
func (d *Device) call(ctx context.Context, fn HandlerFunc, cmd *Command) (payload any, err error) {
	defer func() {
		if p := recover(); p != nil {
			d.log.Error("command handler panicked", logKeyCommand, cmd.Name, logKeyID, cmd.ID, "panic", p, "stack", string(debug.Stack()))
			payload, err = nil, fmt.Errorf("command %q failed: handler panicked: %v", cmd.Name, p)
		}
	}()
	return fn(ctx, cmd)
}

func (d *Device) finish(channel string, req mqttapi.CommandRequest, start time.Time, resp mqttapi.CommandResponse, timedOut bool) {
	if resp.State == mqttapi.StateError {
		d.log.Warn("command failed", logKeyCommand, req.Name, logKeyID, req.ID, "message", resp.Message(), "took", time.Since(start))
	} else if d.log.Enabled(context.Background(), slog.LevelDebug) {
		d.log.Debug("command completed", logKeyCommand, req.Name, logKeyID, req.ID, "took", time.Since(start))
	}
	d.finishAndRespond(channel, req.ID, resp, timedOut)
}

// responseFor turns a handler's result into its final response; ctx is the
// handler's context, which tells a timeout (of length timeout) from a shutdown.
func (d *Device) responseFor(ctx context.Context, req mqttapi.CommandRequest, timeout time.Duration, payload any, err error) mqttapi.CommandResponse {
	if err == nil {
		r, encErr := mqttapi.NewCommandResponse(req.ID, mqttapi.StateCompleted, payload)
		if encErr != nil {
			return mqttapi.ErrorResponse(req.ID, fmt.Sprintf("command %q finished but its result could not be sent: %v", req.Name, encErr))
		}
		return r
	}
	var cerr *CommandError
	switch {
	case errors.As(err, &cerr):
		p := map[string]any{}
		for k, v := range cerr.Payload {
			p[k] = v
		}
		p["message"] = cerr.Message
		if r, encErr := mqttapi.NewCommandResponse(req.ID, mqttapi.StateError, p); encErr == nil {
			return r
		}
		return mqttapi.ErrorResponse(req.ID, cerr.Message)
	case timedOut(ctx, err):
		return mqttapi.ErrorResponse(req.ID, fmt.Sprintf("command %q timed out after %s", req.Name, timeout))
	case ctx.Err() != nil && d.cmds.isClosing():
		return mqttapi.ErrorResponse(req.ID, fmt.Sprintf("command %q interrupted: the device is shutting down", req.Name))
	}
	return mqttapi.ErrorResponse(req.ID, err.Error())
}

// timedOut tells whether a handler's err comes from its own timeout.
func timedOut(ctx context.Context, err error) bool {
	return errors.Is(ctx.Err(), context.DeadlineExceeded) && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled))
}

// finishAndRespond records resp as the final answer to id and sends it,
// unless a final answer was already recorded: exactly one per id.
func (d *Device) finishAndRespond(channel, id string, resp mqttapi.CommandResponse, timedOut bool) {
	sent, first := d.cmds.finish(id, resp)
	if !first {
		return
	}
	switch {
	case resp.State != mqttapi.StateError:
		d.stats.completed.Add(1)
	case timedOut:
		d.stats.timedOut.Add(1)
	default:
		d.stats.failed.Add(1)
	}
	d.sendFinal(channel, resp)
	sent()
}

func (d *Device) sendFinal(channel string, resp mqttapi.CommandResponse) {
	if err := d.respond(channel, resp); err != nil {
		d.log.Error("could not send command response", logKeyID, resp.ID, logKeyErr, err)
	}
}
