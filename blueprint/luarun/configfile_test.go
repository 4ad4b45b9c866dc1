package luarun

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/edk-go/edk/blueprint"
)

const configManifest = `blueprint_spec: device/3.0
display_name: configured
runtime:
  type: lua
  options:
    file: firmware.lua
configuration:
  connection:
    display_name: Connection
    parameters:
      conn_str:
        display_name: Connection string
        type: string
        required: true
      address:
        display_name: Address
        type: integer
        default: 1
  tuning:
    display_name: Tuning
    parameters:
      gain:
        display_name: Gain
        type: float
      enabled:
        display_name: Enabled
        type: boolean
`

func configTestManifest(t *testing.T) *blueprint.Manifest {
	t.Helper()
	m, err := blueprint.Parse("manifest.yml", []byte(configManifest))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// YAML and JSON files read to the same typed values; a file that is not
// there is an empty configuration.
func TestLoadConfigFile(t *testing.T) {
	m := configTestManifest(t)
	dir := t.TempDir()
	want := map[string]map[string]any{
		"connection": {"conn_str": "tcp://10.0.0.5:502", "address": int64(3)},
		"tuning":     {"gain": 2.0, "enabled": true},
	}
	for name, text := range map[string]string{
		"c.yaml": "connection:\n  conn_str: tcp://10.0.0.5:502\n  address: 3\ntuning:\n  gain: 2\n  enabled: true\n",
		"c.json": `{"connection": {"conn_str": "tcp://10.0.0.5:502", "address": 3.0}, "tuning": {"gain": 2, "enabled": true}}`,
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := LoadConfigFile(m, path)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %#v, %v; want %#v", name, got, err, want)
		}
	}
	got, err := LoadConfigFile(m, filepath.Join(dir, "none.yaml"))
	if err != nil || len(got) != 0 {
		t.Errorf("missing file: %v, %v", got, err)
	}
}

// Unknown groups and parameters and values of the wrong type are all
// named in one error; null leaves a parameter unset.
func TestCheckConfigProblems(t *testing.T) {
	m := configTestManifest(t)
	_, err := CheckConfig(m, map[string]any{
		"connection": map[string]any{"conn_str": 502, "address": 1.5, "port": 1},
		"tuning":     map[string]any{"gain": "high", "enabled": "yes"},
		"extra":      map[string]any{},
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{
		`unknown group "extra" (the manifest declares: connection, tuning)`,
		"connection.conn_str: must be a string, not 502 (quote it)",
		"connection.address: must be an integer, not 1.5",
		"connection.port: unknown parameter (group connection declares: conn_str, address)",
		`tuning.gain: must be a number, not the string "high"`,
		`tuning.enabled: must be true or false, not the string "yes"`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
	got, err := CheckConfig(m, map[string]any{"connection": map[string]any{"conn_str": nil, "address": 2}})
	if err != nil || !reflect.DeepEqual(got, map[string]map[string]any{"connection": {"address": int64(2)}}) {
		t.Errorf("null value: %v, %v", got, err)
	}
	if _, err := CheckConfig(m, map[string]any{"connection": "tcp://x"}); err == nil || !strings.Contains(err.Error(), "want parameter: value pairs") {
		t.Errorf("group that is not a mapping: %v", err)
	}
}
