//go:build lua

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/internal/testutil"
)

// edk run --blueprint --configuration-file: Enapter's crowcon_xgard_bright_v3,
// unmodified, starts unconfigured (no file yet) and, once the file names
// the Modbus server, its after_write handler reconnects and telemetry
// comes from the server. A restart reads the same file.
func TestRunLuaBlueprintConfigFile(t *testing.T) {
	c := startCrowcon(t, "hw-cfg")
	dir, maddr, blob, msgs := c.dir, c.modbusAddr, c.config, c.telemetry
	until := func(what string, ok func(v map[string]any) bool) {
		t.Helper()
		deadline := time.Now().Add(waitLimit)
		for time.Now().Before(deadline) {
			var v map[string]any
			if err := json.Unmarshal(testutil.Receive(t, msgs).Payload(), &v); err != nil {
				t.Fatal(err)
			}
			if ok(v) {
				return
			}
		}
		t.Fatalf("no telemetry with %s", what)
	}

	tmp := t.TempDir()
	cfgFile := filepath.Join(tmp, "config.yaml")
	args := []string{"run", "--blueprint", dir, "--configuration-file", cfgFile, "--storage", filepath.Join(tmp, "storage.json")}
	dev := startCLI(t, map[string]string{commconfig.EnvConfig: blob}, args...)
	until("not_configured", func(v map[string]any) bool {
		ca, _ := v["conn_alerts"].([]any)
		return len(ca) == 1 && ca[0] == "not_configured"
	})
	if err := os.WriteFile(cfgFile, []byte("connection:\n  address: 1\n  conn_str: tcp://"+maddr+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	until("the register's value", func(v map[string]any) bool { return v["h2_concentration"] == 7.5 })
	if code := dev.interrupt(t); code != 0 {
		t.Fatalf("exit code after Ctrl-C = %d; stderr:\n%s", code, dev.stderr)
	}

	dev = startCLI(t, map[string]string{commconfig.EnvConfig: blob}, args...)
	until("the register's value after a restart", func(v map[string]any) bool { return v["h2_concentration"] == 7.5 })
	if code := dev.interrupt(t); code != 0 {
		t.Fatalf("exit code after Ctrl-C = %d; stderr:\n%s", code, dev.stderr)
	}
}

// A configuration file that breaks the manifest stops edk run at start;
// --config and --configuration-file together are refused.
func TestRunLuaBlueprintBadConfigFile(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "shared", "marketplace", "blueprints", "gas_sensors", "crowcon_xgard_bright_v3")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("marketplace missing: %v", err)
	}
	f := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(f, []byte(`{"connection": {"address": "one", "port": 502}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runBlueprintCLI(t, "run", "--blueprint", dir, "--configuration-file", f)
	if code != 2 || !strings.Contains(stderr, `connection.address: must be an integer, not the string "one"`) ||
		!strings.Contains(stderr, "connection.port: unknown parameter") {
		t.Errorf("bad file: exit %d, stderr:\n%s", code, stderr)
	}
	code, _, stderr = runBlueprintCLI(t, "run", "--blueprint", dir, "--configuration-file", f, "--config", "address=1")
	if code != 2 || !strings.Contains(stderr, "use one") {
		t.Errorf("both: exit %d, stderr:\n%s", code, stderr)
	}
}
