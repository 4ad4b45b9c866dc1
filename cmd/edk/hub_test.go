package main

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/edk-go/edk/commconfig"
)

func TestHubCommand(t *testing.T) {
	h := startCLI(t, nil, "hub", "--data", t.TempDir(), "--mqtt-addr", "127.0.0.1:0", "--mqtts-addr", "-", "--http-addr", "127.0.0.1:0", "--log-level", "warning")
	h.waitFor(t, "Ctrl-C stops the hub")
	out := h.stdout.String()
	httpAddr := regexp.MustCompile(`HTTP    (http://\S+)`).FindStringSubmatch(out)
	token := regexp.MustCompile(`token   (\S+)`).FindStringSubmatch(out)
	if httpAddr == nil || token == nil || !strings.Contains(out, "MQTTS   (off)") {
		t.Fatalf("hub output:\n%s", out)
	}
	post := func(path, body string) map[string]any {
		req, _ := http.NewRequest("POST", httpAddr[1]+path, strings.NewReader(body))
		req.Header.Set("X-Enapter-Auth-Token", token[1])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %s", path, b)
		}
		return m
	}
	id, _ := post("/v3/provisioning/standalone", `{"name":"cli","slug":"cli"}`)["device_id"].(string)
	blob, _ := post("/v3/devices/"+id+"/generate_config", `{"protocol":"MQTT"}`)["blob"].(string)
	if id == "" || blob == "" {
		t.Fatal("provisioning through the CLI's hub failed")
	}
	dev := startCLI(t, map[string]string{commconfig.EnvConfig: blob}, "run")
	if !dev.stderr.WaitFor("state=connected", waitLimit) {
		t.Fatalf("edk run did not connect with the hub's config: %s", dev.stderr)
	}
	exec := post("/v3/devices/"+id+"/execute_command", `{"name":"set_power","arguments":{"power":1234}}`)
	if e, _ := exec["execution"].(map[string]any); e["state"] != "SUCCESS" {
		t.Fatalf("execute_command: %v", exec)
	}
	if code := dev.interrupt(t); code != 0 {
		t.Fatalf("run exit %d", code)
	}
	if code := h.interrupt(t); code != 0 {
		t.Fatalf("hub exit %d: %s", code, h.stderr)
	}
}
