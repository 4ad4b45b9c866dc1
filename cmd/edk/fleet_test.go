package main

import (
	"strings"
	"testing"

	"github.com/edk-go/edk/internal/testutil"
)

func TestSimFleetFlags(t *testing.T) {
	for _, tt := range []struct {
		name    string
		args    []string
		environ map[string]string
		code    int
		wantErr string
	}{
		{"no devices", []string{"sim", "fleet", "--broker", "mqtt://127.0.0.1:1"}, nil, 2, "edk sim fleet: --devices: give how many"},
		{"no target", []string{"sim", "fleet", "--devices", "3"}, nil, 2, "give --hub URL"},
		{"no token", []string{"sim", "fleet", "--devices", "3", "--hub", "http://127.0.0.1:1"}, nil, 2, "--hub needs --token"},
		{"bad qos", []string{"sim", "fleet", "--devices", "3", "--broker", "mqtt://127.0.0.1:1", "--qos", "2"}, nil, 2, "--qos 2"},
		{"bad protocol", []string{"sim", "fleet", "--devices", "3", "--hub", "http://127.0.0.1:1", "--token", "t", "--protocol", "ws"}, nil, 2, `--protocol "ws"`},
		{"stray argument", []string{"sim", "fleet", "--devices", "3", "lots"}, nil, 2, `unexpected argument "lots"`},
		{"hub not running", []string{"sim", "fleet", "--devices", "3", "--hub", "http://127.0.0.1:1"}, map[string]string{"EDK_HUB_TOKEN": "t"}, 1, "is edk hub running"},
		{"help", []string{"sim", "fleet", "-h"}, nil, 0, "-commands float"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := startCLI(t, tt.environ, tt.args...)
			if code := c.wait(t); code != tt.code {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", code, tt.code, c.stderr)
			}
			if !strings.Contains(c.stderr.String(), tt.wantErr) {
				t.Fatalf("stderr lacks %q:\n%s", tt.wantErr, c.stderr)
			}
		})
	}
}

func TestSimFleetCtrlC(t *testing.T) {
	b := testutil.StartBroker(t)
	c := startCLI(t, nil, "sim", "fleet", "--devices", "4", "--broker", "mqtt://"+b.Addr(), "--interval", "50ms", "--status-every", "50ms")
	c.waitFor(t, "all 4 devices connected after")
	c.waitFor(t, "connected 4/4")
	if code := c.interrupt(t); code != 0 {
		t.Fatalf("exit code %d after Ctrl-C; stderr:\n%s", code, c.stderr)
	}
	out := c.stdout.String()
	for _, want := range []string{"fleet summary: 4 devices", "4 connected at the end", "errors:       0"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
}
