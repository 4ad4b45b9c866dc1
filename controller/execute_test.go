package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edk-go/edk/hub/broker"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

func TestExecuteProgressThenCompleted(t *testing.T) {
	b := testutil.StartBroker(t)
	seen := startDevice(t, b.Addr(), testHW, testCH, func(req mqttapi.CommandRequest) [][]byte {
		return [][]byte{
			response(t, req.ID, mqttapi.StateLog, map[string]string{"message": "step 1"}),
			response(t, req.ID, mqttapi.StateLog, map[string]string{"message": "step 2"}),
			response(t, req.ID, mqttapi.StateCompleted, map[string]any{"new_power": 4700}),
		}
	})
	c := dial(t, b.Addr())

	var progress []string
	resp, err := c.Execute(testCtx(t), testHW, testCH, Request{Name: "set_power", Arguments: map[string]int{"power": 4700}},
		func(r mqttapi.CommandResponse) { progress = append(progress, r.Message()) })
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	if resp.State != mqttapi.StateCompleted || string(resp.Payload) != `{"new_power":4700}` {
		t.Errorf("response = %s %s, want completed {\"new_power\":4700}", resp.State, resp.Payload)
	}
	if got := strings.Join(progress, ","); got != "step 1,step 2" {
		t.Errorf("progress = %q, want step 1,step 2", got)
	}
	req := <-seen
	if req.Name != "set_power" || string(req.Arguments) != `{"power":4700}` {
		t.Errorf("device got %s %s", req.Name, req.Arguments)
	}
	if req.ID != resp.ID || !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(req.ID) {
		t.Errorf("request id %q, response id %q: want the same 16 hex digits", req.ID, resp.ID)
	}
	if n := pendingCount(c); n != 0 {
		t.Errorf("%d executions still pending", n)
	}
}

func TestExecuteErrorResponse(t *testing.T) {
	b := testutil.StartBroker(t)
	startDevice(t, b.Addr(), testHW, testCH, func(req mqttapi.CommandRequest) [][]byte {
		r := mqttapi.ErrorResponse(req.ID, "power out of range")
		p, _ := r.MarshalJSON()
		return [][]byte{p}
	})
	c := dial(t, b.Addr())

	resp, err := c.Execute(testCtx(t), testHW, testCH, Request{Name: "set_power", Arguments: json.RawMessage(`{"power":-1}`)}, nil)
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	if resp.State != mqttapi.StateError || resp.Message() != "power out of range" {
		t.Errorf("response = %s %s, want error \"power out of range\"", resp.State, resp.Payload)
	}
}

