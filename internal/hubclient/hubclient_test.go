package hubclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/hub"
	"github.com/edk-go/edk/internal/hubclient"
)

func TestCallAndDo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Enapter-Auth-Token") != "tok" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"errors":[{"code":"unauthorized"}]}`)
			return
		}
		switch r.URL.Path {
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			_, _ = w.Write(b)
		case "/text":
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "upstream down\n")
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"errors":[{"code":"not_found"}]}`)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	c := &hubclient.Client{BaseURL: srv.URL, Token: "tok"}

	var echo map[string]int
	if err := c.Do(ctx, "POST", "/echo", map[string]int{"a": 1}, &echo); err != nil || echo["a"] != 1 {
		t.Fatalf("Do echo = %v, %v", echo, err)
	}
	var answer struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	if code, err := c.Call(ctx, "GET", "/missing", nil, &answer); err != nil || code != 404 || answer.Errors[0].Code != "not_found" {
		t.Fatalf("Call = %d %+v %v, want 404 with its JSON decoded", code, answer, err)
	}
	err := c.Do(ctx, "GET", "/text", nil, nil)
	var se *hubclient.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusBadGateway || string(se.Body) != "upstream down" {
		t.Fatalf("Do on a 502 = %v, want a *StatusError with the body", err)
	}
	if _, _, ok := se.First(); ok {
		t.Errorf("First found an error in a plain-text body")
	}
	bad := &hubclient.Client{BaseURL: srv.URL, Token: "wrong"}
	if err := bad.Do(ctx, "GET", "/echo", nil, nil); !errors.As(err, &se) || se.Code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %v", err)
	}
	if code, msg, ok := se.First(); !ok || code != "unauthorized" || msg != "" {
		t.Errorf("First = %q %q %v, want the body's code", code, msg, ok)
	}
	if _, err := c.Call(ctx, "POST", "/echo", json.RawMessage(`"x"`), &echo); err == nil {
		t.Fatal("an answer of the wrong JSON shape decoded without error")
	}
}

// TestAgainstAHub provisions a device on a real hub, assigns it a manifest
// and sends a command the manifest rejects: the hub refuses it at once.
func TestAgainstAHub(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan hub.Info, 1), make(chan error, 1)
	go func() {
		done <- hub.Run(ctx, hub.Config{DataDir: t.TempDir(), MQTTAddr: "127.0.0.1:0", MQTTSAddr: "-", HTTPAddr: "127.0.0.1:0",
			Ready: func(i hub.Info) { ready <- i }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hub: %v", err)
		}
	})
	var info hub.Info
	select {
	case info = <-ready:
	case err := <-done:
		t.Fatalf("hub: %v", err)
	}
	c := &hubclient.Client{BaseURL: info.HTTPURL, Token: info.Token}
	id, cfg, err := c.Provision(ctx, "Inverter", "inverter", commconfig.ProtocolMQTT)
	if err != nil || id == "" || cfg.HardwareID == "" {
		t.Fatalf("Provision = %q, %+v, %v", id, cfg, err)
	}
	manifest, err := os.ReadFile("../../sim/inverter/manifest.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AssignManifest(ctx, id, manifest); err != nil {
		t.Fatalf("AssignManifest: %v", err)
	}
	_, err = c.ExecuteCommand(ctx, id, "set_power", map[string]any{"power": "abc"})
	var se *hubclient.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusUnprocessableEntity {
		t.Fatalf("a command the manifest rejects: %v, want a 422 StatusError", err)
	}
}
