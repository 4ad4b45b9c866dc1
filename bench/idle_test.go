//go:build linux

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"runtime/pprof"
	"runtime/trace"
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
// runtime's cost per device, not a process's. EDK_IDLE_KIND=paho or edk
// runs one kind only (to attach strace or perf to the process).
func BenchmarkIdleCost(b *testing.B) {
	m := testutil.StartMosquitto(b, testutil.MosquittoOptions{})
	n := envInt(b, "EDK_IDLE_DEVICES", 200)
	window := time.Duration(envInt(b, "EDK_IDLE_SECONDS", 10)) * time.Second
	host, portStr, _ := net.SplitHostPort(m.Addr)
	port, _ := strconv.Atoi(portStr)
	for _, kind := range []string{"paho", "edk"} {
		if only := os.Getenv("EDK_IDLE_KIND"); only != "" && only != kind {
			continue
		}
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
// devices' start-up) to $EDK_IDLE_PROFILE.<kind> and an execution trace of
// it to $EDK_IDLE_TRACE.<kind>, when those are set.
func profileWindow(b *testing.B, kind string) func() {
	var stops []func()
	if path := os.Getenv("EDK_IDLE_PROFILE"); path != "" {
		f, err := os.Create(path + "." + kind)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
	}
	if path := os.Getenv("EDK_IDLE_TRACE"); path != "" {
		f, err := os.Create(path + "." + kind)
		if err != nil {
			b.Fatal(err)
		}
		if err := trace.Start(f); err != nil {
			b.Fatal(err)
		}
		stops = append(stops, func() { trace.Stop(); f.Close() })
	}
	return func() {
		for _, stop := range stops {
			stop()
		}
	}
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
// returned func stops them. Device i starts at i/n of a second after the
// first, each in its own goroutine, so that the devices' 1 Hz ticks are
// spread evenly over the second for both kinds, as independent devices'
// would be. Started one after another instead, the kind that connects
// faster has its ticks bunched into a few milliseconds, where one wake-up
// of the process serves several devices: the first version of this
// benchmark did that, and the bare paho devices (0.2 ms to connect, edk's
// took 0.8 ms with its subscription) looked cheaper per message than a
// lone device is.
func startIdle(b *testing.B, kind string, n int, host string, port int, prefix string) func() {
	var (
		mu    sync.Mutex
		stops []func()
		errs  []error
		wg    sync.WaitGroup
	)
	t0 := time.Now()
	for i := range n {
		hw := fmt.Sprintf("%s-%05d", prefix, i)
		at := t0.Add(time.Duration(i) * time.Second / time.Duration(n))
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(at))
			var stop func()
			var err error
			if kind == "paho" {
				stop, err = startBarePaho(host, port, hw)
			} else {
				stop, err = startEdk(host, port, hw)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			stops = append(stops, stop)
		}()
	}
	wg.Wait()
	stopAll := func() {
		var wg sync.WaitGroup
		for _, s := range stops {
			wg.Add(1)
			go func() { defer wg.Done(); s() }()
		}
		wg.Wait()
	}
	if len(errs) > 0 {
		stopAll()
		b.Fatalf("%d of %d devices did not start, the first: %v", len(errs), n, errs[0])
	}
	return stopAll
}

// startEdk is the simulated inverter on the runtime, as examples/inverter
// runs it; it returns once the device is connected.
func startEdk(host string, port int, hw string) (func(), error) {
	cfg := &commconfig.Config{Version: commconfig.Version3, HardwareID: hw, ChannelID: "primary", Host: host, Port: port, Protocol: commconfig.ProtocolMQTT}
	inv := inverter.New(hw)
	d, err := device.New(cfg, append(inv.Options(), device.WithManifest(inverter.Manifest()))...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	stop := func() { cancel(); <-done }
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	if err := d.WaitState(wctx, device.StateConnected); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// startBarePaho is bench/baseline's device in-process.
func startBarePaho(host string, port int, hw string) (func(), error) {
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
		return nil, fmt.Errorf("connect %s: %w", hw, tok.Error())
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
	return func() { close(quit); <-done; c.Disconnect(250) }, nil
}