func TestExecuteNoAnswer(t *testing.T) {
	b := testutil.StartBroker(t)
	silent := func(mqttapi.CommandRequest) [][]byte { return nil }
	c := dial(t, b.Addr())

	t.Run("deadline", func(t *testing.T) {
		startDevice(t, b.Addr(), testHW, "a", silent)
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		_, err := c.Execute(ctx, testHW, "a", Request{Name: "slow"}, nil)
		if err != context.DeadlineExceeded {
			t.Errorf("err = %v, want context.DeadlineExceeded as is", err)
		}
		if n := pendingCount(c); n != 0 {
			t.Errorf("%d executions still pending", n)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		seen := startDevice(t, b.Addr(), testHW, "b", silent)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go func() {
			<-seen // the device has the request: the execution waits
			cancel()
		}()
		_, err := c.Execute(ctx, testHW, "b", Request{Name: "slow"}, nil)
		if err != context.Canceled {
			t.Errorf("err = %v, want context.Canceled as is", err)
		}
		if n := pendingCount(c); n != 0 {
			t.Errorf("%d executions still pending", n)
		}
	})
}

// A second final response, a late progress message and responses for ids
// nobody waits for change nothing; the next execution gets its own answer.
func TestExecuteIgnoresDuplicateAndUnknownResponses(t *testing.T) {
	b := testutil.StartBroker(t)
	var mu sync.Mutex
	n := 0
	startDevice(t, b.Addr(), testHW, testCH, func(req mqttapi.CommandRequest) [][]byte {
		mu.Lock()
		n++
		call := n
		mu.Unlock()
		return [][]byte{
			response(t, "nobody-"+req.ID, mqttapi.StateCompleted, map[string]any{"wrong": true}),
			response(t, "nobody-"+req.ID, mqttapi.StateLog, map[string]any{"message": "wrong"}),
			response(t, req.ID, mqttapi.StateCompleted, map[string]any{"call": call, "copy": 1}),
			response(t, req.ID, mqttapi.StateCompleted, map[string]any{"call": call, "copy": 2}),
			response(t, req.ID, mqttapi.StateError, map[string]any{"call": call, "copy": 3}),
			response(t, req.ID, mqttapi.StateLog, map[string]any{"message": "late"}),
		}
	})
	c := dial(t, b.Addr())

	for call := 1; call <= 3; call++ {
		progress := 0
		resp, err := c.Execute(testCtx(t), testHW, testCH, Request{Name: "ping"}, func(mqttapi.CommandResponse) { progress++ })
		if err != nil {
			t.Fatalf("Execute %d: %v", call, err)
		}
		want := fmt.Sprintf(`{"call":%d,"copy":1}`, call)
		if resp.State != mqttapi.StateCompleted || string(resp.Payload) != want {
			t.Errorf("Execute %d = %s %s, want completed %s", call, resp.State, resp.Payload, want)
		}
		if progress != 0 {
			t.Errorf("Execute %d: %d progress calls, want 0", call, progress)
		}
	}
	if n := pendingCount(c); n != 0 {
		t.Errorf("%d executions still pending", n)
	}
}

// The same request delivered twice under a caller-chosen id gets one
// execution at a time: the id is refused while it waits.
func TestExecuteCallerChosenID(t *testing.T) {
	b := testutil.StartBroker(t)
	release := make(chan struct{})
	seen := startDevice(t, b.Addr(), testHW, testCH, func(req mqttapi.CommandRequest) [][]byte {
		<-release
		return [][]byte{response(t, req.ID, mqttapi.StateCompleted, nil)}
	})
	c := dial(t, b.Addr())

	type result struct {
		resp mqttapi.CommandResponse
		err  error
	}
	first := make(chan result, 1)
	go func() {
		r, err := c.Execute(testCtx(t), testHW, testCH, Request{ID: "dup-1", Name: "ping"}, nil)
		first <- result{r, err}
	}()
	if req := <-seen; req.ID != "dup-1" {
		t.Errorf("device got id %q, want dup-1", req.ID)
	}
	_, err := c.Execute(testCtx(t), testHW, testCH, Request{ID: "dup-1", Name: "ping"}, nil)
	if err == nil || !strings.Contains(err.Error(), "already waiting") {
		t.Errorf("second Execute with the same id: err = %v, want already waiting", err)
	}
	close(release)
	if r := <-first; r.err != nil || r.resp.ID != "dup-1" || string(r.resp.Payload) != "{}" {
		t.Errorf("first Execute = %+v, %v", r.resp, r.err)
	}
	// Now that it is answered, the id may be used again.
	if _, err := c.Execute(testCtx(t), testHW, testCH, Request{ID: "dup-1", Name: "ping"}, nil); err != nil {
		t.Errorf("Execute after the first finished: %v", err)
	}
}

func TestExecuteMalformedResponses(t *testing.T) {
	b := testutil.StartBroker(t)
	startDevice(t, b.Addr(), testHW, testCH, func(req mqttapi.CommandRequest) [][]byte {
		if req.Name == "broken" {
			return [][]byte{[]byte(`{"id":"` + req.ID + `","state":"done"}`)}
		}
		return [][]byte{
			[]byte(`not json`),
			[]byte("\xff\xfe"),
			[]byte(`[1,2,3]`),
			[]byte(`{"state":"completed"}`),
			[]byte(`{"id":"` + req.ID + `","state":"bogus"}`),
			[]byte(`{"id":"` + req.ID + `","state":"completed","payload":[1]}`),
			response(t, req.ID, mqttapi.StateLog, map[string]string{"message": "still fine"}),
			response(t, req.ID, mqttapi.StateCompleted, map[string]bool{"ok": true}),
		}
	})
	c := dial(t, b.Addr())

	t.Run("then good", func(t *testing.T) {
		progress := 0
		resp, err := c.Execute(testCtx(t), testHW, testCH, Request{Name: "ping"}, func(mqttapi.CommandResponse) { progress++ })
		if err != nil {
			t.Fatalf("Execute: %v", err)
		}
		if string(resp.Payload) != `{"ok":true}` || progress != 1 {
			t.Errorf("response %s after %d progress messages, want {\"ok\":true} after 1", resp.Payload, progress)
		}
	})
	t.Run("only bad", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		_, err := c.Execute(ctx, testHW, testCH, Request{Name: "broken"}, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want context.DeadlineExceeded", err)
		}
		var derr *mqttapi.DecodeError
		if !errors.As(err, &derr) || derr.Field != "state" {
			t.Errorf("err = %v, want it to carry the decode error of field state", err)
		}
	})
	if n := pendingCount(c); n != 0 {
		t.Errorf("%d executions still pending", n)
	}
}

