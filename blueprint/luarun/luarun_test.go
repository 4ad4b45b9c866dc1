//go:build lua

package luarun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mb "github.com/simonvetter/modbus"

	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

// marketplace is Enapter's blueprint set beside the repository
// (../shared/marketplace from the repository root).
func marketplace(t *testing.T, rel string) string {
	t.Helper()
	dir := filepath.Join("..", "..", "..", "shared", "marketplace", rel)
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("marketplace blueprints missing: %v", err)
		}
		t.Skipf("marketplace blueprints missing: %v", err)
	}
	return dir
}

// sink records what the script publishes.
type sink struct {
	mu        sync.Mutex
	telemetry []mqttapi.Telemetry
	props     []mqttapi.Properties
	logs      []mqttapi.Log
}

func (s *sink) SendTelemetry(_ context.Context, t mqttapi.Telemetry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.telemetry = append(s.telemetry, t)
	return nil
}

func (s *sink) SendProperties(_ context.Context, p mqttapi.Properties) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.props = append(s.props, p)
	return nil
}

func (s *sink) SendLog(_ context.Context, l mqttapi.Log) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logs = append(s.logs, l)
	return nil
}

// telemetryJSON returns the encoded telemetry messages after the first n.
func (s *sink) telemetryJSON(t *testing.T, from int) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, m := range s.telemetry[min(from, len(s.telemetry)):] {
		b, err := m.AppendJSON(nil)
		if err != nil {
			t.Fatalf("telemetry does not encode: %v", err)
		}
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		delete(v, "timestamp")
		out = append(out, v)
	}
	return out
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.telemetry)
}

func (s *sink) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, l := range s.logs {
		fmt.Fprintf(&b, "%s: %s\n", l.Severity, l.Message)
	}
	return b.String()
}

// regs is a Modbus server's register bank; missing registers answer
// "illegal data address".
type regs struct {
	mu       sync.Mutex
	holdings map[uint16]uint16
	zero     bool // missing registers read as 0 instead of an exception
}

func (r *regs) HandleCoils(*mb.CoilsRequest) ([]bool, error) { return nil, mb.ErrIllegalFunction }
func (r *regs) HandleDiscreteInputs(*mb.DiscreteInputsRequest) ([]bool, error) {
	return nil, mb.ErrIllegalFunction
}
func (r *regs) HandleInputRegisters(*mb.InputRegistersRequest) ([]uint16, error) {
	return nil, mb.ErrIllegalFunction
}

func (r *regs) HandleHoldingRegisters(req *mb.HoldingRegistersRequest) ([]uint16, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]uint16, req.Quantity)
	for i := range out {
		a := req.Addr + uint16(i)
		v, ok := r.holdings[a]
		if req.IsWrite {
			r.holdings[a] = req.Args[i]
			continue
		}
		if !ok && !r.zero {
			return nil, mb.ErrIllegalDataAddress
		}
		out[i] = v
	}
	return out, nil
}

func (r *regs) setFloat(addr uint16, f float32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := math.Float32bits(f)
	r.holdings[addr], r.holdings[addr+1] = uint16(b>>16), uint16(b)
}

func (r *regs) remove(addr uint16) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.holdings, addr)
}

// modbusServer serves r on a free loopback port until the test ends or
// stop is called.
func modbusServer(t *testing.T, r *regs, addr string) (string, func()) {
	t.Helper()
	if addr == "" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = l.Addr().String()
		l.Close()
	}
	srv, err := mb.NewServer(&mb.ServerConfiguration{URL: "tcp://" + addr, MaxClients: 64, Timeout: 5 * time.Second, Logger: log.New(io.Discard, "", 0)}, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { _ = srv.Stop() }) }
	t.Cleanup(stop)
	return addr, stop
}

