package inverter

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Commands in the docs that belong to other devices (the Modbus register
// maps of docs/modbus.md and the README), so not to this manifest.
var otherDevicesCommands = map[string]bool{"set_power_limit": true}

var (
	// {"name": "set_power", "arguments": {...}}, in curl bodies and answers;
	// request is set when it is an execution's "request" (what the hub sent).
	jsonCommand = regexp.MustCompile(`("request":\s*)?\{"name":\s*"(\w+)",\s*"arguments":\s*(\{[^{}]*\})`)
	// enapter3 ... --name set_power --arguments '{...}'
	cliCommand = regexp.MustCompile(`--name (\w+) --arguments '(\{[^']*\})'`)
	// edk exec ... set_power power=1000
	execCommand = regexp.MustCompile(`edk exec (?:--?[\w-]+ \S+ )*(\w+)((?: \w+=\S+)+)`)
)

// Every command example in the docs must be one the simulated inverter's
// manifest accepts (the docs once sent {"watts": 500} to set_power), and
// every execution's request shows the arguments as the hub sends them,
// defaults filled in.
func TestDocExamplesMatchTheManifest(t *testing.T) {
	m := Manifest()
	var files []string
	for _, g := range []string{"../../*.md", "../../docs/*.md", "../../examples/*/README.md"} {
		fs, err := filepath.Glob(g)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, fs...)
	}
	if len(files) < 5 {
		t.Fatalf("found only %v", files)
	}
	checked := 0
	check := func(file, name string, args map[string]any, request bool) {
		t.Helper()
		if otherDevicesCommands[name] {
			return
		}
		checked++
		got, err := m.CheckCommand(name, args)
		if err != nil {
			t.Errorf("%s: example %s %v: %v", file, name, args, err)
			return
		}
		if request && !reflect.DeepEqual(got, args) {
			t.Errorf("%s: the execution shows %s %v, but the hub sends %v", file, name, args, got)
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := string(data)
		for _, sm := range jsonCommand.FindAllStringSubmatch(text, -1) {
			var args map[string]any
			if err := json.Unmarshal([]byte(sm[3]), &args); err != nil {
				t.Errorf("%s: example arguments %s: %v", f, sm[3], err)
				continue
			}
			check(f, sm[2], args, sm[1] != "")
		}
		for _, sm := range cliCommand.FindAllStringSubmatch(text, -1) {
			var args map[string]any
			if err := json.Unmarshal([]byte(sm[2]), &args); err != nil {
				t.Errorf("%s: example arguments %s: %v", f, sm[2], err)
				continue
			}
			check(f, sm[1], args, false)
		}
		for _, sm := range execCommand.FindAllStringSubmatch(text, -1) {
			args := map[string]any{}
			for _, kv := range strings.Fields(sm[2]) {
				k, v, _ := strings.Cut(kv, "=")
				if x, err := strconv.ParseFloat(v, 64); err == nil {
					args[k] = x
				} else {
					args[k] = v
				}
			}
			check(f, sm[1], args, false)
		}
	}
	if checked < 5 {
		t.Fatalf("checked only %d examples: did the patterns stop matching the docs?", checked)
	}
}
