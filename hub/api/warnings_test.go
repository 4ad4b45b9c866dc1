package api

import (
	"net/http"
	"strings"
	"testing"
)

// A field outside Enapter's schema (a unit on a command argument, as
// Enapter's own blueprints have) does not refuse a blueprint: the upload is
// stored and answers it in validation_warnings, as validate does; a real
// problem still refuses it.
func TestBlueprintWarningsDoNotRefuse(t *testing.T) {
	e := newEnv(t)
	manifest := `blueprint_spec: device/3.0
display_name: Heater
runtime: {type: embedded}
command_groups:
  heat: {display_name: Heat}
commands:
  set_temperature:
    display_name: Set Temperature
    group: heat
    arguments:
      temperature: {display_name: Temperature, type: float, unit: Cel}
`
	zipped := zipOf(t, map[string]string{"manifest.yml": manifest})
	var v struct {
		Errors   []string `json:"validation_errors"`
		Warnings []string `json:"validation_warnings"`
	}
	code, body := e.do("POST", "/v3/blueprints/validate", zipped)
	mustUnmarshal(t, body, &v)
	const want = `manifest.yml:11:61: warning: commands.set_temperature.arguments.temperature.unit: unknown field "unit"`
	if code != 200 || len(v.Errors) != 0 || len(v.Warnings) != 1 || !strings.HasPrefix(v.Warnings[0], want) {
		t.Fatalf("validate: %d %s", code, body)
	}
	var up struct {
		Blueprint blueprintJSON `json:"blueprint"`
		Warnings  []string      `json:"validation_warnings"`
	}
	code, body = e.do("POST", "/v3/blueprints/upload", zipped)
	mustUnmarshal(t, body, &up)
	if code != http.StatusOK || up.Blueprint.ID == "" || len(up.Warnings) != 1 || !strings.HasPrefix(up.Warnings[0], want) {
		t.Fatalf("upload: %d %s", code, body)
	}
	// Assigned, its commands are checked as usual.
	id := e.provision("heater", "heater")
	code, body = e.doWith("POST", "/v3/devices/"+id+"/assign_blueprint", `{"blueprint_id":"`+up.Blueprint.ID+`"}`,
		map[string]string{AuthHeader: token, "Content-Type": "application/json"})
	if code != http.StatusOK {
		t.Fatalf("assign: %d %s", code, body)
	}
	if code, body = e.do("POST", "/v3/devices/"+id+"/execute_command", `{"name":"set_temperature","arguments":{"temperature":"hot"}}`); code != 422 ||
		!strings.Contains(string(body), "rejected_by_manifest") {
		t.Errorf("command after assign: %d %s", code, body)
	}
	// A clean upload carries no warnings key.
	code, body = e.do("POST", "/v3/blueprints/upload", zipOf(t, map[string]string{"manifest.yml": inverterManifest(t)}))
	if code != 200 || strings.Contains(string(body), "validation_warnings") {
		t.Errorf("clean upload: %d %s", code, body)
	}
	// A real problem beside the warning still refuses it.
	code, body = e.do("POST", "/v3/blueprints/upload", zipOf(t, map[string]string{"manifest.yml": strings.Replace(manifest, "type: float", "type: number", 1)}))
	if code != 422 || !strings.Contains(string(body), "invalid_blueprint") || strings.Contains(string(body), "warning:") {
		t.Errorf("upload with an error: %d %s", code, body)
	}
}
