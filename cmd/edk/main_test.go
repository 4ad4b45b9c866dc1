package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/internal/hubclient"
	"github.com/edk-go/edk/internal/suggest"
	"github.com/edk-go/edk/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitLimit = 20 * time.Second

// cli runs edk with args in the background; the test reads its output as
// it comes and cancels it like Ctrl-C would.
type cli struct {
	stdout, stderr *testutil.SyncBuffer
	cancel         context.CancelFunc
	code           chan int
}

func startCLI(t *testing.T, environ map[string]string, args ...string) *cli {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &cli{stdout: &testutil.SyncBuffer{}, stderr: &testutil.SyncBuffer{}, cancel: cancel, code: make(chan int, 1)}
	e := &env{stdout: c.stdout, stderr: c.stderr, getenv: func(k string) string { return environ[k] }, readFile: os.ReadFile}
	go func() { c.code <- run(ctx, e, args) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-c.code:
		case <-time.After(waitLimit):
			t.Errorf("edk %v did not stop", args)
		}
	})
	return c
}

// wait returns the exit code once the command ends by itself.
func (c *cli) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-c.code:
		c.code <- code // for Cleanup
		return code
	case <-time.After(waitLimit):
		t.Fatalf("command did not finish; stdout:\n%s\nstderr:\n%s", c.stdout, c.stderr)
		return -1
	}
}

// interrupt cancels the command as Ctrl-C does and returns its exit code.
func (c *cli) interrupt(t *testing.T) int {
	t.Helper()
	c.cancel()
	return c.wait(t)
}

func (c *cli) waitFor(t *testing.T, s string) {
	t.Helper()
	if !c.stdout.WaitFor(s, waitLimit) {
		t.Fatalf("%q never appeared; stdout:\n%s\nstderr:\n%s", s, c.stdout, c.stderr)
	}
}

