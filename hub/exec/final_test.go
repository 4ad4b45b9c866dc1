package exec_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edk-go/edk/hub/exec"
	"github.com/edk-go/edk/hub/store"
	"github.com/edk-go/edk/internal/testutil"
)

// pollState waits until the execution is in state want.
func pollState(t *testing.T, st *store.Store, id string, want store.ExecutionState) store.Execution {
	t.Helper()
	var e store.Execution
	testutil.Eventually(t, fmt.Sprintf("execution %s to be %s", id, want), func() bool {
		var err error
		if e, err = st.GetExecution(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		return e.State == want
	})
	return e
}

func TestStartDoesNotWait(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	started, err := e.x.Start(ctx, e.dev.ID, store.ExecutionRequest{Name: "ok", Arguments: []byte(`{"a":1}`)}, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if started.State != store.ExecutionNew || started.ID == "" {
		t.Fatalf("Start returned %+v", started)
	}
	done := pollState(t, e.st, started.ID, store.ExecutionSuccess)
	if done.Response == nil || string(done.Response.Payload) != `{"echo":{"a":1}}` {
		t.Fatalf("response %+v", done.Response)
	}
	e.x.Close()
}

func TestStartTimesOut(t *testing.T) {
	e := newEnv(t)
	started, err := e.x.Start(context.Background(), e.dev.ID, store.ExecutionRequest{Name: "silent"}, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	pollState(t, e.st, started.ID, store.ExecutionTimeout)
	e.x.Close()
}

// The bug: an execution waiting when the hub stops must not stay
// NEW; Close ends it as ERROR and Execute returns it, so the HTTP caller gets
// an answer.
func TestCloseEndsWaitingExecutions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	type result struct {
		ex  store.Execution
		err error
	}
	res := make(chan result, 1)
	go func() {
		ex, err := e.x.Execute(ctx, e.dev.ID, store.ExecutionRequest{Name: "silent"}, time.Hour)
		res <- result{ex, err}
	}()
	started, err := e.x.Start(ctx, e.dev.ID, store.ExecutionRequest{Name: "silent"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "2 executions pending", func() bool { return e.x.Pending() >= 2 })
	e.x.Close()
	r := <-res
	if r.err != nil || r.ex.State != store.ExecutionError {
		t.Fatalf("Execute after Close = %+v, %v; want state ERROR", r.ex, r.err)
	}
	pollState(t, e.st, started.ID, store.ExecutionError)
	if _, err := e.x.Start(ctx, e.dev.ID, store.ExecutionRequest{Name: "ok"}, time.Second); !errors.Is(err, exec.ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
	if _, err := e.x.Execute(ctx, e.dev.ID, store.ExecutionRequest{Name: "ok"}, time.Second); !errors.Is(err, exec.ErrClosed) {
		t.Errorf("Execute after Close: %v, want ErrClosed", err)
	}
	if p := e.x.Pending(); p != 0 {
		t.Errorf("pending after Close: %d", p)
	}
}

// An execution left NEW by a crashed run (no Close) is finished when the
// next run starts: ERROR at once when the hub owns the store, TIMEOUT after
// its deadline when other processes may still wait for it.
func TestRecover(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "hub.db")
	st, err := store.Open(ctx, path, store.Options{PasswordIterations: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dev, err := st.CreateDevice(ctx, store.NewDevice{Name: "one", Slug: "one", HardwareID: "hw1", ChannelID: "ch1"})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(deadline time.Time) store.Execution {
		e, err := st.CreateExecution(ctx, dev.ID, store.ExecutionRequest{Name: "x"})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.SetExecutionDeadline(ctx, e.ID, deadline); err != nil {
			t.Fatal(err)
		}
		return e
	}
	past, future := mk(time.Now().Add(-time.Minute)), mk(time.Now().Add(time.Hour))

	shared := exec.New(st, exec.PublisherFunc(func(string, []byte, bool, byte) error { return nil }), nil)
	shared.OnlyPending = true
	if err := shared.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	pollState(t, st, past.ID, store.ExecutionTimeout)
	pollState(t, st, future.ID, store.ExecutionNew)

	own := exec.New(st, exec.PublisherFunc(func(string, []byte, bool, byte) error { return nil }), nil)
	if err := own.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	pollState(t, st, future.ID, store.ExecutionError)
}

func TestRunSweeps(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	st, err := store.Open(ctx, ":memory:", store.Options{PasswordIterations: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dev, err := st.CreateDevice(ctx, store.NewDevice{Name: "one", Slug: "one", HardwareID: "hw1", ChannelID: "ch1"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := st.CreateExecution(ctx, dev.ID, store.ExecutionRequest{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	// Past its deadline by more than the grace a waiter gets.
	if err := st.SetExecutionDeadline(ctx, e.ID, time.Now().Add(-10*time.Second)); err != nil {
		t.Fatal(err)
	}
	x := exec.New(st, exec.PublisherFunc(func(string, []byte, bool, byte) error { return nil }), nil)
	done := make(chan struct{})
	go func() { defer close(done); x.Run(ctx, 5*time.Millisecond) }()
	pollState(t, st, e.ID, store.ExecutionTimeout)
	cancel()
	<-done
}

// A started execution whose device is deleted while it waits ends quietly.
func TestStartedExecutionOfDeletedDevice(t *testing.T) {
	e := newEnv(t)
	logs := &testutil.SyncBuffer{}
	x := exec.New(e.st, exec.PublisherFunc(func(string, []byte, bool, byte) error { return nil }), logs.Logger())
	if _, err := x.Start(context.Background(), e.dev.ID, store.ExecutionRequest{Name: "silent"}, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := e.st.DeleteDevice(context.Background(), e.dev.ID); err != nil {
		t.Fatal(err)
	}
	x.Close() // waits for the started execution to end
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("logged an error:\n%s", logs)
	}
}
