package devicemetrics_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/devicemetrics"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

func TestCollectorExportsStats(t *testing.T) {
	b := testutil.StartBroker(t)
	host, port := splitAddr(t, b.Addr())
	cfg := &commconfig.Config{Version: commconfig.Version3, HardwareID: "hw-m", ChannelID: "ch", Host: host, Port: port, Protocol: commconfig.ProtocolMQTT}
	d, err := device.New(cfg, device.WithDataQoS(1))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := d.WaitState(wctx, device.StateConnected); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := d.SendTelemetry(wctx, mqttapi.Telemetry{Values: map[string]any{"x": 1}}); err != nil {
			t.Fatal(err)
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(devicemetrics.NewCollector(d))
	if problems, err := promtest.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %+v", err, problems)
	}
	want := `
# HELP edk_device_connected 1 while the device is connected to its broker, else 0.
# TYPE edk_device_connected gauge
edk_device_connected{channel_id="ch",hardware_id="hw-m"} 1
# HELP edk_device_messages_published_total Messages the broker acknowledged (QoS 1) or that were written to the connection (QoS 0).
# TYPE edk_device_messages_published_total counter
edk_device_messages_published_total{channel_id="ch",hardware_id="hw-m"} 3
# HELP edk_device_reconnects_total Connections after the first one.
# TYPE edk_device_reconnects_total counter
edk_device_reconnects_total{channel_id="ch",hardware_id="hw-m"} 0
`
	if err := promtest.GatherAndCompare(reg, strings.NewReader(want),
		"edk_device_connected", "edk_device_messages_published_total", "edk_device_reconnects_total"); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "edk_device_publish_latency_seconds" {
			if n := mf.GetMetric()[0].GetHistogram().GetSampleCount(); n != 3 {
				t.Fatalf("latency histogram counts %d, want 3", n)
			}
			return
		}
	}
	t.Fatal("no edk_device_publish_latency_seconds")
}

func splitAddr(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return host, p
}