func TestExecuteConcurrent(t *testing.T) {
	const n = 200
	b := testutil.StartBroker(t)
	startDevice(t, b.Addr(), testHW, testCH, func(req mqttapi.CommandRequest) [][]byte {
		return [][]byte{
			response(t, req.ID, mqttapi.StateLog, map[string]string{"message": "working"}),
			response(t, req.ID, mqttapi.StateCompleted, req.Arguments),
		}
	})
	c := dial(t, b.Addr())

	ctx := testCtx(t)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			args := fmt.Sprintf(`{"n":%d}`, i)
			progress := 0
			resp, err := c.Execute(ctx, testHW, testCH, Request{Name: "echo", Arguments: json.RawMessage(args)}, func(mqttapi.CommandResponse) { progress++ })
			if err != nil {
				t.Errorf("Execute %d: %v", i, err)
				return
			}
			if string(resp.Payload) != args || progress != 1 {
				t.Errorf("Execute %d = %s after %d progress messages, want %s after 1", i, resp.Payload, progress, args)
			}
		})
	}
	wg.Wait()
	if n := pendingCount(c); n != 0 {
		t.Errorf("%d executions still pending", n)
	}
	want := map[string]bool{"v1/from/hw-1/primary/v1/command/responses": true}
	if got := subscriptions(c); len(got) != 1 || !got["v1/from/hw-1/primary/v1/command/responses"] {
		t.Errorf("subscriptions = %v, want %v", got, want)
	}
}

func TestExecuteBadInput(t *testing.T) {
	b := testutil.StartBroker(t)
	c := dial(t, b.Addr())
	for _, tc := range []struct {
		name, hw, ch string
		req          Request
		want         string
	}{
		{"wildcard hardware", "+", testCH, Request{Name: "x"}, "hardware_id"},
		{"empty channel", testHW, "", Request{Name: "x"}, "channel_id"},
		{"slash in channel", testHW, "a/b", Request{Name: "x"}, "channel_id"},
		{"no name", testHW, testCH, Request{}, "command name is empty"},
		{"array arguments", testHW, testCH, Request{Name: "x", Arguments: []int{1}}, "JSON object"},
		{"number arguments", testHW, testCH, Request{Name: "x", Arguments: 7}, "JSON object"},
		{"invalid raw arguments", testHW, testCH, Request{Name: "x", Arguments: json.RawMessage(`{"a":`)}, "not valid JSON"},
		{"unmarshalable arguments", testHW, testCH, Request{Name: "x", Arguments: map[string]any{"f": func() {}}}, "arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Execute(testCtx(t), tc.hw, tc.ch, tc.req, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one that mentions %q", err, tc.want)
			}
		})
	}
	if got := subscriptions(c); len(got) != 0 {
		t.Errorf("bad input subscribed to %v", got)
	}
}