func start(t *testing.T, dir string, opts Options) (*Runtime, *sink) {
	t.Helper()
	bp, err := LoadBlueprint(dir)
	if err != nil {
		t.Fatal(err)
	}
	sk := &sink{}
	opts.Sink = sk
	rt, err := New(bp, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return rt, sk
}

// A v3 Modbus TCP blueprint, unmodified: telemetry from the registers,
// the register going away (exception) and the server going away become
// the blueprint's own communication_failed alert, and both recover.
func TestCrowconXgardV3(t *testing.T) {
	dir := marketplace(t, "blueprints/gas_sensors/crowcon_xgard_bright_v3")
	r := &regs{holdings: map[uint16]uint16{}}
	r.setFloat(1000, 12.5)
	addr, stop := modbusServer(t, r, "")
	_, sk := start(t, dir, Options{Config: map[string]map[string]any{
		"connection": {"address": int64(1), "conn_str": "tcp://" + addr},
	}})

	testutil.Eventually(t, "telemetry", func() bool { return sk.count() >= 1 })
	got := sk.telemetryJSON(t, 0)[0]
	if got["h2_concentration"] != 12.5 || got["status"] != "ok" {
		t.Fatalf("telemetry = %v", got)
	}
	if a, ok := got["alerts"].([]any); !ok || len(a) != 0 {
		t.Errorf("alerts = %v, want [] (known, none)", got["alerts"])
	}

	// register exception
	r.remove(1000)
	n := sk.count()
	testutil.Eventually(t, "communication alert", func() bool {
		for _, m := range sk.telemetryJSON(t, n) {
			if ca, _ := m["conn_alerts"].([]any); len(ca) == 1 && ca[0] == "communication_failed" {
				return true
			}
		}
		return false
	})
	if !strings.Contains(sk.logText(), "error: Failed to read register 1000: illegal data address") {
		t.Errorf("logs:\n%s", sk.logText())
	}

	// recovery, then the server goes away and comes back
	r.setFloat(1000, 3.25)
	n = sk.count()
	testutil.Eventually(t, "recovered telemetry", func() bool {
		for _, m := range sk.telemetryJSON(t, n) {
			if m["h2_concentration"] == 3.25 && m["conn_alerts"] == nil {
				return true
			}
		}
		return false
	})
	stop()
	n = sk.count()
	testutil.Eventually(t, "alert with the server gone", func() bool {
		for _, m := range sk.telemetryJSON(t, n) {
			if ca, _ := m["conn_alerts"].([]any); len(ca) == 1 {
				return true
			}
		}
		return false
	})
	modbusServer(t, r, addr)
	n = sk.count()
	testutil.Eventually(t, "telemetry after the server is back", func() bool {
		for _, m := range sk.telemetryJSON(t, n) {
			if m["h2_concentration"] == 3.25 {
				return true
			}
		}
		return false
	})
}

// Not configured: the blueprint reports not_configured on its own.
func TestV3NotConfigured(t *testing.T) {
	dir := marketplace(t, "blueprints/gas_sensors/crowcon_xgard_bright_v3")
	_, sk := start(t, dir, Options{})
	testutil.Eventually(t, "telemetry", func() bool { return sk.count() >= 1 })
	got := sk.telemetryJSON(t, 0)[0]
	if ca, _ := got["conn_alerts"].([]any); len(ca) != 1 || ca[0] != "not_configured" {
		t.Fatalf("telemetry = %v", got)
	}
}

// A v1 HTTP blueprint with the enapter-ucm rock: configuration commands
// persist in storage across restarts, telemetry comes from the local HTTP
// server, and commands answer with the handler's value.
func TestTasmotaV1HTTP(t *testing.T) {
	dir := marketplace(t, "blueprints/relays/tasmota")
	var mu sync.Mutex
	power := 1
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		cmd := req.URL.Query().Get("cmnd")
		seen = append(seen, cmd)
		switch cmd {
		case "Power Off":
			power = 0
		case "Power On":
			power = 1
		}
		fmt.Fprintf(w, `{"Status":{"Power":%d}}`, power)
	}))
	defer srv.Close()
	storage := filepath.Join(t.TempDir(), "storage.json")
	rt, sk := start(t, dir, Options{StorageFile: storage})

	ctx := context.Background()
	_, err := rt.Command(ctx, "write_configuration", map[string]any{}, nil)
	var ce *device.CommandError
	if !errors.As(err, &ce) || !strings.Contains(ce.Message, "`address` argument required") {
		t.Fatalf("write_configuration without address = %v", err)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	if _, err := rt.Command(ctx, "write_configuration", map[string]any{"address": host}, nil); err != nil {
		t.Fatal(err)
	}
	cfg, err := rt.Command(ctx, "read_configuration", nil, nil)
	if err != nil || cfg.(map[string]any)["address"] != host {
		t.Fatalf("read_configuration = %v, %v", cfg, err)
	}
	testutil.Eventually(t, "status on", func() bool {
		for _, m := range sk.telemetryJSON(t, 0) {
			if m["status"] == "on" {
				return true
			}
		}
		return false
	})
	var progress []string
	res, err := rt.Command(ctx, "tasmota_command", map[string]any{"command": "Power Off"}, func(m string) { progress = append(progress, m) })
	if err != nil {
		t.Fatal(err)
	}
	if res.(map[string]any)["result"] != `{"Status":{"Power":0}}` || len(progress) != 1 || progress[0] != "command arrived Power Off" {
		t.Errorf("tasmota_command = %v, progress %v", res, progress)
	}
	n := sk.count()
	testutil.Eventually(t, "status off", func() bool {
		for _, m := range sk.telemetryJSON(t, n) {
			if m["status"] == "off" {
				return true
			}
		}
		return false
	})
	if _, err := rt.Command(ctx, "no_such", nil, nil); err == nil {
		t.Error("unknown command succeeded")
	}
	b, err := os.ReadFile(storage)
	if err != nil || !strings.Contains(string(b), host) {
		t.Errorf("storage file = %s, %v", b, err)
	}
}
