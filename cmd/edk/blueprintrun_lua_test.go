//go:build lua

package main

import (
	"encoding/json"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	mb "github.com/simonvetter/modbus"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/internal/testutil"
)

type h2Sensor struct{}

func (h2Sensor) HandleCoils(*mb.CoilsRequest) ([]bool, error) { return nil, mb.ErrIllegalFunction }
func (h2Sensor) HandleDiscreteInputs(*mb.DiscreteInputsRequest) ([]bool, error) {
	return nil, mb.ErrIllegalFunction
}
func (h2Sensor) HandleInputRegisters(*mb.InputRegistersRequest) ([]uint16, error) {
	return nil, mb.ErrIllegalFunction
}
func (h2Sensor) HandleHoldingRegisters(req *mb.HoldingRegistersRequest) ([]uint16, error) {
	if req.Addr != 1000 || req.Quantity != 2 {
		return nil, mb.ErrIllegalDataAddress
	}
	b := math.Float32bits(7.5)
	return []uint16{uint16(b >> 16), uint16(b)}, nil
}

// edk run --blueprint: Enapter's crowcon_xgard_bright_v3, unmodified,
// publishes over MQTT what it reads from a Modbus TCP server.
func TestRunLuaBlueprint(t *testing.T) {
	c := startCrowcon(t, "hw-lua")
	dir, maddr, blob, msgs := c.dir, c.modbusAddr, c.config, c.telemetry

	dev := startCLI(t, map[string]string{commconfig.EnvConfig: blob}, "run", "--blueprint", dir,
		"--config", "conn_str=tcp://"+maddr, "--config", "connection.address=1",
		"--storage", filepath.Join(t.TempDir(), "storage.json"))
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		m := testutil.Receive(t, msgs)
		var v map[string]any
		if err := json.Unmarshal(m.Payload(), &v); err != nil {
			t.Fatal(err)
		}
		if v["h2_concentration"] == 7.5 {
			if v["status"] != "ok" {
				t.Errorf("telemetry = %s", m.Payload())
			}
			if code := dev.interrupt(t); code != 0 {
				t.Fatalf("exit code after Ctrl-C = %d; stderr:\n%s", code, dev.stderr)
			}
			return
		}
	}
	t.Fatal("no telemetry with the register's value")
}

const cmdManifest = `blueprint_spec: device/3.0
display_name: commands
runtime:
  type: lua
  options:
    file: main.lua
commands:
  greet:
    display_name: Greet
    arguments:
      name:
        display_name: Name
        type: string
        required: true
      times:
        display_name: Times
        type: integer
  refuse:
    display_name: Refuse
`

const cmdScript = `
function enapter.main()
  enapter.register_command_handler('greet', function(ctx, args)
    ctx.log('greeting ' .. args.name)
    return { greeting = 'hello ' .. args.name .. ' x' .. tostring(args.times) }
  end)
  enapter.register_command_handler('refuse', function(ctx) ctx.error('not today') end)
end
`

// Command handlers answer over MQTT: the returned table is the payload,
// ctx.log a progress response, ctx.error an error response.
func TestRunLuaBlueprintCommands(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "manifest.yml"), []byte(cmdManifest), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.lua"), []byte(cmdScript), 0o600); err != nil {
		t.Fatal(err)
	}
	b := testutil.StartBroker(t)
	host, port, _ := net.SplitHostPort(b.Addr())
	encode := startCLI(t, nil, "config", "encode", "--hardware-id", "hw-cmd", "--host", host, "--port", port)
	if code := encode.wait(t); code != 0 {
		t.Fatalf("config encode: %d %s", code, encode.stderr)
	}
	blob := strings.TrimSpace(encode.stdout.String())
	dev := startCLI(t, map[string]string{commconfig.EnvConfig: blob}, "run", "--blueprint", dir, "--log-level", "debug",
		"--storage", filepath.Join(t.TempDir(), "s.json"))
	if !dev.stderr.WaitFor("state=connected", waitLimit) {
		t.Fatalf("run did not connect: %s", dev.stderr)
	}
	broker := "tcp://" + b.Addr()
	greet := startCLI(t, nil, "exec", "--broker", broker, "--hardware-id", "hw-cmd", "greet", "name=edk", "times=3")
	if code := greet.wait(t); code != 0 || !strings.Contains(greet.stdout.String(), `completed {"greeting":"hello edk x3"}`) ||
		!strings.Contains(greet.stdout.String(), "greeting edk") {
		t.Errorf("greet: exit %d\n%s%s", code, greet.stdout, greet.stderr)
	}
	refuse := startCLI(t, nil, "exec", "--broker", broker, "--hardware-id", "hw-cmd", "refuse")
	if code := refuse.wait(t); code != 1 || !strings.Contains(refuse.stdout.String(), `"message":"not today"`) {
		t.Errorf("refuse: exit %d\n%s%s", code, refuse.stdout, refuse.stderr)
	}
}

