package controller

import (
	"context"
	"log/slog"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testHW = "hw-1"
	testCH = "primary"
)

// testTimeout bounds every wait in these tests, so that a bug fails a test
// instead of hanging the run.
const testTimeout = 20 * time.Second

// testCtx returns a context that ends with the test or after testTimeout.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// dial connects a Client to the broker at addr and closes it when the test
// ends; its log goes to the test's output.
func dial(t testing.TB, addr string) *Client {
	t.Helper()
	return dialWith(t, Config{BrokerURL: "tcp://" + addr})
}

func dialWith(t testing.TB, cfg Config) *Client {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	c, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// answerFunc returns the payloads a fake device publishes, in order, on its
// responses topic in answer to req.
type answerFunc func(req mqttapi.CommandRequest) [][]byte

// startDevice plays a device with a raw paho client: it subscribes to the
// command requests of hw/ch and answers each with answer, from one goroutine,
// in order. Requests are also sent to the returned channel when there is
// room in it.
//
// It does not wait for PUBACKs: paho handles them on the goroutine that also
// feeds its router, and the router is blocked while testutil.Subscribe's
// buffer is full, so waiting here could deadlock. One connection sends its
// publishes in order anyway.
func startDevice(t testing.TB, addr, hw, ch string, answer answerFunc) <-chan mqttapi.CommandRequest {
	t.Helper()
	c := testutil.Connect(t, addr)
	return serveDevice(t, c, hw, ch, answer)
}

func serveDevice(t testing.TB, c mqtt.Client, hw, ch string, answer answerFunc) <-chan mqttapi.CommandRequest {
	t.Helper()
	msgs := testutil.Subscribe(t, c, mqttapi.Topic{Direction: mqttapi.ToDevice, HardwareID: hw, ChannelID: ch, Kind: mqttapi.KindCommandRequests}.String())
	respTopic := mqttapi.Topic{Direction: mqttapi.FromDevice, HardwareID: hw, ChannelID: ch, Kind: mqttapi.KindCommandResponses}.String()
	seen := make(chan mqttapi.CommandRequest, 16)
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-done:
				return
			case m := <-msgs:
				req, err := mqttapi.DecodeCommandRequest(m.Payload())
				if err != nil {
					t.Errorf("device: bad request %q: %v", m.Payload(), err)
					continue
				}
				select {
				case seen <- req:
				default:
				}
				for _, p := range answer(req) {
					c.Publish(respTopic, 1, false, p)
				}
			}
		}
	}()
	t.Cleanup(func() {
		close(done)
		<-stopped
	})
	return seen
}

// response encodes a response for the fake device.
func response(t testing.TB, id string, state mqttapi.ResponseState, payload any) []byte {
	t.Helper()
	r, err := mqttapi.NewCommandResponse(id, state, payload)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pendingCount returns how many executions wait for a response.
func pendingCount(c *Client) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// subscriptions returns the filters the client holds.
func subscriptions(c *Client) map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]bool, len(c.subs))
	for f := range c.subs {
		out[f] = true
	}
	return out
}
