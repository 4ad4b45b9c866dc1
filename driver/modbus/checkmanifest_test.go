package modbus_test

import (
	"strings"
	"testing"

	"github.com/edk-go/edk/blueprint"
	"github.com/edk-go/edk/driver/modbus"
)

// The map's problems against a manifest come sorted by the map's line, a
// name the manifest lacks with the closest one it declares.
func TestCheckManifestSortedWithSuggestions(t *testing.T) {
	man := blueprint.MustParse("manifest.yml", []byte(`blueprint_spec: device/3.0
display_name: M
runtime: {type: embedded}
properties:
  serial_number: {display_name: S, type: string}
telemetry:
  power: {display_name: P, type: float}
  status: {display_name: S, type: string}
alerts:
  overheat: {display_name: O, severity: error}
command_groups:
  g: {display_name: G}
commands:
  set_power: {display_name: S, group: g}
`))
	m, err := modbus.Parse(

		"map.yaml", []byte(`modbus: {address: "tcp://127.0.0.1:502"}
commands:
  set_powr:
    write: {register: 100, value: 1}
alerts:
  overhead: {when: "powr > 1"}
telemetry:
  powr: {register: 1}
  status: {register: 2}
properties:
  serial_numbr: {register: 10}
`))

	if err != nil {
		t.Fatal(err)
	}
	got := m.CheckManifest(man)
	want := []string{
		`line 3: command "set_powr" is not declared in the manifest's commands (did you mean set_power?)`,
		`line 6: alert "overhead" is not declared in the manifest's alerts (did you mean overheat?)`,
		`line 8: telemetry attribute "powr" is not declared in the manifest's telemetry (did you mean power?)`,
		`line 9: telemetry attribute "status" reads as integer, but the manifest declares string`,
		`line 11: property "serial_numbr" is not declared in the manifest's properties (did you mean serial_number?)`,
		`the manifest does not declare the alert "communication_error", which the driver raises when a read fails`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
