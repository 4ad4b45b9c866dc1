package hub_test

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/hub"
)

// BenchmarkExecuteCommand is one execute_command through the hub's HTTP
// API: request stored, published, answered by the simulated inverter over
// MQTT, response ingested, execution returned.
func BenchmarkExecuteCommand(b *testing.B) {
	// Without the per-device rate limit, which a device answering
	// thousands of commands a second would meet (its responses would be
	// paced at 500/s after the burst, and that is what this would measure).
	h := startHubWith(b, hub.Config{DataDir: b.TempDir(), MQTTAddr: "127.0.0.1:0", MQTTSAddr: "-", HTTPAddr: "127.0.0.1:0", RateLimit: -1})
	id, cfg := h.provision(b, "bench", commconfig.ProtocolMQTT)
	runInverter(b, cfg)
	body := map[string]any{"name": "set_power", "arguments": map[string]any{"power": 100}}
	b.ResetTimer()
	for b.Loop() {
		var out struct {
			Execution execution `json:"execution"`
		}
		if code := h.call(b, "POST", "/v3/devices/"+id+"/execute_command", body, &out); code != http.StatusOK || out.Execution.State != "SUCCESS" {
			b.Fatalf("execute_command: %d %+v", code, out.Execution)
		}
	}
}

// BenchmarkIngest is the hub's sustained ingest: 20 simulated devices
// publish telemetry (10 attributes each, QoS 1, each waiting for its
// acknowledgement) as fast as they can, and the benchmark waits until the
// store holds the last message of every device.
func BenchmarkIngest(b *testing.B) {
	const devices, attrs = 20, 10
	// Without the per-device rate limit: this measures how fast ingest
	// goes, well above what one device may send by default.
	h := startHubWith(b, hub.Config{DataDir: b.TempDir(), MQTTAddr: "127.0.0.1:0", MQTTSAddr: "-", HTTPAddr: "127.0.0.1:0", RateLimit: -1})
	clients := make([]func(i int), devices)
	ids := make([]string, devices)
	for d := range devices {
		id, c, topic := h.publisher(b, fmt.Sprintf("ingest-%d", d))
		ids[d] = id
		clients[d] = func(i int) {
			// Wait for the broker's acknowledgement, as a device does.
			c.Publish(topic, 1, false, numberedTelemetry(i, attrs)).Wait()
		}
	}
	perDevice := max(b.N/devices, 1)
	start := time.Now()
	var wg sync.WaitGroup
	for d := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perDevice {
				clients[d](i)
			}
		}()
	}
	wg.Wait()
	// Stored when the last sample of every device is the latest value.
	last := fmt.Sprintf("%d.5", perDevice-1)
	for _, id := range ids {
		for {
			var latest struct {
				Telemetry map[string]map[string]*struct {
					Value any `json:"value"`
				} `json:"telemetry"`
			}
			h.call(b, "GET", "/v3/telemetry/latest?devices["+id+"]=a0", nil, &latest)
			if v := latest.Telemetry[id]["a0"]; v != nil && fmt.Sprint(v.Value) == last {
				break
			}
			if time.Since(start) > 5*time.Minute {
				b.Fatal("ingest did not catch up")
			}
			time.Sleep(10 * time.Millisecond) // polling the API, as a client would
		}
	}
	b.ReportMetric(float64(perDevice*devices)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkExecuteCommandUnderIngest is BenchmarkExecuteCommand while 50
// other devices publish 10-value telemetry at QoS 1 as fast as their
// acknowledgements come: the execution's writes share the store's one
// writer with the ingest's transactions. It reports the latency's p50
// and p99.
func BenchmarkExecuteCommandUnderIngest(b *testing.B) {
	const devices, attrs = 50, 10
	h := startHubWith(b, hub.Config{DataDir: b.TempDir(), MQTTAddr: "127.0.0.1:0", MQTTSAddr: "-", HTTPAddr: "127.0.0.1:0", RateLimit: -1})
	id, cfg := h.provision(b, "bench", commconfig.ProtocolMQTT)
	runInverter(b, cfg)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for d := range devices {
		_, c, topic := h.publisher(b, fmt.Sprintf("load-%d", d))
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c.Publish(topic, 1, false, numberedTelemetry(i, attrs)).WaitTimeout(5 * time.Second)
			}
		})
	}
	b.Cleanup(func() { close(stop); wg.Wait() })
	time.Sleep(time.Second) // ingest under way
	body := map[string]any{"name": "set_power", "arguments": map[string]any{"power": 100}}
	var took []time.Duration
	b.ResetTimer()
	for b.Loop() {
		var out struct {
			Execution execution `json:"execution"`
		}
		start := time.Now()
		if code := h.call(b, "POST", "/v3/devices/"+id+"/execute_command", body, &out); code != http.StatusOK || out.Execution.State != "SUCCESS" {
			b.Fatalf("execute_command: %d %+v", code, out.Execution)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
}

// numberedTelemetry is message i of a benchmark device: timestamp
// 1700000000+i and attrs values a0 … that all read i.5, so the store's
// latest a0 tells which message was stored last.
func numberedTelemetry(i, attrs int) string {
	payload := fmt.Sprintf(`{"timestamp":%d`, 1700000000+i)
	for a := range attrs {
		payload += fmt.Sprintf(`,"a%d":%d.5`, a, i)
	}
	return payload + "}"
}
