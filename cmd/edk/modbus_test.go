package main

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/internal/testutil"
)

// The laptop chain of docs/modbus.md: simulated Modbus device ← edk run
// --config → broker; a command changes a register that the next telemetry
// shows.
func TestModbusChain(t *testing.T) {
	sim := startCLI(t, nil, "sim", "modbus", "--listen", "127.0.0.1:0", "--profile", "inverter")
	sim.waitFor(t, "listening on tcp://")
	simURL := regexp.MustCompile(`tcp://127\.0\.0\.1:\d+`).FindString(sim.stdout.String())

	// The files come from the binary itself, as for a person who has only
	// an installed edk.
	// --listen gives the map the running device's address, as the sim's
	// own hint (copied from its output) says.
	hint := regexp.MustCompile(`sim modbus --profile inverter --listen (\S+) --print-map`).FindStringSubmatch(sim.stdout.String())
	if hint == nil || "tcp://"+hint[1] != simURL {
		t.Fatalf("the sim's hint does not print the map of %s:\n%s", simURL, sim.stdout)
	}
	mapYAML := printed(t, "sim", "modbus", "--listen", hint[1], "--print-map")
	manifestFile := filepath.Join(t.TempDir(), "manifest.yml")
	if err := os.WriteFile(manifestFile, []byte(printed(t, "sim", "modbus", "--print-manifest")), 0o600); err != nil {
		t.Fatal(err)
	}
	mapFile := filepath.Join(t.TempDir(), "device.yaml")
	if !strings.Contains(mapYAML, "address: "+simURL+"\n") {
		t.Fatalf("the printed map does not point at %s:\n%s", simURL, mapYAML)
	}
	if err := os.WriteFile(mapFile, []byte(mapYAML), 0o600); err != nil {
		t.Fatal(err)
	}

	read := startCLI(t, nil, "modbus", "read", "--address", simURL, "--unit", "3", "--table", "holding", "--register", "40016")
	if code := read.wait(t); code != 0 || !strings.Contains(read.stdout.String(), "40016") {
		t.Fatalf("modbus read: %d\n%s%s", code, read.stdout, read.stderr)
	}

	b := testutil.StartBroker(t)
	host, port, _ := net.SplitHostPort(b.Addr())
	blob, err := commconfig.Config{Version: commconfig.Version3, HardwareID: "mb-chain", ChannelID: "primary",
		Host: host, Port: atoi(t, port), Protocol: commconfig.ProtocolMQTT}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	broker := "tcp://" + b.Addr()
	watch := startCLI(t, nil, "watch", "--broker", broker, "--hardware-id", "mb-chain")
	if !watch.stderr.WaitFor("watching device", waitLimit) {
		t.Fatal("watch did not start")
	}
	dev := startCLI(t, map[string]string{commconfig.EnvConfig: blob}, "run", "--config", mapFile,
		"--manifest", manifestFile)
	if !dev.stderr.WaitFor("state=connected", waitLimit) {
		t.Fatalf("run did not connect: %s", dev.stderr)
	}
	watch.waitFor(t, "power_limit=100")

	exec := startCLI(t, nil, "exec", "--broker", broker, "--hardware-id", "mb-chain", "set_power_limit", "limit=42")
	if code := exec.wait(t); code != 0 {
		t.Fatalf("exec: %d %s %s", code, exec.stdout, exec.stderr)
	}
	watch.waitFor(t, "power_limit=42")

	bad := startCLI(t, nil, "exec", "--broker", broker, "--hardware-id", "mb-chain", "set_power_limit", "limit=420")
	if code := bad.wait(t); code != 1 || !strings.Contains(bad.stdout.String(), "(max)") {
		t.Fatalf("out-of-range limit: %d %s", code, bad.stdout)
	}
	if code := dev.interrupt(t); code != 0 {
		t.Fatalf("run exit %d: %s", code, dev.stderr)
	}
}

func TestRunRefusesMapThatBreaksManifest(t *testing.T) {
	c := startCLI(t, map[string]string{commconfig.EnvConfig: mustBlob(t)}, "run",
		"--config", "../../driver/modbus/modbussim/inverter.yaml", "--manifest", "../../sim/inverter/manifest.yml")
	if code := c.wait(t); code != 1 || !strings.Contains(c.stderr.String(), "does not match the manifest") ||
		!strings.Contains(c.stderr.String(), `telemetry attribute "ac_power" is not declared`) {
		t.Fatalf("code %d: %s", code, c.stderr)
	}
}

func mustBlob(t *testing.T) string {
	blob, err := commconfig.Config{Version: commconfig.Version3, HardwareID: "x", ChannelID: "primary",
		Host: "127.0.0.1", Port: 1, Protocol: commconfig.ProtocolMQTT}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return blob
}

// printed runs edk with args to the end and returns what it printed.
func printed(t *testing.T, args ...string) string {
	t.Helper()
	c := startCLI(t, nil, args...)
	if code := c.wait(t); code != 0 {
		t.Fatalf("edk %v: exit %d: %s", args, code, c.stderr)
	}
	return c.stdout.String()
}