func TestEncodeArguments(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   any
		want string
	}{
		{"nil", nil, ""},
		{"nil map", map[string]any(nil), ""},
		{"null raw", json.RawMessage(" null "), ""},
		{"map", map[string]int{"b": 2, "a": 1}, `{"a":1,"b":2}`},
		{"struct", struct {
			Power int `json:"power"`
		}{4700}, `{"power":4700}`},
		{"raw", json.RawMessage(` {"x":[1]} `), `{"x":[1]}`},
		{"bytes", []byte(`{}`), `{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := encodeArguments(tc.in)
			if err != nil || string(got) != tc.want {
				t.Errorf("encodeArguments(%v) = %s, %v; want %s", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestClose(t *testing.T) {
	b := testutil.StartBroker(t)
	seen := startDevice(t, b.Addr(), testHW, testCH, func(mqttapi.CommandRequest) [][]byte { return nil })
	c := dial(t, b.Addr())

	errc := make(chan error, 1)
	go func() {
		_, err := c.Execute(testCtx(t), testHW, testCH, Request{Name: "slow"}, nil)
		errc <- err
	}()
	<-seen
	c.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Errorf("pending Execute: err = %v, want ErrClosed", err)
	}
	if _, err := c.Execute(testCtx(t), testHW, testCH, Request{Name: "x"}, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Execute after Close: err = %v, want ErrClosed", err)
	}
	if err := c.Watch(testCtx(t), testHW, "", func(Event) {}); !errors.Is(err, ErrClosed) {
		t.Errorf("Watch after Close: err = %v, want ErrClosed", err)
	}
	c.Close() // twice is fine
}

// After the broker restarts, the client reconnects, subscribes again and
// executes as before.
func TestExecuteAfterBrokerRestart(t *testing.T) {
	b := testutil.StartRestartableBroker(t)
	answer := func(req mqttapi.CommandRequest) [][]byte {
		return [][]byte{response(t, req.ID, mqttapi.StateCompleted, nil)}
	}
	startDevice(t, b.Addr(), testHW, testCH, answer)
	connected := make(chan struct{}, 4)
	c := dialWith(t, Config{BrokerURL: "tcp://" + b.Addr(), testHookConnected: func() { connected <- struct{}{} }})
	<-connected

	if _, err := c.Execute(testCtx(t), testHW, testCH, Request{Name: "ping"}, nil); err != nil {
		t.Fatalf("Execute before restart: %v", err)
	}
	b.Stop()
	b.Start()
	<-connected // reconnected and subscribed again
	startDevice(t, b.Addr(), testHW, testCH, answer)
	if _, err := c.Execute(testCtx(t), testHW, testCH, Request{Name: "ping"}, nil); err != nil {
		t.Fatalf("Execute after restart: %v", err)
	}
}

func TestDialErrors(t *testing.T) {
	for _, tc := range []struct {
		name, url string
		want      []string
	}{
		{"empty", "", []string{"broker URL is empty"}},
		{"no scheme", "localhost:1883", []string{"not supported", "tcp://"}},
		{"no port", "tcp://localhost", []string{"host and port"}},
		{"bad scheme", "http://localhost:80", []string{`scheme "http"`}},
		{"refused", "tcp://user:secret@127.0.0.1:1", []string{"tcp://user:xxxxx@127.0.0.1:1", "check that the broker is running"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Dial(testCtx(t), Config{BrokerURL: tc.url, Password: "hunter2"})
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %q, want it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("err = %q shows a password", err)
			}
		})
	}
}

// onlyUser admits the user "good" and lets it read nothing under v1/from/.
type onlyUser struct{ mochi.HookBase }

func (*onlyUser) ID() string { return "only-user" }
func (*onlyUser) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}
func (*onlyUser) OnConnectAuthenticate(_ *mochi.Client, pk packets.Packet) bool {
	return string(pk.Connect.Username) == "good"
}
func (*onlyUser) OnACLCheck(_ *mochi.Client, topic string, write bool) bool {
	return write || !strings.HasPrefix(topic, "v1/from/")
}

func TestBrokerRefusals(t *testing.T) {
	b, err := broker.Start(testCtx(t), broker.Config{Addr: "127.0.0.1:0", Hooks: []mochi.Hook{new(onlyUser)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })

	_, err = Dial(testCtx(t), Config{BrokerURL: "tcp://" + b.Addr(), Username: "bad", Password: "hunter2"})
	if err == nil || !strings.Contains(err.Error(), "check the username and password") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Dial as bad user: err = %v, want a hint about username and password, without the password", err)
	}

	c := dialWith(t, Config{BrokerURL: "tcp://" + b.Addr(), Username: "good"})
	_, err = c.Execute(testCtx(t), testHW, testCH, Request{Name: "ping"}, nil)
	if err == nil || !strings.Contains(err.Error(), "refused the subscription") {
		t.Errorf("Execute without read access: err = %v, want a refused subscription", err)
	}
	if got := subscriptions(c); len(got) != 0 {
		t.Errorf("a refused subscription is kept: %v", got)
	}
}
