package luarun

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edk-go/edk/blueprint"
)

func TestParsePort(t *testing.T) {
	name, p, err := ParsePort("rs485=/dev/ttyUSB0?baud=19200&parity=E")
	if err != nil || name != "rs485" || p != (SerialPort{Device: "/dev/ttyUSB0", Baud: 19200, DataBits: 8, Parity: "E", StopBits: 1}) {
		t.Fatalf("got %q %+v %v", name, p, err)
	}
	for _, bad := range []string{"rs485", "=/dev/x", "rs485=/dev/x?parity=X", "rs485=/dev/x?baud=fast", "rs485=/dev/x?speed=1"} {
		if _, _, err := ParsePort(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseHTTPRewrite(t *testing.T) {
	rw, err := ParseHTTPRewrite("https://api.example.com=http://127.0.0.1:8080/mock")
	if err != nil || rw.From != "https://api.example.com" || rw.To.Host != "127.0.0.1:8080" {
		t.Fatalf("got %+v %v", rw, err)
	}
	if rw, err := ParseHTTPRewrite("http://127.0.0.1:9"); err != nil || rw.From != "" {
		t.Errorf("all-requests form: %+v %v", rw, err)
	}
	for _, bad := range []string{"ftp://x", "127.0.0.1:8080", "x=http://"} {
		if _, err := ParseHTTPRewrite(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

const v3Manifest = `blueprint_spec: device/3.0
display_name: t
runtime:
  type: lua
  options:
    dir: src
configuration:
  connection:
    display_name: Connection
    parameters:
      address:
        display_name: Address
        type: integer
        required: true
      conn_str:
        display_name: Connection string
        type: string
      fast:
        display_name: Fast
        type: boolean
`

func TestLoadBlueprintAndConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "manifest.yml"), []byte(v3Manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadBlueprint(dir); err == nil || !strings.Contains(err.Error(), "main.lua") {
		t.Fatalf("missing src/main.lua: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "src"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "src", "main.lua"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	bp, err := LoadBlueprint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if bp.APIVersion() != 3 || bp.ModuleDir != filepath.Join(dir, "src") || bp.Manifest.Spec != blueprint.SpecV3 {
		t.Errorf("blueprint = %+v", bp)
	}
	cfg, err := ParseConfig(bp.Manifest, []string{"address=7", "connection.conn_str=tcp://h:502", "fast=true"})
	if err != nil {
		t.Fatal(err)
	}
	c := cfg["connection"]
	if c["address"] != int64(7) || c["conn_str"] != "tcp://h:502" || c["fast"] != true {
		t.Errorf("config = %v", cfg)
	}
	for _, bad := range []string{"address=seven", "nope=1", "other.address=1", "address"} {
		if _, err := ParseConfig(bp.Manifest, []string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseModbusRewrite(t *testing.T) {
	from, to, err := ParseModbusRewrite("10.0.0.5=127.0.0.1:5020")
	if err != nil || from != "10.0.0.5:502" || to != "127.0.0.1:5020" {
		t.Fatalf("got %q %q %v", from, to, err)
	}
	for _, bad := range []string{"10.0.0.5", "a:1=b", "=127.0.0.1:1"} {
		if _, _, err := ParseModbusRewrite(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
