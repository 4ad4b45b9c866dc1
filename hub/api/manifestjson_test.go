package api

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/edk-go/edk/sim/inverter"
)

func TestManifestJSONKeepsTheManifestsOrder(t *testing.T) {
	got, err := manifestJSON(inverter.ManifestYAML())
	if err != nil {
		t.Fatal(err)
	}
	s := string(got)
	// set_power comes before ramp_power in manifest.yml; sorted, it would not.
	if i, j := strings.Index(s, `"set_power"`), strings.Index(s, `"ramp_power"`); i < 0 || j < 0 || i > j {
		t.Errorf("commands out of the manifest's order: %s", s)
	}
	if i, j := strings.Index(s, `"power":{"display_name":"AC Power"`), strings.Index(s, `"voltage"`); i < 0 || j < 0 || i > j {
		t.Errorf("telemetry out of the manifest's order: %s", s)
	}
	// The same document as the plain conversion.
	var want, have any
	if err := yaml.Unmarshal(inverter.ManifestYAML(), &want); err != nil {
		t.Fatal(err)
	}
	wb, _ := json.Marshal(want)
	_ = json.Unmarshal(wb, &want)
	if err := json.Unmarshal(got, &have); err != nil {
		t.Fatalf("not JSON: %v: %s", err, got)
	}
	if !reflect.DeepEqual(want, have) {
		t.Errorf("documents differ:\n%s\n%s", wb, got)
	}
}

func TestManifestJSONEdges(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"a: &x {b: 1}\nc: *x\n", `{"a":{"b":1},"c":{"b":1}}`},
		{"base: &b {x: 1}\nd:\n  <<: *b\n  y: 2\n", `{"base":{"x":1},"d":{"x":1,"y":2}}`}, // merge keys: the decoder's result
		{"enum:\n  1: {display_name: One}\n  0: {display_name: Zero}\n", `{"enum":{"1":{"display_name":"One"},"0":{"display_name":"Zero"}}}`},
		{"s: \"quote\\\" here\"\nl: [1, two, true, null, 2.5]\n", `{"s":"quote\" here","l":[1,"two",true,null,2.5]}`},
		{"", `null`},
	} {
		got, err := manifestJSON([]byte(c.in))
		if err != nil || string(got) != c.want {
			t.Errorf("manifestJSON(%q) = %s, %v; want %s", c.in, got, err, c.want)
		}
	}
	if _, err := manifestJSON([]byte("a: [")); err == nil {
		t.Error("bad YAML accepted")
	}
}