// A --config key the manifest does not declare is a usage error.
func TestRunLuaBlueprintBadConfig(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "shared", "marketplace", "blueprints", "gas_sensors", "crowcon_xgard_bright_v3")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("marketplace missing: %v", err)
	}
	code, _, stderr := runBlueprintCLI(t, "run", "--blueprint", dir, "--config", "nope=1")
	if code != 2 || !strings.Contains(stderr, "declares no such configuration parameter") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}

// A CAN --port mapping without what its driver needs is a usage error.
func TestRunLuaBlueprintBadCANPort(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "shared", "marketplace", "blueprints", "gas_sensors", "crowcon_xgard_bright_v3")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("marketplace missing: %v", err)
	}
	for arg, want := range map[string]string{
		"can-1=slcan:/dev/ttyACM0":             "slcan needs the bus's bitrate, e.g. ?bitrate=500000",
		"can-1=slcan:/dev/ttyACM0?bitrate=123": "want one of 10000",
		"can-1=socketcan:":                     "socketcan needs a device",
	} {
		code, _, stderr := runBlueprintCLI(t, "run", "--blueprint", dir, "--port", arg)
		if code != 2 || !strings.Contains(stderr, want) {
			t.Errorf("--port %s: exit %d, stderr:\n%s", arg, code, stderr)
		}
	}
}

// crowcon is what the crowcon_xgard_bright_v3 tests run against: the
// blueprint's folder in ../shared, a Modbus TCP server with the sensor's
// registers, a broker, a communication config for it, and the telemetry
// the device publishes there.
type crowcon struct {
	dir, modbusAddr, config string
	telemetry               <-chan mqtt.Message
}

// startCrowcon starts the Modbus server and the broker for hardwareID; both
// stop when the test ends. It skips the test when ../shared is missing.
func startCrowcon(t *testing.T, hardwareID string) crowcon {
	t.Helper()
	dir := filepath.Join("..", "..", "..", "shared", "marketplace", "blueprints", "gas_sensors", "crowcon_xgard_bright_v3")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("marketplace missing: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	maddr := l.Addr().String()
	l.Close()
	// Room for a restarted device's connection while the old one closes.
	srv, err := mb.NewServer(&mb.ServerConfiguration{URL: "tcp://" + maddr, MaxClients: 4, Timeout: 5 * time.Second}, h2Sensor{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })

	b := testutil.StartBroker(t)
	host, port, _ := net.SplitHostPort(b.Addr())
	encode := startCLI(t, nil, "config", "encode", "--hardware-id", hardwareID, "--host", host, "--port", port)
	if code := encode.wait(t); code != 0 {
		t.Fatalf("config encode: %d %s", code, encode.stderr)
	}
	sub := testutil.Connect(t, b.Addr())
	return crowcon{dir: dir, modbusAddr: maddr, config: strings.TrimSpace(encode.stdout.String()),
		telemetry: testutil.Subscribe(t, sub, "v1/from/"+hardwareID+"/+/v1/telemetry")}
}
