package device_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

func TestCommandRoundTrip(t *testing.T) {
	b := testutil.StartBroker(t)
	startDevice(t, testConfig(t, b.Addr()), func(d *device.Device) {
		d.Handle("set_power", func(ctx context.Context, cmd *device.Command) (any, error) {
			p, err := cmd.Number("power")
			if err != nil {
				return nil, err
			}
			if err := cmd.Logf(ctx, "setting %g W", p); err != nil {
				return nil, err
			}
			return map[string]any{"new_power": p}, nil
		})
	})
	c := newCloud(t, b.Addr(), testHW, testCH)
	c.send("req-1", "set_power", map[string]any{"power": 4700})
	final, logs := c.final()
	if final.ID != "req-1" || final.State != mqttapi.StateCompleted {
		t.Fatalf("final = %+v, want completed req-1", final)
	}
	if got := payloadOf(t, final)["new_power"]; got != 4700.0 {
		t.Errorf("new_power = %v, want 4700", got)
	}
	if len(logs) != 1 || payloadOf(t, logs[0])["message"] != "setting 4700 W" {
		t.Errorf("progress = %+v, want one log 'setting 4700 W'", logs)
	}
}

func TestCommandErrors(t *testing.T) {
	b := testutil.StartBroker(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	startDevice(t, testConfig(t, b.Addr()), func(d *device.Device) {
		d.Handle("fail", func(context.Context, *device.Command) (any, error) {
			return nil, errors.New("pump is offline")
		})
		d.Handle("fail_custom", func(context.Context, *device.Command) (any, error) {
			return nil, &device.CommandError{Message: "too hot", Payload: map[string]any{"temperature": 91}}
		})
		d.Handle("panic", func(context.Context, *device.Command) (any, error) {
			panic("boom")
		})
		d.Handle("bad_payload", func(context.Context, *device.Command) (any, error) {
			return []int{1, 2}, nil
		})
		// A handler that ignores its context: the timeout must answer anyway.
		d.Handle("hang", func(context.Context, *device.Command) (any, error) {
			<-release
			return nil, nil
		}, device.Timeout(20*time.Millisecond))
		d.Handle("ok", func(context.Context, *device.Command) (any, error) { return nil, nil })
	})
	c := newCloud(t, b.Addr(), testHW, testCH)

	tests := []struct {
		name, command string
		wantMessage   string
	}{
		{"unknown command lists known ones", "nope", `unknown command "nope"; this device handles: bad_payload, fail, fail_custom, hang, ok, panic`},
		{"handler error", "fail", "pump is offline"},
		{"command error", "fail_custom", "too hot"},
		{"panic", "panic", `command "panic" failed: handler panicked: boom`},
		{"payload not an object", "bad_payload", "could not be sent"},
		{"timeout", "hang", `command "hang" timed out after 20ms`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("err-%d", i)
			c.send(id, tt.command, nil)
			r, _ := c.final()
			if r.ID != id || r.State != mqttapi.StateError {
				t.Fatalf("response = %+v, want error for %s", r, id)
			}
			if !strings.Contains(r.Message(), tt.wantMessage) {
				t.Errorf("message = %q, want it to contain %q", r.Message(), tt.wantMessage)
			}
		})
	}
	// The custom payload travels with the message.
	c.send("custom", "fail_custom", nil)
	if r, _ := c.final(); payloadOf(t, r)["temperature"] != 91.0 {
		t.Errorf("custom payload lost: %s", r.Payload)
	}
	// After all that, the device still works.
	c.send("after", "ok", nil)
	if r, _ := c.final(); r.State != mqttapi.StateCompleted {
		t.Fatalf("device broken after errors: %+v", r)
	}
}

func TestMalformedRequests(t *testing.T) {
	b := testutil.StartBroker(t)
	startDevice(t, testConfig(t, b.Addr()), func(d *device.Device) {
		d.Handle("ok", func(context.Context, *device.Command) (any, error) { return map[string]any{"fine": true}, nil })
	}, device.WithMaxRequestSize(64<<10))
	c := newCloud(t, b.Addr(), testHW, testCH)

	huge := `{"id":"huge","name":"ok","arguments":{"blob":"` + strings.Repeat("x", 100<<10) + `"}}`
	tests := []struct {
		name    string
		payload []byte
		wantID  string // "" when no response can be sent
		wantMsg string
	}{
		{"not JSON", []byte("hello"), "", ""},
		{"JSON array", []byte(`[1,2]`), "", ""},
		{"no id", []byte(`{"name":"ok"}`), "", ""},
		{"numeric id", []byte(`{"id":42,"name":"ok"}`), "", ""},
		{"empty id", []byte(`{"id":"","name":"ok"}`), "", ""},
		{"empty payload", []byte{}, "", ""},
		{"no name", []byte(`{"id":"m-noname"}`), "m-noname", `field "name": missing`},
		{"name not a string", []byte(`{"id":"m-badname","name":7}`), "m-badname", `field "name"`},
		{"arguments not an object", []byte(`{"id":"m-args","name":"ok","arguments":[1]}`), "m-args", `field "arguments"`},
		{"invalid UTF-8", []byte("{\"id\":\"m-utf8\",\"name\":\"ok\xff\"}"), "m-utf8", "not valid UTF-8"},
		{"huge payload", []byte(huge), "huge", "more than this device's limit"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.sendRaw(tt.payload)
			if tt.wantID != "" {
				r := c.next()
				if r.ID != tt.wantID || r.State != mqttapi.StateError || !strings.Contains(r.Message(), tt.wantMsg) {
					t.Fatalf("response = %+v %s, want error for %s containing %q", r, r.Payload, tt.wantID, tt.wantMsg)
				}
			}
			// A valid command right after still works, and is the next response.
			id := fmt.Sprintf("valid-%d", i)
			c.send(id, "ok", nil)
			if r := c.next(); r.ID != id || r.State != mqttapi.StateCompleted {
				t.Fatalf("after %s: response = %+v, want completed %s", tt.name, r, id)
			}
		})
	}
}

