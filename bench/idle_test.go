//go:build linux

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/sim/inverter"
)

// BenchmarkIdleCost is what a device costs while it only sends telemetry
// once a second: EDK_IDLE_DEVICES (default 200) devices in this process,
// each on its own connection to one mosquitto, for EDK_IDLE_SECONDS
// (default 10) after all have connected. "paho" is the bare paho device of
// bench/baseline in-process (3 values at QoS 0, properties once); "edk" is
// the simulated inverter on the runtime, as examples/inverter runs it. Many
// devices in one process make the idle cost measurable (one device's 30 s
// at 1 Hz is about one clock tick of CPU) and profilable with -cpuprofile;
// the Go runtime's own background work is shared by them, so this is the
// runtime's cost per device, not a process's.
func BenchmarkIdleCost(b *testing.B) {
	m := testutil.StartMosquitto(b, testutil.MosquittoOptions{})
	n := envInt(b, "EDK_IDLE_DEVICES", 200)
	window := time.Duration(envInt(b, "EDK_IDLE_SECONDS", 10)) * time.Second
	host, portStr, _ := net.SplitHostPort(m.Addr)
	port, _ := strconv.Atoi(portStr)
	for _, kind := range []string{"paho", "edk"} {
		b.Run(kind, func(b *testing.B) {
			var perDevice time.Duration
			var msgs float64
			for i := 0; b.Loop(); i++ {
				prefix := fmt.Sprintf("%s%d", kind, i)
				stop := startIdle(b, kind, n, host, port, prefix)
				// What the devices send, so that both kinds are seen to send the
				// same (the subscriber's CPU is in the figure too, alike for both).
				var count atomic.Uint64
				sub := testutil.Connect(b, m.Addr)
				if err := testutil.Wait(sub.Subscribe("v1/from/#", 0, func(mqtt.Client, mqtt.Message) { count.Add(1) })); err != nil {
					b.Fatal(err)
				}
				stopProfile := profileWindow(b, kind)
				before, seen := processCPU(b), count.Load()
				time.Sleep(window) // the measurement is of a quiet interval; nothing to poll for
				perDevice = (processCPU(b) - before) / time.Duration(n) / time.Duration(window/time.Second)
				msgs = float64(count.Load()-seen) / float64(n) / window.Seconds()
				stopProfile()
				sub.Disconnect(0)
				stop()
			}
			b.ReportMetric(float64(perDevice)/float64(time.Microsecond), "cpu-us/device/s")
			b.ReportMetric(msgs, "msgs/device/s")
		})
	}
}

func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}

// profileWindow writes a CPU profile of the measured window only (not the
// devices' start-up) to $EDK_IDLE_PROFILE.<kind> when that is set.
func profileWindow(b *testing.B, kind string) func() {
	path := os.Getenv("EDK_IDLE_PROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path + "." + kind)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// processCPU is this process's user+system CPU time so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startIdle starts n devices of kind and waits until all are connected; the
// returned func stops them.
func startIdle(b *testing.B, kind string, n int, host string, port int, prefix string) func() {
	var stops []func()
	for i := range n {
		hw := fmt.Sprintf("%s-%05d", prefix, i)
		if kind == "paho" {
			stops = append(stops, startBarePaho(b, host, port, hw))
			continue
		}
		cfg := &commconfig.Config{Version: commconfig.Version3, HardwareID: hw, ChannelID: "primary", Host: host, Port: port, Protocol: commconfig.ProtocolMQTT}
		inv := inverter.New(hw)
		d, err := device.New(cfg, append(inv.Options(), device.WithManifest(inverter.Manifest()))...)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = d.Run(ctx) }()
		wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
		if err := d.WaitState(wctx, device.StateConnected); err != nil {
			b.Fatal(err)
		}
		wcancel()
		stops = append(stops, func() { cancel(); <-done })
	}
	return func() {
		var wg sync.WaitGroup
		for _, s := range stops {
			wg.Add(1)
			go func() { defer wg.Done(); s() }()
		}
		wg.Wait()
	}
}

// startBarePaho is bench/baseline's device in-process.
func startBarePaho(b *testing.B, host string, port int, hw string) func() {
	from, to := "v1/from/"+hw+"/primary/", "v1/to/"+hw+"/primary/"
	onRequest := func(c mqtt.Client, m mqtt.Message) {
		var req struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(m.Payload(), &req) != nil {
			return
		}
		resp, _ := json.Marshal(map[string]any{"id": req.ID, "state": "completed", "payload": map[string]any{}})
		c.Publish(from+"v1/command/responses", 1, false, resp)
	}
	opts := mqtt.NewClientOptions().AddBroker(fmt.Sprintf("tcp://%s:%d", host, port)).SetClientID("baseline_" + hw).
		SetOnConnectHandler(func(c mqtt.Client) {
			c.Subscribe(to+"v1/command/requests", 1, onRequest)
			props, _ := json.Marshal(map[string]any{"timestamp": time.Now().Unix(), "vendor": "edk", "model": "baseline"})
			c.Publish(from+"v1/properties", 0, false, props)
		})
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); tok.Wait() && tok.Error() != nil {
		b.Fatalf("connect: %v", tok.Error())
	}
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				tel, _ := json.Marshal(map[string]any{"timestamp": time.Now().Unix(), "power": 0, "status": "standby"})
				c.Publish(from+"v1/telemetry", 0, false, tel)
			}
		}
	}()
	return func() { close(quit); <-done; c.Disconnect(250) }
}
