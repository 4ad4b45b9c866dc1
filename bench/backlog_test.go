package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edk-go/edk/buffer"
	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

// backlogSize returns how many devices and messages per device the backlog
// benchmark uses: by default an hour of 1 Hz telemetry from 10 devices, or
// EDK_BACKLOG_DEVICES and EDK_BACKLOG_MESSAGES.
func backlogSize(b *testing.B) (devices, messages int) {
	devices, messages = 10, 3600
	for _, v := range []struct {
		name string
		dst  *int
	}{{"EDK_BACKLOG_DEVICES", &devices}, {"EDK_BACKLOG_MESSAGES", &messages}} {
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

// backlogTelemetry is one 1 Hz sample of a 10-value inverter.
func backlogTelemetry(ts int64, seq int) []byte {
	t := mqttapi.Telemetry{Timestamp: ts, Alerts: mqttapi.NoAlerts(), Values: map[string]any{
		"seq": seq, "power": 4200.5, "voltage": 230.1, "current": 18.25, "frequency": 50.01,
		"temperature": 41.5, "energy_total": 123456.789, "power_limit": 100, "status": "running", "fan_speed": 2400,
	}}
	p, err := t.AppendJSON(nil)
	if err != nil {
		panic(err)
	}
	return p
}

// BenchmarkBacklogDrain measures how fast devices drain the telemetry they
// buffered on disk while offline once the broker is reachable: by default
// 10 devices with an hour of 1 Hz telemetry each, through the in-process
// broker to one subscriber, which counts distinct messages. "unpaced" sends
// as fast as the broker acknowledges; "paced" uses the default replay rate
// (device.DefaultReplayRate a second per device), so its time is set by
// design. It also reports the disk bytes per buffered message.
func BenchmarkBacklogDrain(b *testing.B) {
	for _, pace := range []struct {
		name string
		rate float64
	}{{"unpaced", 0}, {"paced", device.DefaultReplayRate}} {
		b.Run(pace.name, func(b *testing.B) {
			devices, messages := backlogSize(b)
			for range b.N {
				b.StopTimer()
				dirs, diskBytes := fillBacklogs(b, devices, messages)
				b.StartTimer()
				took := drainBacklogs(b, dirs, messages, pace.rate)
				total := float64(devices * messages)
				b.ReportMetric(took.Seconds(), "s/drain")
				b.ReportMetric(total/took.Seconds(), "msgs/s")
				b.ReportMetric(float64(diskBytes)/total, "disk-B/msg")
			}
		})
	}
}

// fillBacklogs writes messages samples into one buffer folder per device and
// returns the folders and the bytes they take on disk.
func fillBacklogs(b *testing.B, devices, messages int) ([]string, int64) {
	b.Helper()
	root := b.TempDir()
	start := time.Now().Add(-time.Duration(messages) * time.Second).Unix()
	dirs := make([]string, devices)
	var wg sync.WaitGroup
	errs := make(chan error, devices)
	for i := range devices {
		dirs[i] = filepath.Join(root, strconv.Itoa(i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf, err := buffer.Open(dirs[i], buffer.Options{MaxAge: -1})
			if err != nil {
				errs <- err
				return
			}
			defer buf.Close()
			topic := mqttapi.Topic{Direction: mqttapi.FromDevice, HardwareID: backlogHW(i), ChannelID: rtChannel, Kind: mqttapi.KindTelemetry}.String()
			for k := range messages {
				if err := buf.Put(context.Background(), buffer.Message{Topic: topic, QoS: 1, Payload: backlogTelemetry(start+int64(k), k)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatalf("fill backlog: %v", err)
	}
	var size int64
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range entries {
			info, err := e.Info()
			if err != nil {
				b.Fatal(err)
			}
			size += info.Size()
		}
	}
	return dirs, size
}

func backlogHW(i int) string { return fmt.Sprintf("backlog-%02d", i) }

// drainBacklogs starts one device per buffer folder and returns how long it
// took until the subscriber had every message.
func drainBacklogs(b *testing.B, dirs []string, messages int, rate float64) time.Duration {
	b.Helper()
	br := testutil.StartBroker(b)
	host, portStr, _ := net.SplitHostPort(br.Addr())
	port, _ := strconv.Atoi(portStr)

	want := len(dirs) * messages
	var mu sync.Mutex
	seen := make(map[string]struct{}, want)
	done := make(chan struct{})
	sub := testutil.Connect(b, br.Addr())
	tok := sub.Subscribe("v1/from/+/+/v1/telemetry", 1, func(_ mqtt.Client, m mqtt.Message) {
		mu.Lock()
		defer mu.Unlock()
		seen[m.Topic()+string(m.Payload())] = struct{}{}
		if len(seen) == want {
			close(done)
		}
	})
	if err := testutil.Wait(tok); err != nil {
		b.Fatal(err)
	}

	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for i, dir := range dirs {
		buf, err := buffer.Open(dir, buffer.Options{MaxAge: -1})
		if err != nil {
			b.Fatal(err)
		}
		cfg := &commconfig.Config{Version: commconfig.Version3, HardwareID: backlogHW(i), ChannelID: rtChannel,
			Host: host, Port: port, Protocol: commconfig.ProtocolMQTT}
		d, err := device.New(cfg, device.WithBuffer(buf), device.WithReplayRate(rate, device.DefaultReplayBurst))
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer buf.Close()
			if err := d.Run(ctx); err != nil {
				b.Errorf("device %d: %v", i, err)
			}
		}()
	}
	limit := time.Duration(float64(messages)/max(rate, 1)*2)*time.Second + time.Minute
	select {
	case <-done:
	case <-time.After(limit):
		mu.Lock()
		defer mu.Unlock()
		b.Fatalf("drained %d of %d messages in %v", len(seen), want, limit)
	}
	return time.Since(start)
}