func TestDemo(t *testing.T) {
	c := startCLI(t, nil, "demo", "--mqtt-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	c.waitFor(t, "Live telemetry continues below")
	out := c.stdout.String()
	flat := strings.Join(strings.Fields(out), " ") // the demo wraps its lines
	for _, want := range []string{
		`properties model="SimInverter 10K"`,
		`→ SUCCESS {"new_power":4700}`,
		`log {"message":"step 1/3: power 3800 W"`,
		`→ SUCCESS {"new_power":2000}`,
		`→ REFUSED by the hub (422): argument "power" of set_power must be a float (a number), not the string "abc"`,
		`→ REFUSED by the hub (422): unknown command "self_destruct"`,
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	// The console's address carries the token in the fragment, and the
	// page is served there.
	cm := regexp.MustCompile(`console     (http://\S+)/#token=(\S+)`).FindStringSubmatch(out)
	if cm == nil {
		t.Fatalf("demo output lacks the console URL:\n%s", out)
	}
	if resp, err := http.Get(cm[1] + "/"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET the console: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// The token in the address is one the API takes: the console signs in
	// with it.
	signIn, _ := http.NewRequest("GET", cm[1]+"/v3/devices", nil)
	signIn.Header.Set("X-Enapter-Auth-Token", cm[2])
	if resp, err := http.DefaultClient.Do(signIn); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v3/devices with the console URL's token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// Each step's messages come under its own heading: the watch's final
	// response is shown before the HTTP answer and the next heading. The
	// hub refuses the last two itself, so nothing reaches the device.
	steps := regexp.MustCompile(`(?s)── \d/4: [^\n]*──\n(.*?)   HTTP →`).FindAllStringSubmatch(out, -1)
	if len(steps) != 4 {
		t.Fatalf("found %d of 4 steps:\n%s", len(steps), out)
	}
	for i, cmd := range []string{"set_power", "ramp_power"} {
		if body := steps[i][1]; !strings.Contains(body, "command →   "+cmd) || !regexp.MustCompile(`response ←  id=\S+ (completed|error)`).MatchString(body) {
			t.Errorf("step %d lacks its command %s and final response:\n%s", i+1, cmd, body)
		}
	}
	for i := 2; i < 4; i++ {
		if strings.Contains(steps[i][1], "command →") {
			t.Errorf("step %d reached the device:\n%s", i+1, steps[i][1])
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if n := utf8.RuneCountInString(line); n > demoWidth {
			t.Errorf("line of %d columns, want at most %d: %q", n, demoWidth, line)
		}
	}
	// The "your turn" instructions work as printed: the hub answers the
	// token, and the watch names the inverter whose traffic is shown.
	hubURL := regexp.MustCompile(`export HUB=(\S+)`).FindStringSubmatch(out)
	token := regexp.MustCompile(`export TOKEN=(\S+)`).FindStringSubmatch(out)
	first := regexp.MustCompile(`Inverter 1  hardware_id (\S+)`).FindStringSubmatch(out)
	watched := regexp.MustCompile(`--hardware-id (\S+)`).FindStringSubmatch(out)
	if hubURL == nil || token == nil || first == nil || watched == nil {
		t.Fatalf("no HUB, TOKEN, hardware id or watch line:\n%s", out)
	}
	if watched[1] != first[1] {
		t.Errorf("the printed watch targets %s, the shown traffic is Inverter 1's (%s)", watched[1], first[1])
	}
	api := &hubclient.Client{BaseURL: hubURL[1], Token: token[1]}
	if err := api.Do(context.Background(), "GET", "/v3/devices", nil, nil); err != nil {
		t.Fatalf("GET /v3/devices with the printed token: %v", err)
	}
	c.waitFor(t, "power=2000 status=\"producing\"")
	if code := c.interrupt(t); code != 0 {
		t.Fatalf("exit code after Ctrl-C = %d, want 0; stderr:\n%s", code, c.stderr)
	}
	if !strings.Contains(c.stdout.String(), "stopped cleanly") {
		t.Errorf("no clean stop reported:\n%s", c.stdout)
	}
}

// Ctrl-C during the scripted commands stops the demo without inviting the
// person to start typing.
func TestDemoInterruptedEarly(t *testing.T) {
	c := startCLI(t, nil, "demo", "--mqtt-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	c.waitFor(t, "── 1/4")
	if code := c.interrupt(t); code != 0 {
		t.Fatalf("exit code after Ctrl-C = %d, want 0; stderr:\n%s", code, c.stderr)
	}
	out := c.stdout.String()
	if strings.Contains(out, "your turn") || !strings.Contains(out, "stopped cleanly") {
		t.Errorf("interrupted demo printed:\n%s", out)
	}
}

func TestWrapLine(t *testing.T) {
	got := wrapLine("  12:00:00 telemetry   power=1 a_long_attribute_name=\"some value\" another=2", 40, "      ")
	want := "  12:00:00 telemetry   power=1\n      a_long_attribute_name=\"some value\"\n      another=2\n"
	if got != want {
		t.Errorf("wrapLine =\n%s\nwant\n%s", got, want)
	}
	if got := wrapLine(strings.Repeat("x", 50), 40, "  "); got != strings.Repeat("x", 50)+"\n" {
		t.Errorf("a long word was cut: %q", got)
	}
}

func TestDemoPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := startCLI(t, nil, "demo", "--mqtt-addr", ln.Addr().String(), "--http-addr", "127.0.0.1:0")
	if code := c.wait(t); code != 1 {
		t.Fatalf("exit code = %d, want 1", code)
	}
	if msg := c.stderr.String(); !strings.Contains(msg, "port is taken") || !strings.Contains(msg, "--mqtt-addr 127.0.0.1:0") {
		t.Fatalf("stderr does not say how to pick another port:\n%s", msg)
	}
}

func TestRunExecWatch(t *testing.T) {
	b := testutil.StartBroker(t)
	host, port, _ := net.SplitHostPort(b.Addr())
	encode := startCLI(t, nil, "config", "encode", "--hardware-id", "hw-cli", "--host", host, "--port", port)
	if code := encode.wait(t); code != 0 {
		t.Fatalf("config encode: %d %s", code, encode.stderr)
	}
	blob := strings.TrimSpace(encode.stdout.String())
	broker := "tcp://" + b.Addr()

	watch := startCLI(t, nil, "watch", "--broker", broker, "--hardware-id", "hw-cli")
	if !watch.stderr.WaitFor("watching device hw-cli", waitLimit) {
		t.Fatalf("watch did not start: %s", watch.stderr)
	}
	dev := startCLI(t, map[string]string{commconfig.EnvConfig: blob}, "run", "--log-level", "debug")
	if !dev.stderr.WaitFor("state=connected", waitLimit) {
		t.Fatalf("run did not connect: %s", dev.stderr)
	}

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{"completed", []string{"set_power", "power=4700"}, 0, `completed {"new_power":4700}`},
		{"progress", []string{"ramp_power", "power=5700", "step_seconds=0"}, 0, `log       {"message":"step 1/1: power 5700 W"`},
		{"json args", []string{"--args", `{"power": 100}`, "set_power"}, 0, `completed {"new_power":100}`},
		{"device error", []string{"set_power", "power=-5"}, 1, `error     {"message":"argument \"power\" of set_power`},
		{"json output", []string{"--json", "set_power", "power=1"}, 0, `"state":"completed","payload":{"new_power":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"exec", "--broker", broker, "--hardware-id", "hw-cli"}, tt.args...)
			c := startCLI(t, nil, args...)
			if code := c.wait(t); code != tt.wantCode {
				t.Fatalf("exit code = %d, want %d; stdout:\n%s\nstderr:\n%s", code, tt.wantCode, c.stdout, c.stderr)
			}
			if !strings.Contains(c.stdout.String(), tt.wantOut) {
				t.Fatalf("stdout lacks %q:\n%s", tt.wantOut, c.stdout)
			}
		})
	}
	t.Run("timeout", func(t *testing.T) {
		c := startCLI(t, nil, "exec", "--broker", broker, "--hardware-id", "nobody", "--timeout", "50ms", "set_power", "power=1")
		if code := c.wait(t); code != 2 {
			t.Fatalf("exit code = %d, want 2", code)
		}
		if !strings.Contains(c.stderr.String(), "is device nobody connected") {
			t.Fatalf("stderr: %s", c.stderr)
		}
	})

	watch.waitFor(t, `response ← ch=primary`)
	watch.waitFor(t, `telemetry  ch=primary power=`)
	if code := dev.interrupt(t); code != 0 {
		t.Fatalf("run exit code after Ctrl-C = %d; stderr:\n%s", code, dev.stderr)
	}
	if code := watch.interrupt(t); code != 0 {
		t.Fatalf("watch exit code = %d", code)
	}
}

func TestConfigDecodeRedactsSecrets(t *testing.T) {
	cfg := commconfig.Config{Version: commconfig.Version3, HardwareID: "hw", ChannelID: "ch", Host: "gw.local", Port: 1883,
		Protocol: commconfig.ProtocolMQTT, Username: "user", Password: "top-secret-password"}
	blob, err := cfg.Encode()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "config.txt")
	if err := os.WriteFile(file, []byte(blob+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*cli{
		"flag": startCLI(t, nil, "config", "decode", "--config-blob", blob),
		"env":  startCLI(t, map[string]string{commconfig.EnvConfig: blob}, "config", "decode"),
		"file": startCLI(t, nil, "config", "decode", "--config-file", file),
	} {
		if code := c.wait(t); code != 0 {
			t.Fatalf("%s: exit %d: %s", name, code, c.stderr)
		}
		out := c.stdout.String()
		if strings.Contains(out, "top-secret-password") || !strings.Contains(out, "gw.local") || !strings.Contains(out, "redacted") {
			t.Fatalf("%s: output:\n%s", name, out)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		environ  map[string]string
		wantCode int
		wantErr  string
	}{
		{"no command", nil, nil, 2, ""},
		{"unknown command", []string{"fly"}, nil, 2, `unknown command "fly"`},
		{"unknown flag", []string{"demo", "--nope"}, nil, 2, "unknown flag --nope."},
		{"mistyped command", []string{"wtach"}, nil, 2, `unknown command "wtach". Did you mean 'edk watch'?`},
		{"mistyped top flag", []string{"--verison"}, nil, 2, `Did you mean 'edk --version'?`},
		{"mistyped flag", []string{"exec", "--hardwareid", "x", "set_power"}, nil, 2, "unknown flag --hardwareid. Did you mean --hardware-id?"},
		{"flag with a word too many", []string{"hub", "--data-dir", "x"}, nil, 2, "unknown flag --data-dir. Did you mean --data?"},
		{"flag without value", []string{"exec", "set_power", "--hardware-id"}, nil, 2, "--hardware-id needs a value"},
		{"duration without unit", []string{"demo", "--duration", "5"}, nil, 2, "--duration 5: a duration needs a unit, as in 5s"},
		{"bad duration", []string{"exec", "--timeout", "soon"}, nil, 2, `--timeout "soon": want a duration`},
		{"flags after the command name", []string{"exec", "set_power", "power", "--hardware-id", "x"}, nil, 2, `argument "power": want name=value`},
		{"mistyped subcommand", []string{"modbus", "raed"}, nil, 2, "Did you mean 'edk modbus read'?"},
		{"subcommand usage names it", []string{"config", "encode"}, nil, 2, "edk config encode: --hardware-id is required\nRun 'edk config encode -h'"},
		{"encode names the flag", []string{"config", "encode", "--hardware-id", "x", "--port", "0"}, nil, 2, "--port must be"},
		{"no doubled prefix", []string{"blueprint", "check", "/nonexistent/manifest.yml"}, nil, 1, "edk blueprint check: stat /nonexistent"},
		{"group help", []string{"modbus", "--help"}, nil, 0, ""},
		{"version flag", []string{"--version"}, nil, 0, ""},
		{"exec without hardware id", []string{"exec", "set_power"}, nil, 2, "--hardware-id is required"},
		{"exec without command", []string{"exec", "--hardware-id", "x"}, nil, 2, "name the command"},
		{"exec bad pair", []string{"exec", "--hardware-id", "x", "set_power", "power"}, nil, 2, `argument "power": want name=value`},
		{"exec bad json args", []string{"exec", "--hardware-id", "x", "--args", "[1]", "set_power"}, nil, 2, "--args must be a JSON object"},
		{"run without config", []string{"run"}, nil, 1, "set ENAPTER_STANDALONE_COMMUNICATION_CONFIG"},
		{"run with bad config", []string{"run"}, map[string]string{commconfig.EnvConfig: "not base64!"}, 1, "base64"},
		{"run with bad log level", []string{"run", "--log-level", "loud"}, nil, 2, "loud"},
		{"config without subcommand", []string{"config"}, nil, 2, "edk config decode"},
		{"config file and blob", []string{"config", "decode", "--config-file", "a", "--config-blob", "b"}, nil, 2, "not both"},
		{"help", []string{"help"}, nil, 0, ""},
		{"command help", []string{"exec", "-h"}, nil, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := startCLI(t, tt.environ, tt.args...)
			if code := c.wait(t); code != tt.wantCode {
				t.Fatalf("exit code = %d, want %d; stderr:\n%s", code, tt.wantCode, c.stderr)
			}
			if !strings.Contains(c.stderr.String(), tt.wantErr) {
				t.Fatalf("stderr lacks %q:\n%s", tt.wantErr, c.stderr)
			}
			// A mistake gets the line that explains it, not the flag list.
			if tt.wantCode == 2 && len(tt.args) > 0 && strings.Count(c.stderr.String(), "\n") > 3 {
				t.Fatalf("a usage error printed %d lines:\n%s", strings.Count(c.stderr.String(), "\n"), c.stderr)
			}
		})
	}
}

func TestExitCodeOfUnexpectedError(t *testing.T) {
	e := &env{stdout: &testutil.SyncBuffer{}, stderr: &testutil.SyncBuffer{}}
	if code := exitCode(e, "x", errors.New("boom")); code != 1 {
		t.Fatalf("code = %d", code)
	}
}

func TestConfigEncodePasswordFromEnv(t *testing.T) {
	c := startCLI(t, map[string]string{"EDK_MQTT_PASSWORD": "from-env-secret"}, "config", "encode", "--hardware-id", "hw1", "--username", "u")
	if code := c.wait(t); code != 0 {
		t.Fatalf("exit %d: %s", code, c.stderr)
	}
	cfg, err := commconfig.Parse(strings.TrimSpace(c.stdout.String()))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Password != "from-env-secret" || cfg.Username != "u" {
		t.Fatalf("config has user %q and a password of %d bytes, want the password from EDK_MQTT_PASSWORD", cfg.Username, len(cfg.Password))
	}
}

func TestHelpListsFlags(t *testing.T) {
	for _, args := range [][]string{{"run", "-h"}, {"hub", "-h"}, {"exec", "-h"}} {
		c := startCLI(t, nil, args...)
		c.wait(t)
		help := c.stderr.String() + c.stdout.String()
		if !strings.Contains(help, "Usage: edk "+args[0]) || !strings.Contains(help, "-hardware-id") && !strings.Contains(help, "-log-level") {
			t.Errorf("edk %s -h printed no flag list:\n%s", args[0], help)
		}
	}
}

func TestParseFlagsInterspersed(t *testing.T) {
	tests := []struct {
		args     []string
		wantID   string
		wantArgs []string
	}{
		{[]string{"--hardware-id", "x", "set_power", "power=1"}, "x", []string{"set_power", "power=1"}},
		{[]string{"set_power", "--hardware-id", "x", "power=1"}, "x", []string{"set_power", "power=1"}},
		{[]string{"set_power", "power=1", "--hardware-id=x"}, "x", []string{"set_power", "power=1"}},
		// After "--" even what looks like a flag is an argument.
		{[]string{"--hardware-id", "x", "--", "set_power", "--hardware-id", "y"}, "x", []string{"set_power", "--hardware-id", "y"}},
		{nil, "", nil},
	}
	for _, tt := range tests {
		fs := newFlags("exec", "", &strings.Builder{})
		id := fs.String("hardware-id", "", "")
		if err := parseFlags(fs, tt.args); err != nil {
			t.Fatalf("%q: %v", tt.args, err)
		}
		if *id != tt.wantID || strings.Join(fs.Args(), " ") != strings.Join(tt.wantArgs, " ") {
			t.Errorf("%q: hardware-id %q, args %q; want %q, %q", tt.args, *id, fs.Args(), tt.wantID, tt.wantArgs)
		}
	}
}

func TestClosest(t *testing.T) {
	cmds := []string{"demo", "hub", "run", "exec", "watch", "modbus", "sim", "config", "blueprint", "version"}
	for word, want := range map[string]string{
		"hbu": "hub", "wtach": "watch", "blue": "blueprint", "confg": "config", "exce": "exec",
		"versoin": "version", "xyzzy": "", "fly": "", "a": "",
	} {
		if got := suggest.Closest(word, cmds); got != want {
			t.Errorf("closest(%q) = %q, want %q", word, got, want)
		}
	}
}

func TestVersion(t *testing.T) {
	old := version
	version = "v9.9.9"
	t.Cleanup(func() { version = old })
	for _, args := range [][]string{{"version"}, {"--version"}, {"-v"}} {
		c := startCLI(t, nil, args...)
		if code := c.wait(t); code != 0 {
			t.Fatalf("edk %v: exit %d", args, code)
		}
		if out := c.stdout.String(); !strings.HasPrefix(out, "edk v9.9.9 (") || !strings.Contains(out, runtime.GOOS+"/"+runtime.GOARCH) {
			t.Errorf("edk %v printed %q", args, out)
		}
	}
}
