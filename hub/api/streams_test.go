package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edk-go/edk/internal/testutil"
	"github.com/gorilla/websocket"
)

func (e *env) dial(t *testing.T, path string, header http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	return websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(e.srv.URL, "http")+path, header)
}

func (e *env) waitSubscribed(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-e.streams.ready:
		if got != want {
			t.Fatalf("subscribed to %q, want %q", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no subscription")
	}
}

func TestStreamTelemetryClientCloses(t *testing.T) {
	e := newEnv(t)
	id := e.provision("a", "a")
	key := id + "/" + StreamTelemetry
	conn, _, err := e.dial(t, "/v3/devices/"+id+"/telemetry?token="+token, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.waitSubscribed(t, key)
	ch := e.streams.sub(key)
	ch <- StreamEvent{Data: json.RawMessage(`{"timestamp":1,"voltage":230}`)}
	ch <- StreamEvent{Data: json.RawMessage(`{"timestamp":2,"voltage":231}`)}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i, want := range []string{`{"timestamp":1,"voltage":230}`, `{"timestamp":2,"voltage":231}`} {
		typ, data, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if typ != websocket.TextMessage || string(data) != want {
			t.Errorf("message %d: %d %s", i, typ, data)
		}
	}
	if err := conn.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	// The server answers the close frame.
	_, _, err = conn.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Errorf("after close: %v", err)
	}
	_ = conn.Close()
	testutil.Eventually(t, "unsubscribe", func() bool { return e.streams.cancels(key) == 1 })
}

func TestStreamLogsServerEnds(t *testing.T) {
	e := newEnv(t)
	id := e.provision("a", "a")
	key := id + "/" + StreamLogs
	conn, _, err := e.dial(t, "/v3/devices/"+id+"/logs", http.Header{AuthHeader: {token}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	e.waitSubscribed(t, key)
	ch := e.streams.sub(key)
	ch <- StreamEvent{Data: json.RawMessage(`{"message":"hello","severity":"info"}`)}
	close(ch) // the hub ends the stream
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, data, err := conn.ReadMessage(); err != nil || string(data) != `{"message":"hello","severity":"info"}` {
		t.Fatalf("%s %v", data, err)
	}
	_, _, err = conn.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("want a going-away close, got %v", err)
	}
	testutil.Eventually(t, "unsubscribe", func() bool { return e.streams.cancels(key) == 1 })
}

func TestStreamClientVanishes(t *testing.T) {
	e := newEnv(t)
	id := e.provision("a", "a")
	key := id + "/" + StreamTelemetry
	conn, _, err := e.dial(t, "/v3/devices/"+id+"/telemetry?token="+token, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.waitSubscribed(t, key)
	_ = conn.UnderlyingConn().Close() // no close frame
	testutil.Eventually(t, "unsubscribe", func() bool { return e.streams.cancels(key) == 1 })
}

func TestStreamErrors(t *testing.T) {
	e := newEnv(t)
	id := e.provision("a", "a")
	for _, tc := range []struct {
		name   string
		path   string
		header http.Header
		status int
	}{
		{"no token", "/v3/devices/" + id + "/telemetry", nil, 401},
		{"wrong query token", "/v3/devices/" + id + "/telemetry?token=nope", nil, 401},
		{"unknown device", "/v3/devices/nope/logs?token=" + token, nil, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, resp, err := e.dial(t, tc.path, tc.header)
			if err == nil {
				conn.Close()
				t.Fatal("dial succeeded")
			}
			if resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("resp %v, want %d", resp, tc.status)
			}
			resp.Body.Close()
		})
	}
	e.runErrorCases(t, []errorCase{
		{name: "plain GET of an unknown device", method: "GET", path: "/v3/devices/nope/telemetry", status: 404, code: "not_found"},
	})
}

// enapter3 device logs --follow --severity X --show Y passes its filters on
// to the stream.
func TestStreamLogsFilters(t *testing.T) {
	e := newEnv(t)
	id := e.provision("a", "a")
	key := id + "/" + StreamLogs
	conn, _, err := e.dial(t, "/v3/devices/a/logs?severity=error&show=PERSISTED_ONLY", http.Header{AuthHeader: {token}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	e.waitSubscribed(t, key)
	ch := e.streams.sub(key)
	for _, m := range []string{
		`{"severity":"info","persist":true,"message":"wrong severity"}`,
		`{"severity":"error","persist":false,"message":"temporary"}`,
		`not json`,
		`{"severity":"error","persist":true,"message":"this one"}`,
	} {
		ch <- StreamEvent{Data: json.RawMessage(m)}
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, data, err := conn.ReadMessage()
	if err != nil || !strings.Contains(string(data), "this one") {
		t.Fatalf("first message through the filter: %s, %v", data, err)
	}

	_, resp, err := e.dial(t, "/v3/devices/a/logs?show=SOME", http.Header{AuthHeader: {token}})
	if err == nil || resp == nil || resp.StatusCode != 422 {
		t.Fatalf("bad show: %v %v", resp, err)
	}
	resp.Body.Close()
}
