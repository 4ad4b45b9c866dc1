package luarun

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/edk-go/edk/blueprint"
	"github.com/edk-go/edk/mqttapi"
)

// Sink receives what the script publishes; *device.Device is one.
type Sink interface {
	SendTelemetry(ctx context.Context, t mqttapi.Telemetry) error
	SendProperties(ctx context.Context, p mqttapi.Properties) error
	SendLog(ctx context.Context, l mqttapi.Log) error
}

// DefaultCallTimeout is Enapter's execution limit for one Lua call.
const DefaultCallTimeout = 5 * time.Second

// Options configures a Runtime.
type Options struct {
	Sink   Sink
	Logger *slog.Logger // nil: silent
	// Config holds v3 configuration values: group → parameter → value
	// (see ParseConfig).
	Config map[string]map[string]any
	// StorageFile keeps storage.write values across restarts (JSON, 0600).
	// Empty: storage lives in memory only.
	StorageFile string
	// HTTPRewrites change the scheme and host of the script's HTTP
	// requests, e.g. to point a cloud-bound blueprint at a local server.
	HTTPRewrites []HTTPRewrite
	// ModbusTCPRewrites send the script's Modbus TCP connections for an
	// address (host:port as the script names it) to another one, e.g. a
	// simulator (see ParseModbusRewrite).
	ModbusTCPRewrites map[string]string
	// Ports maps the UCM's serial port names (rs485, rs232) to this host's
	// serial devices, for Modbus RTU (see ParsePort).
	Ports map[string]SerialPort
	// CANPorts maps the UCM's CAN port names (can-1) to this host's CAN
	// buses, for can.new (see ParseCANPort).
	CANPorts map[string]CANPort
	// CallTimeout is the watchdog for one call into the script.
	CallTimeout time.Duration
	// MemoryLimit bounds the script's memory in bytes (0: the lua default).
	MemoryLimit int
}

// HTTPRewrite sends requests for From (scheme://host[:port]; empty: every
// request) to To's scheme and host, keeping path and query; a path in To
// is prefixed.
type HTTPRewrite struct {
	From string
	To   *url.URL
}

// ParseHTTPRewrite parses "URL" or "ORIGIN=URL".
func ParseHTTPRewrite(s string) (HTTPRewrite, error) {
	from, to, ok := strings.Cut(s, "=")
	if !ok {
		from, to = "", s
	}
	u, err := url.Parse(to)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return HTTPRewrite{}, fmt.Errorf("http base URL %q: want http(s)://host[:port][/path]", to)
	}
	if from != "" {
		f, err := url.Parse(from)
		if err != nil || f.Host == "" {
			return HTTPRewrite{}, fmt.Errorf("http origin %q: want scheme://host[:port]", from)
		}
		from = f.Scheme + "://" + f.Host
	}
	return HTTPRewrite{From: from, To: u}, nil
}

// SerialPort is a host serial device standing in for a UCM port. The
// zero settings are 9600 baud, 8 data bits, no parity, 1 stop bit; a v1
// script's rs485.init / rs232.init replaces them.
type SerialPort struct {
	Device   string
	Baud     uint
	DataBits uint
	Parity   string // N, E or O
	StopBits uint
}

// ParsePort parses NAME=DEVICE[?baud=N&data_bits=N&parity=N|E|O&stop_bits=N],
// e.g. rs485=/dev/ttyUSB0?baud=19200&parity=E.
func ParsePort(s string) (string, SerialPort, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" || rest == "" {
		return "", SerialPort{}, fmt.Errorf("port %q: want NAME=DEVICE, e.g. rs485=/dev/ttyUSB0", s)
	}
	dev, query, _ := strings.Cut(rest, "?")
	p := SerialPort{Device: dev, Baud: 9600, DataBits: 8, Parity: "N", StopBits: 1}
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", SerialPort{}, fmt.Errorf("port %q: %w", s, err)
	}
	for k, vs := range q {
		v := vs[len(vs)-1]
		switch k {
		case "parity":
			if v != "N" && v != "E" && v != "O" {
				return "", SerialPort{}, fmt.Errorf("port %q: parity must be N, E or O", s)
			}
			p.Parity = v
		case "baud", "data_bits", "stop_bits":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || n == 0 {
				return "", SerialPort{}, fmt.Errorf("port %q: %s must be a positive number", s, k)
			}
			switch k {
			case "baud":
				p.Baud = uint(n)
			case "data_bits":
				p.DataBits = uint(n)
			default:
				p.StopBits = uint(n)
			}
		default:
			return "", SerialPort{}, fmt.Errorf("port %q: unknown setting %q (baud, data_bits, parity, stop_bits)", s, k)
		}
	}
	return name, p, nil
}

// ParseModbusRewrite parses FROM=TO, both host:port (a FROM without a
// port means :502).
func ParseModbusRewrite(s string) (string, string, error) {
	from, to, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", fmt.Errorf("modbus rewrite %q: want FROM=TO, e.g. 192.168.1.50:502=127.0.0.1:5020", s)
	}
	if !strings.Contains(from, ":") {
		from += ":502"
	}
	for _, hp := range []string{from, to} {
		if host, port, err := net.SplitHostPort(hp); err != nil || host == "" || port == "" {
			return "", "", fmt.Errorf("modbus rewrite %q: %q is not host:port", s, hp)
		}
	}
	return from, to, nil
}