func TestDuplicateDeliveries(t *testing.T) {
	b := testutil.StartBroker(t)
	var runs atomic.Int32
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	startDevice(t, testConfig(t, b.Addr()), func(d *device.Device) {
		d.Handle("count", func(context.Context, *device.Command) (any, error) {
			return map[string]any{"run": runs.Add(1)}, nil
		})
		d.Handle("slow", func(ctx context.Context, cmd *device.Command) (any, error) {
			started <- struct{}{}
			<-release
			return map[string]any{"run": runs.Add(1)}, nil
		})
	})
	c := newCloud(t, b.Addr(), testHW, testCH)

	t.Run("finished request is answered again, not run again", func(t *testing.T) {
		c.send("dup-1", "count", nil)
		first, _ := c.final()
		c.send("dup-1", "count", nil)
		again, _ := c.final()
		if string(first.Payload) != string(again.Payload) || again.ID != "dup-1" {
			t.Fatalf("re-sent response %s differs from %s", again.Payload, first.Payload)
		}
		if runs.Load() != 1 {
			t.Fatalf("handler ran %d times, want 1", runs.Load())
		}
	})
	t.Run("duplicate of a running request is ignored", func(t *testing.T) {
		c.send("dup-2", "slow", nil)
		<-started
		c.send("dup-2", "slow", nil)
		c.noMoreResponses("marker-1")
		close(release)
		r, _ := c.final()
		if r.ID != "dup-2" || r.State != mqttapi.StateCompleted {
			t.Fatalf("response = %+v", r)
		}
		c.noMoreResponses("marker-2")
		if runs.Load() != 2 {
			t.Fatalf("handler runs = %d, want 2", runs.Load())
		}
	})
}

func TestConcurrentCommands(t *testing.T) {
	const n = 200
	b := testutil.StartBroker(t)
	startDevice(t, testConfig(t, b.Addr()), func(d *device.Device) {
		d.Handle("echo", func(ctx context.Context, cmd *device.Command) (any, error) {
			return cmd.Args(), nil
		})
	})
	c := newCloud(t, b.Addr(), testHW, testCH)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.send(fmt.Sprintf("c-%d", i), "echo", map[string]any{"i": i})
		}()
	}
	// Read while sending: the test client's handler holds paho's router
	// until a response is read, and its PUBACKs queue behind it.
	seen := map[string]bool{}
	for range n {
		r := c.next()
		if r.State != mqttapi.StateCompleted || seen[r.ID] {
			t.Fatalf("response %+v (seen before: %v)", r, seen[r.ID])
		}
		var i int
		fmt.Sscanf(r.ID, "c-%d", &i)
		if payloadOf(t, r)["i"] != float64(i) {
			t.Fatalf("response %s carries %s", r.ID, r.Payload)
		}
		seen[r.ID] = true
	}
	wg.Wait()
}

func TestShutdown(t *testing.T) {
	t.Run("running command finishes within the grace period", func(t *testing.T) {
		b := testutil.StartBroker(t)
		started := make(chan struct{})
		d := startDevice(t, testConfig(t, b.Addr()), func(d *device.Device) {
			d.Handle("work", func(ctx context.Context, cmd *device.Command) (any, error) {
				close(started)
				<-ctx.Done() // would run forever; shutdown must not cancel it before the grace period
				return nil, ctx.Err()
			}, device.Timeout(50*time.Millisecond))
		}, device.WithGracePeriod(5*time.Second))
		c := newCloud(t, b.Addr(), testHW, testCH)
		c.send("s-1", "work", nil)
		<-started
		stopped := make(chan error, 1)
		go func() { stopped <- d.stop(t) }()
		r, _ := c.final()
		if r.State != mqttapi.StateError || !strings.Contains(r.Message(), "timed out") {
			t.Fatalf("response = %+v %s, want its own timeout", r, r.Payload)
		}
		if err := <-stopped; err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		if d.State() != device.StateStopped {
			t.Errorf("state = %s, want stopped", d.State())
		}
	})
	t.Run("command still running after the grace period is interrupted", func(t *testing.T) {
		b := testutil.StartBroker(t)
		started := make(chan struct{})
		d := startDevice(t, testConfig(t, b.Addr()), func(d *device.Device) {
			d.Handle("work", func(ctx context.Context, cmd *device.Command) (any, error) {
				close(started)
				<-ctx.Done()
				return nil, ctx.Err()
			})
		}, device.WithGracePeriod(10*time.Millisecond))
		c := newCloud(t, b.Addr(), testHW, testCH)
		c.send("s-2", "work", nil)
		<-started
		if err := d.stop(t); err != nil {
			t.Fatalf("Run = %v", err)
		}
		r, _ := c.final()
		if r.ID != "s-2" || r.State != mqttapi.StateError || !strings.Contains(r.Message(), "shutting down") {
			t.Fatalf("response = %+v %s, want 'shutting down' error", r, r.Payload)
		}
		if err := d.SendTelemetry(context.Background(), mqttapi.Telemetry{}); !errors.Is(err, device.ErrStopped) {
			t.Errorf("SendTelemetry after stop = %v, want ErrStopped", err)
		}
		if err := d.Run(context.Background()); !errors.Is(err, device.ErrAlreadyRunning) {
			t.Errorf("second Run = %v, want ErrAlreadyRunning", err)
		}
	})
}
