package hub_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edk-go/edk/hub"
	"github.com/edk-go/edk/internal/testutil"
)

// burstSize is how many devices take part in BenchmarkBurstIngest and how
// many messages each sends per iteration: EDK_BURST_DEVICES (default 200)
// and EDK_BURST_MESSAGES (default 50).
func burstSize(b *testing.B) (devices, messages int) {
	devices, messages = 200, 50
	for _, v := range []struct {
		name string
		dst  *int
	}{{"EDK_BURST_DEVICES", &devices}, {"EDK_BURST_MESSAGES", &messages}} {
		if s := os.Getenv(v.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 {
				b.Fatalf("%s=%q: want a positive number", v.name, s)
			}
			*v.dst = n
		}
	}
	return devices, messages
}

// burstPublisher is one device of the burst: a paho client on its own
// connection, sending its telemetry at QoS 1 and waiting for each
// acknowledgement before the next message, as the device runtime does.
type burstPublisher struct {
	client mqtt.Client
	topic  string
	id     string // the device's id on the hub; "" on mosquitto
}

// burstTelemetry is a 10-value inverter message; seq tells the last one.
func burstTelemetry(ts int64, seq int) string {
	return fmt.Sprintf(`{"timestamp":%d,"seq":%d,"power":4200.5,"voltage":230.1,"current":18.25,"frequency":50.01,`+
		`"temperature":41.5,"energy_total":123456.789,"power_limit":100,"fan_speed":2400,"status":"running","alerts":[]}`, ts, seq)
}

// sendBurst publishes messages from every publisher at once and returns when all
// were acknowledged.
func sendBurst(b *testing.B, pubs []burstPublisher, messages int, firstTS int64) {
	var wg sync.WaitGroup
	var failed atomic.Int64
	for _, p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range messages {
				if err := testutil.Wait(p.client.Publish(p.topic, 1, false, burstTelemetry(firstTS+int64(i), i))); err != nil {
					failed.Add(1)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d devices could not publish their burst", n)
	}
}

// BenchmarkBurstIngest sends the same burst of telemetry through the hub
// and through mosquitto in one run, one after the other in every
// iteration: EDK_BURST_DEVICES devices (200 by default) each publish
// EDK_BURST_MESSAGES (50) 10-value messages at once, at QoS 1, each
// device waiting for its acknowledgement before the next message. The hub
// runs as `edk hub` does, with its per-device rate limit and connection
// caps on (the per-address cap raised: every device comes from 127.0.0.1),
// and a message counts once it is the latest value in the store; mosquitto
// (no persistence, nothing queued dropped) counts once one subscriber on
// v1/from/# has received it. mosquitto's figure is the ceiling of this
// machine for the traffic: fan-in to one reader, nothing stored.
func BenchmarkBurstIngest(b *testing.B) {
	devices, messages := burstSize(b)
	h := startHubWith(b, hub.Config{DataDir: b.TempDir(), MQTTAddr: "127.0.0.1:0", MQTTSAddr: "-", HTTPAddr: "127.0.0.1:0",
		MQTTMaxConnectionsPerAddr: devices + 16})
	mosq := testutil.StartMosquitto(b, testutil.MosquittoOptions{Settings: []string{"max_queued_messages 0"}})

	hubPubs := make([]burstPublisher, devices)
	mosqPubs := make([]burstPublisher, devices)
	for d := range devices {
		id, c, topic := h.publisher(b, fmt.Sprintf("burst-%05d", d))
		hubPubs[d] = burstPublisher{client: c, topic: topic, id: id}
		hw := fmt.Sprintf("BURST%05d", d)
		mosqPubs[d] = burstPublisher{client: testutil.Connect(b, mosq.Addr), topic: "v1/from/" + hw + "/ucm/v1/telemetry"}
	}
	var received atomic.Int64
	sub := testutil.Connect(b, mosq.Addr)
	if err := testutil.Wait(sub.Subscribe("v1/from/#", 1, func(mqtt.Client, mqtt.Message) { received.Add(1) })); err != nil {
		b.Fatalf("subscribe to mosquitto: %v", err)
	}

	var hubTook, hubAcked, mosqTook time.Duration
	b.ResetTimer()
	for i := range b.N {
		// Each iteration's messages have timestamps of their own: the store
		// keeps one sample per device and second.
		firstTS := int64(1_700_000_000 + i*messages)

		start := time.Now()
		sendBurst(b, hubPubs, messages, firstTS)
		hubAcked += time.Since(start)
		waitStored(b, h, hubPubs, messages-1)
		hubTook += time.Since(start)

		want := received.Load() + int64(devices*messages)
		start = time.Now()
		sendBurst(b, mosqPubs, messages, firstTS)
		for received.Load() < want {
			if time.Since(start) > 5*time.Minute {
				b.Fatalf("the subscriber got %d of mosquitto's %d messages", received.Load()-want+int64(devices*messages), devices*messages)
			}
			time.Sleep(time.Millisecond)
		}
		mosqTook += time.Since(start)
	}
	total := float64(b.N * devices * messages)
	b.ReportMetric(total/hubTook.Seconds(), "hub-stored-msgs/s")
	b.ReportMetric(total/hubAcked.Seconds(), "hub-acked-msgs/s")
	b.ReportMetric(total/mosqTook.Seconds(), "mosquitto-msgs/s")
	b.ReportMetric(100*mosqTook.Seconds()/hubTook.Seconds(), "hub-%-of-mosquitto")
}

// waitStored waits until every device's latest stored seq is last, asking
// the API for up to 50 devices a request, as a dashboard would.
func waitStored(b *testing.B, h *running, pubs []burstPublisher, last int) {
	deadline := time.Now().Add(5 * time.Minute)
	for len(pubs) > 0 {
		n := min(len(pubs), 50)
		var q strings.Builder
		for _, p := range pubs[:n] {
			if q.Len() > 0 {
				q.WriteByte('&')
			}
			q.WriteString("devices[" + p.id + "]=seq")
		}
		var latest struct {
			Telemetry map[string]map[string]*struct {
				Value any `json:"value"`
			} `json:"telemetry"`
		}
		h.call(b, "GET", "/v3/telemetry/latest?"+q.String(), nil, &latest)
		done := 0
		for _, p := range pubs[:n] {
			if v := latest.Telemetry[p.id]["seq"]; v == nil || fmt.Sprint(v.Value) != strconv.Itoa(last) {
				break
			}
			done++
		}
		pubs = pubs[done:]
		if done == 0 {
			if time.Now().After(deadline) {
				b.Fatalf("%d devices' last messages were not stored within 5 minutes", len(pubs))
			}
			time.Sleep(20 * time.Millisecond) // the API shares the hub's cores with the ingest
		}
	}
}