// Blueprint is a blueprint folder ready to run.
type Blueprint struct {
	Dir      string
	Manifest *blueprint.Manifest
	// Main is the script file; for dir-mode blueprints (runtime.options.dir)
	// ModuleDir is that folder, where require finds sibling files.
	Main      string
	ModuleDir string
	// Problems are the manifest's schema problems; with any, Manifest is
	// only as far as it could be read.
	Problems []string
}

// APIVersion is 1 for device/1.0 blueprints, 3 for device/3.0.
func (b *Blueprint) APIVersion() int {
	if b.Manifest.Spec == blueprint.SpecV1 {
		return 1
	}
	return 3
}

type luaSection struct {
	CommunicationModule struct {
		LuaFile string `yaml:"lua_file"`
		Lua     struct {
			File string `yaml:"file"`
			Dir  string `yaml:"dir"`
		} `yaml:"lua"`
	} `yaml:"communication_module"`
	Runtime struct {
		Type    string `yaml:"type"`
		Options struct {
			File string `yaml:"file"`
			Dir  string `yaml:"dir"`
		} `yaml:"options"`
	} `yaml:"runtime"`
}

// LoadBlueprint reads dir/manifest.yml and finds the Lua script it names:
// communication_module.lua_file / lua.file / lua.dir (device/1.0) or
// runtime.options.file / dir (device/3.0; a dir runs its main.lua).
func LoadBlueprint(dir string) (*Blueprint, error) {
	path := filepath.Join(dir, "manifest.yml")
	m, err := blueprint.Load(path)
	var problems []string
	var me *blueprint.ManifestError
	if errors.As(err, &me) && m != nil {
		// Marketplace manifests that break the schema in small ways
		// (an argument with a unit, a misspelt key) still run, as on
		// Enapter's side; the caller warns and does not hold the device
		// to such a manifest.
		for _, p := range me.Problems {
			problems = append(problems, p.String())
		}
	} else if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var sec luaSection
	if err := yaml.Unmarshal(raw, &sec); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	b := &Blueprint{Dir: dir, Manifest: m, Problems: problems}
	cm, rt := sec.CommunicationModule, sec.Runtime
	file, sub := cm.LuaFile, cm.Lua.Dir
	if file == "" {
		file = cm.Lua.File
	}
	if file == "" && sub == "" {
		if rt.Type != "" && rt.Type != "lua" {
			return nil, fmt.Errorf("%s: runtime type %q is not Lua", path, rt.Type)
		}
		file, sub = rt.Options.File, rt.Options.Dir
	}
	switch {
	case sub != "":
		b.ModuleDir = filepath.Join(dir, filepath.Clean("/" + sub)[1:])
		b.Main = filepath.Join(b.ModuleDir, "main.lua")
	case file != "":
		b.Main = filepath.Join(dir, filepath.Clean("/" + file)[1:])
		b.ModuleDir = filepath.Dir(b.Main)
	default:
		return nil, fmt.Errorf("%s names no Lua script (communication_module.lua_file or runtime.options.file/dir)", path)
	}
	if _, err := os.Stat(b.Main); err != nil {
		return nil, fmt.Errorf("blueprint script: %w", err)
	}
	return b, nil
}

// ParseConfig turns --config values ("param=value" or "group.param=value")
// into configuration groups, typed by the manifest's configuration
// section (integer, float, boolean, string).
func ParseConfig(m *blueprint.Manifest, pairs []string) (map[string]map[string]any, error) {
	out := map[string]map[string]any{}
	for _, p := range pairs {
		key, val, ok := strings.Cut(p, "=")
		if !ok {
			return nil, fmt.Errorf("--config %q: want key=value", p)
		}
		group, param, hasGroup := strings.Cut(key, ".")
		if !hasGroup {
			group, param = "", key
		}
		var arg *blueprint.Argument
		for _, b := range m.Configuration {
			if hasGroup && b.Name != group {
				continue
			}
			for _, a := range b.Parameters {
				if a.Name == param {
					if arg != nil && !hasGroup {
						return nil, fmt.Errorf("--config %s: parameter is in several groups; write group.%s", key, param)
					}
					arg, group = a, b.Name
				}
			}
		}
		if arg == nil {
			return nil, fmt.Errorf("--config %s: the manifest declares no such configuration parameter", key)
		}
		v, err := typed(arg.Type, val)
		if err != nil {
			return nil, fmt.Errorf("--config %s: %w", key, err)
		}
		if out[group] == nil {
			out[group] = map[string]any{}
		}
		out[group][param] = v
	}
	return out, nil
}

func typed(t blueprint.Type, s string) (any, error) {
	switch t {
	case blueprint.TypeInteger:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not an integer", s)
		}
		return n, nil
	case blueprint.TypeFloat:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", s)
		}
		return f, nil
	case blueprint.TypeBoolean:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not true or false", s)
		}
		return b, nil
	}
	return s, nil
}
