package exec_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/edk-go/edk/hub/broker"
	"github.com/edk-go/edk/hub/exec"
	"github.com/edk-go/edk/hub/ingest"
	"github.com/edk-go/edk/hub/store"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

const waitTimeout = 10 * time.Second

type env struct {
	t      *testing.T
	st     *store.Store
	x      *exec.Executor
	p      *ingest.Pipeline
	b      *broker.Broker
	dev    store.Device
	device paho.Client // the fake device
}

// newEnv wires store, ingest, broker and executor as the hub does, and
// connects a fake device (hw1/ch1) that answers by command name:
// "ok": log then completed; "fail": error; "dup": completed then error;
// anything else: no answer.
func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "hub.db"), store.Options{PasswordIterations: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	dev, err := st.CreateDevice(ctx, store.NewDevice{Name: "one", Slug: "one", HardwareID: "hw1", ChannelID: "ch1"})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, st: st, dev: dev}

	var b *broker.Broker // set below: the executor is built before the broker
	e.x = exec.New(st, exec.PublisherFunc(func(topic string, payload []byte, retain bool, qos byte) error {
		return b.Publish(topic, payload, retain, qos)
	}), nil)
	e.p, err = ingest.New(ingest.Config{Store: st, Sink: e.x, FlushInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.p.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	b, err = broker.Start(ctx, broker.Config{Addr: "127.0.0.1:0", Hooks: []mqtt.Hook{e.p.Hook()}})
	if err != nil {
		t.Fatal(err)
	}
	e.b = b
	t.Cleanup(func() { _ = b.Close() })

	e.device = testutil.Connect(t, b.Addr())
	respTopic := "v1/from/hw1/ch1/v1/command/responses"
	answer := func(id string, state mqttapi.ResponseState, payload string) {
		body := fmt.Sprintf(`{"id":%q,"state":%q,"payload":%s}`, id, state, payload)
		e.device.Publish(respTopic, 1, false, body) // not waited for: this runs in paho's handler
	}
	tok := e.device.Subscribe("v1/to/hw1/ch1/v1/command/requests", 1, func(_ paho.Client, m paho.Message) {
		req, err := mqttapi.DecodeCommandRequest(m.Payload())
		if err != nil {
			t.Errorf("device got a bad request: %v", err)
			return
		}
		switch req.Name {
		case "ok":
			answer(req.ID, mqttapi.StateLog, `{"step":1}`)
			answer(req.ID, mqttapi.StateCompleted, fmt.Sprintf(`{"echo":%s}`, orNull(req.Arguments)))
		case "fail":
			answer(req.ID, mqttapi.StateError, `{"message":"broken"}`)
		case "dup":
			answer(req.ID, mqttapi.StateCompleted, `{"n":1}`)
			answer(req.ID, mqttapi.StateError, `{"n":2}`)
		}
	})
	if err := testutil.Wait(tok); err != nil {
		t.Fatal(err)
	}
	return e
}

func orNull(b json.RawMessage) string {
	if len(b) == 0 {
		return "null"
	}
	return string(b)
}

// waitResponses waits until ingest has handed n responses to the executor.
func (e *env) waitResponses(n uint64) {
	e.t.Helper()
	testutil.Eventually(e.t, fmt.Sprintf("ingest to hand %d responses", n), func() bool { return e.p.Stats().Responses >= n })
}

func (e *env) get(id string) store.Execution {
	e.t.Helper()
	ex, err := e.st.GetExecution(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return ex
}

func TestSucceeds(t *testing.T) {
	e := newEnv(t)
	ex, err := e.x.Execute(context.Background(), e.dev.ID,
		store.ExecutionRequest{Name: "ok", Arguments: json.RawMessage(`{"a":1}`)}, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if ex.State != store.ExecutionSuccess || ex.Response == nil || ex.Response.State != store.ResponseSucceeded ||
		string(ex.Response.Payload) != `{"echo":{"a":1}}` {
		t.Errorf("execution = %+v, response %+v", ex, ex.Response)
	}
	if len(ex.Log) != 2 || ex.Log[0].State != store.ResponseInProgress || string(ex.Log[0].Payload) != `{"step":1}` {
		t.Errorf("log = %+v", ex.Log)
	}
	if got := e.get(ex.ID); got.State != store.ExecutionSuccess || len(got.Log) != 2 {
		t.Errorf("stored = %+v", got)
	}
	if n := e.x.Pending(); n != 0 {
		t.Errorf("%d pending after the answer", n)
	}
}

func TestDeviceError(t *testing.T) {
	e := newEnv(t)
	ex, err := e.x.Execute(context.Background(), e.dev.ID, store.ExecutionRequest{Name: "fail"}, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if ex.State != store.ExecutionError || ex.Response.State != store.ResponseError || string(ex.Response.Payload) != `{"message":"broken"}` {
		t.Errorf("execution = %+v", ex)
	}
}

func TestParallel(t *testing.T) {
	e := newEnv(t)
	const n = 100
	var wg sync.WaitGroup
	ids := make(chan string, n)
	for i := range n {
		wg.Go(func() {
			args := json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))
			ex, err := e.x.Execute(context.Background(), e.dev.ID, store.ExecutionRequest{Name: "ok", Arguments: args}, waitTimeout)
			if err != nil {
				t.Errorf("execution %d: %v", i, err)
				return
			}
			if ex.State != store.ExecutionSuccess || string(ex.Response.Payload) != fmt.Sprintf(`{"echo":%s}`, args) || len(ex.Log) != 2 {
				t.Errorf("execution %d = %+v", i, ex)
			}
			ids <- ex.ID
		})
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		if seen[id] {
			t.Errorf("id %s used twice", id)
		}
		seen[id] = true
	}
	if e.x.Pending() != 0 {
		t.Errorf("%d pending", e.x.Pending())
	}
}

func TestTimeoutThenLateResponseIgnored(t *testing.T) {
	e := newEnv(t)
	start := time.Now()
	ex, err := e.x.Execute(context.Background(), e.dev.ID, store.ExecutionRequest{Name: "silent"}, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("returned after %v, before the timeout", d)
	}
	if ex.State != store.ExecutionTimeout || ex.Response != nil {
		t.Errorf("execution = %+v", ex)
	}
	if e.x.Pending() != 0 {
		t.Errorf("%d pending after the timeout", e.x.Pending())
	}

	// The device answers after all: recorded nowhere.
	body := fmt.Sprintf(`{"id":%q,"state":"completed","payload":{}}`, ex.ID)
	if err := testutil.Wait(e.device.Publish("v1/from/hw1/ch1/v1/command/responses", 1, false, body)); err != nil {
		t.Fatal(err)
	}
	e.waitResponses(1)
	if got := e.get(ex.ID); got.State != store.ExecutionTimeout || len(got.Log) != 0 {
		t.Errorf("after a late answer: %+v", got)
	}
	if st := e.x.Stats(); st != (exec.Stats{Timeout: 1}) {
		t.Errorf("stats = %+v, want one timeout and nothing else", st)
	}
}

func TestDuplicateFinalIgnored(t *testing.T) {
	e := newEnv(t)
	ex, err := e.x.Execute(context.Background(), e.dev.ID, store.ExecutionRequest{Name: "dup"}, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	e.waitResponses(2)
	got := e.get(ex.ID)
	if ex.State != store.ExecutionSuccess || got.State != store.ExecutionSuccess || len(got.Log) != 1 ||
		string(got.Response.Payload) != `{"n":1}` {
		t.Errorf("returned %+v, stored %+v", ex, got)
	}
	if st := e.x.Stats(); st != (exec.Stats{Success: 1}) {
		t.Errorf("stats = %+v, want one success counted once", st)
	}
}

func TestUnknownDevice(t *testing.T) {
	e := newEnv(t)
	_, err := e.x.Execute(context.Background(), "no-such-device", store.ExecutionRequest{Name: "ok"}, waitTimeout)
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("err = %v, want ErrNotFound", err)
	}
}

func TestInvalidArguments(t *testing.T) {
	e := newEnv(t)
	_, err := e.x.Execute(context.Background(), e.dev.ID, store.ExecutionRequest{Name: "ok", Arguments: json.RawMessage(`[1]`)}, waitTimeout)
	if !errors.Is(err, store.ErrInvalid) {
		t.Errorf("err = %v, want ErrInvalid", err)
	}
}

func TestContextCancelled(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Bounded: cancel anyway, and the test fails on what Execute says.
		testutil.Poll(waitTimeout, func() bool { return e.x.Pending() > 0 })
		cancel()
	}()
	_, err := e.x.Execute(ctx, e.dev.ID, store.ExecutionRequest{Name: "silent"}, waitTimeout)
	if err != context.Canceled {
		t.Errorf("err = %v, want context.Canceled as is", err)
	}
	if e.x.Pending() != 0 {
		t.Errorf("%d pending after cancel", e.x.Pending())
	}
}

func TestPublishFailureStoresError(t *testing.T) {
	e := newEnv(t)
	boom := errors.New("broker down")
	x := exec.New(e.st, exec.PublisherFunc(func(string, []byte, bool, byte) error { return boom }), nil)
	_, err := x.Execute(context.Background(), e.dev.ID, store.ExecutionRequest{Name: "ok"}, waitTimeout)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	list, err := e.st.ListExecutions(context.Background(), e.dev.ID, 0, 10)
	if err != nil || len(list) != 1 || list[0].State != store.ExecutionError {
		t.Errorf("stored = %+v, %v", list, err)
	}
	if x.Pending() != 0 {
		t.Errorf("%d pending", x.Pending())
	}
	if st := x.Stats(); st != (exec.Stats{Error: 1}) {
		t.Errorf("stats = %+v, want one error", st)
	}
}

func TestResponseFromAnotherDeviceIgnored(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	other, err := e.st.CreateDevice(ctx, store.NewDevice{Name: "two", Slug: "two", HardwareID: "hw2", ChannelID: "ch2"})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := e.x.Execute(ctx, e.dev.ID, store.ExecutionRequest{Name: "silent"}, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// Open execution of dev (nobody waits), answered by another device, and
	// an unknown id: both ignored.
	open, err := e.st.CreateExecution(ctx, e.dev.ID, store.ExecutionRequest{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	e.x.OnResponse(other.ID, "hw2", "ch2", mqttapi.CommandResponse{ID: open.ID, State: mqttapi.StateCompleted})
	e.x.OnResponse(e.dev.ID, "hw1", "ch1", mqttapi.CommandResponse{ID: "unknown", State: mqttapi.StateCompleted})
	if got := e.get(open.ID); got.State != store.ExecutionNew || len(got.Log) != 0 {
		t.Errorf("another device's answer was recorded: %+v", got)
	}
	// The right device's answer to an open execution nobody waits for is kept.
	e.x.OnResponse(e.dev.ID, "hw1", "ch1", mqttapi.CommandResponse{ID: open.ID, State: mqttapi.StateLog})
	if got := e.get(open.ID); got.State != store.ExecutionInProgress || len(got.Log) != 1 {
		t.Errorf("answer to an open execution: %+v", got)
	}
	if got := e.get(ex.ID); got.State != store.ExecutionTimeout {
		t.Errorf("timed out execution = %+v", got)
	}
}
