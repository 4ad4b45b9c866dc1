package console_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/hub"
	"github.com/edk-go/edk/internal/hubclient"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
	"github.com/edk-go/edk/sim/inverter"
)

var screenshots = flag.String("screenshots", "", "write the browser test's screenshots to this folder (the README's are made with -screenshots=../../docs/img)")

// findChromium returns the browser binary; without one the test skips,
// except in CI (CI=true), where .ci/run installs it and its absence fails.
func findChromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found; the console's browser test is required in CI: apt-get install chromium")
	}
	t.Skip("chromium not found (apt-get install chromium); skipping the console's browser test")
	return ""
}

// testHub is a hub with one simulated inverter that runs with its manifest.
type testHub struct {
	base, token, deviceID string
	dev                   *device.Device
}

func (h *testHub) call(t *testing.T, method, path string, body any, out any) {
	t.Helper()
	api := &hubclient.Client{BaseURL: h.base, Token: h.token}
	if err := api.Do(context.Background(), method, path, body, out); err != nil {
		t.Fatal(err)
	}
}

func startHub(t *testing.T) *testHub {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan hub.Info, 1)
	done := make(chan error, 1)
	go func() {
		done <- hub.Run(ctx, hub.Config{DataDir: t.TempDir(), MQTTAddr: "127.0.0.1:0", MQTTSAddr: "-", HTTPAddr: "127.0.0.1:0",
			Ready: func(i hub.Info) { ready <- i }})
	}()
	var info hub.Info
	select {
	case info = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("hub: %v", err)
	}
	h := &testHub{base: info.HTTPURL, token: info.Token}

	var created struct {
		DeviceID string `json:"device_id"`
	}
	h.call(t, "POST", "/v3/provisioning/standalone", map[string]string{"name": "Inverter 1", "slug": "inverter-1"}, &created)
	h.deviceID = created.DeviceID
	h.call(t, "POST", "/v3/devices/"+h.deviceID+"/assign_blueprint", map[string]string{"manifest": string(inverter.ManifestYAML())}, nil)
	var gen struct {
		Blob string `json:"blob"`
	}
	h.call(t, "POST", "/v3/devices/"+h.deviceID+"/generate_config", map[string]string{"protocol": "MQTT"}, &gen)
	cfg, err := commconfig.Parse(gen.Blob)
	if err != nil {
		t.Fatal(err)
	}
	inv := inverter.New("TEST-0001")
	d, err := device.New(cfg, append(inv.Options(), device.WithManifest(inverter.Manifest()))...)
	if err != nil {
		t.Fatal(err)
	}
	h.dev = d
	devCtx, stopDev := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = d.Run(devCtx) }()
	t.Cleanup(func() {
		stopDev()
		wg.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hub stopped with %v", err)
		}
	})
	waitCtx, cancelWait := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancelWait()
	if err := d.WaitState(waitCtx, device.StateConnected); err != nil {
		t.Fatalf("device did not connect: %v", err)
	}
	// Twelve minutes of history, so that the charts have a past to load
	// from the store (and the screenshots show one).
	now := time.Now().Unix()
	for i := int64(72); i > 0; i-- {
		power := float64((72-i)/12) * 1000
		status := "producing"
		if power == 0 {
			status = "standby"
		}
		if err := d.SendTelemetry(waitCtx, mqttapi.Telemetry{Timestamp: now - i*10, Alerts: mqttapi.NoAlerts(),
			Values: map[string]any{"power": power, "status": status, "voltage": 230 + 2*math.Sin(float64(i)/6)}}); err != nil {
			t.Fatalf("send history: %v", err)
		}
	}
	return h
}

// testBoxManifest declares a command with a confirmation, a sensitive
// argument and an enum with a default.
const testBoxManifest = `blueprint_spec: device/3.0
display_name: Test Box
runtime:
  type: embedded
command_groups:
  maint:
    display_name: Maintenance
commands:
  reboot:
    display_name: Reboot
    group: maint
    confirmation:
      severity: warning
      title: Reboot the box?
      description: It drops every connection for a minute.
    arguments:
      pin:
        display_name: PIN
        type: string
        required: true
        sensitive: true
      mode:
        display_name: Mode
        type: string
        enum: [soft, hard]
        default: hard
`

// TestConsoleInBrowser drives the console in a real headless Chromium
// against a hub with a running simulated inverter: everything the issue
// asks a person to be able to do, and what bad input looks like.
func TestConsoleInBrowser(t *testing.T) {
	chromium := findChromium(t)
	h := startHub(t)
	shots := *screenshots
	if shots == "" {
		shots = t.TempDir()
	}

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	defer cancelCtx()
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()

	fail := func(what string, err error) {
		t.Helper()
		// The page's text is shorter than its HTML and says what went wrong.
		text, _ := chromedp.Run(context.WithoutCancel(ctx), chromedp.Evaluate[string](`document.querySelector('main').innerText`))
		t.Fatalf("%s: %v\npage text:\n%.4000s", what, err, text)
	}
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			fail(what, err)
		}
	}
	eval := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](expr)); err != nil {
			fail(what, err)
		}
	}
	// waitJS polls a JavaScript condition; chromedp.Poll gives up with the
	// context, so a failure names the step.
	waitJS := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(30*time.Second))); err != nil {
			fail(what, err)
		}
	}
	shot := func(name string, full bool) {
		t.Helper()
		action := chromedp.CaptureScreenshot()
		if full {
			action = chromedp.FullScreenshot(100) // quality 100: PNG
		}
		buf, err := chromedp.Run(ctx, action)
		if err != nil {
			fail("screenshot "+name, err)
		}
		if !bytes.HasPrefix(buf, []byte("\x89PNG")) {
			t.Fatalf("screenshot %s is not a PNG", name)
		}
		if err := os.WriteFile(filepath.Join(shots, name), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// text reads in one script run: the page re-renders rows on every live
	// value, so a node found by one call may be gone by the next.
	text := func(sel string) string {
		t.Helper()
		expr := fmt.Sprintf(`(() => { const n = document.querySelector(%q); if (!n) throw new Error('no element matches ' + %q); return n.textContent; })()`, sel, sel)
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			fail("read "+sel, err)
		}
		return s
	}

	// A wrong token: the login form, with the reason, not a blank page.
	run("open with a wrong token", chromedp.Navigate(h.base+"/#token=wrong-token"))
	waitJS("login form after a wrong token", `!!document.querySelector('#login-form') && document.querySelector('#login-message').textContent.includes('refused')`)
	shot("console-login.png", false)

	// The right token, typed into the form.
	run("sign in", chromedp.SendKeys(chromedp.CSS("#login-token"), h.token), chromedp.Click(chromedp.CSS("#login-form button[type=submit]")))
	waitJS("the inverter online in the list",
		`(() => { const r = document.querySelector('#devices tr[data-slug="inverter-1"]'); return !!r && r.querySelector('.connectivity').textContent === 'ONLINE'; })()`)
	waitJS("the list shows the blueprint", `document.querySelector('#devices tr[data-slug="inverter-1"]').textContent.includes('SimInverter 10K')`)

	// Provision a device from the page and download its config.
	downloads := t.TempDir()
	run("allow downloads", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads})
		return err
	}))
	run("add a device", chromedp.SendKeys(chromedp.CSS("#new-name"), "Inverter 2"), chromedp.SendKeys(chromedp.CSS("#new-slug"), "inverter-2"),
		chromedp.Click(chromedp.CSS("#provision-form button[type=submit]")))
	waitJS("the new device in the list", `!!document.querySelector('#provisioned') && (document.querySelector('#devices tr[data-slug="inverter-2"] .connectivity') || {}).textContent === 'UNKNOWN'`)
	run("download its config", chromedp.Click(chromedp.CSS("#provisioned button")))
	waitJS("the page says where the config went", `document.querySelector('#provisioned').textContent.includes('inverter-2-mqtt.config')`)
	configFile := filepath.Join(downloads, "inverter-2-mqtt.config")
	var blob []byte
	testutil.Eventually(t, "the config download in "+downloads, func() bool {
		blob, _ = os.ReadFile(configFile)
		return len(blob) > 0
	})
	if cfg, err := commconfig.Parse(strings.TrimSpace(string(blob))); err != nil {
		t.Fatalf("downloaded config: %v", err)
	} else if cfg.HardwareID == "" || cfg.Password == "" {
		t.Fatal("downloaded config lacks the hardware id or the password")
	}
	shot("console-devices.png", false)

	// The device page: a telemetry value changes without a reload.
	run("open the device", chromedp.Click(chromedp.CSS(`#devices tr[data-slug="inverter-1"] a`)))
	waitJS("voltage in the latest values", `(document.querySelector('#latest tr[data-attr="voltage"] .value') || {}).textContent?.endsWith(' V')`)
	waitJS("history from the store", `+(document.querySelector('#charts figure[data-attr="power"]') || {dataset: {}}).dataset.points > 60`)
	waitJS("charts drawn", `document.querySelectorAll('#charts figure[data-kind="line"] canvas').length >= 2 && !!document.querySelector('#charts figure[data-attr="status"][data-kind="state"]')`)
	eval("mark the page", `window.__notReloaded = true`)
	first := text(`#latest tr[data-attr="voltage"] .value`)
	waitJS("voltage changes live", fmt.Sprintf(`document.querySelector('#latest tr[data-attr="voltage"] .value').textContent !== %q && window.__notReloaded === true`, first))
	if got := text(`#charts figure[data-attr="power"] figcaption`); !strings.Contains(got, "AC Power (W)") {
		t.Errorf("power chart caption = %q, want the manifest's display name and unit", got)
	}

	// set_power from the generated form: SUCCESS, and the chart has the new value.
	run("fill set_power", chromedp.SetValue(chromedp.CSS("#arg-set_power-power"), "4000"),
		chromedp.Click(chromedp.CSS("#cmd-set_power button[type=submit]")))
	waitJS("set_power succeeds", `document.querySelector('#status-set_power').textContent.includes('SUCCESS')`)
	waitJS("the chart shows 4000 W", `document.querySelector('#charts figure[data-attr="power"]').dataset.last === '4000'`)
	waitJS("status band shows producing", `document.querySelector('#charts figure[data-attr="status"]').dataset.last === 'producing'`)
	waitJS("history lists the execution", `!!document.querySelector('#executions tr[data-state="SUCCESS"]') && document.querySelector('#executions').textContent.includes('{"power":4000}')`)

	// ramp_power reports progress: the steps show while it runs, then SUCCESS.
	run("ramp", chromedp.SetValue(chromedp.CSS("#arg-ramp_power-power"), "6000"), chromedp.SetValue(chromedp.CSS("#arg-ramp_power-step_seconds"), "0.5"),
		chromedp.SetValue(chromedp.CSS("#arg-ramp_power-step_watts"), "500"), chromedp.Click(chromedp.CSS("#cmd-ramp_power button[type=submit]")))
	waitJS("ramp progress while it runs", `(() => { const s = document.querySelector('#status-ramp_power').textContent; return s.includes('running') && s.includes('step 1/4: power 4500 W'); })()`)
	waitJS("ramp ends in SUCCESS", `document.querySelector('#status-ramp_power').textContent.includes('SUCCESS') && document.querySelector('#status-ramp_power').textContent.includes('step 4/4')`)
	waitJS("the chart shows 6000 W", `document.querySelector('#charts figure[data-attr="power"]').dataset.last === '6000'`)

	// A log line the device sends shows up.
	if err := h.dev.SendLog(context.Background(), mqttapi.Log{Timestamp: time.Now().Unix(), Severity: mqttapi.SeverityWarning, Message: "inverter fan speed high"}); err != nil {
		t.Fatal(err)
	}
	waitJS("the log line arrives", `document.querySelector('#logs').textContent.includes('inverter fan speed high')`)
	run("filter logs to errors", chromedp.SetValue(chromedp.CSS("#log-filter"), "error"))
	eval("filter logs to errors", `document.querySelector('#log-filter').dispatchEvent(new Event('change'))`)
	waitJS("a warning is filtered out", `!document.querySelector('#logs').textContent.includes('inverter fan speed high')`)
	run("show all logs", chromedp.SetValue(chromedp.CSS("#log-filter"), "debug"))
	eval("show all logs", `document.querySelector('#log-filter').dispatchEvent(new Event('change'))`)
	// The page opens on the logs the store holds, not an empty list.
	run("reload the device page", chromedp.Reload())
	waitJS("the stored log line after a reload", `!!document.querySelector('#logs') && document.querySelector('#logs').textContent.includes('inverter fan speed high')`)

	// Another range comes from the store, aggregated.
	run("one hour", chromedp.Click(chromedp.CSS(`label[for="range-1h"]`)))
	waitJS("the hour's buckets", `+document.querySelector('#charts figure[data-attr="power"]').dataset.points > 20 && document.querySelector('#charts figure[data-attr="power"]').dataset.last !== ''`)
	run("back to 15 minutes", chromedp.Click(chromedp.CSS(`label[for="range-15m"]`)))
	waitJS("15 minutes again", `document.querySelector('#charts figure[data-attr="power"]').dataset.last === '6000'`)

	// A bad value: the manifest's message.
	run("submit a bad power", chromedp.SetValue(chromedp.CSS("#arg-set_power-power"), "20000"),
		chromedp.Click(chromedp.CSS("#cmd-set_power button[type=submit]")))
	waitJS("the manifest's message", `document.querySelector('#status-set_power').textContent.includes('must be at most 10000')`)
	shot("console-device.png", true)

	// Phone width, dark.
	run("dark theme", chromedp.Click(chromedp.CSS("#theme")), chromedp.Click(chromedp.CSS("#theme")))
	waitJS("dark", `document.documentElement.dataset.theme === 'dark'`)
	run("phone width", chromedp.EmulateViewport(390, 844))
	waitJS("charts fit the phone", `document.querySelector('#charts canvas').getBoundingClientRect().right <= 390`)
	shot("console-phone-dark.png", false)
	run("laptop width", chromedp.EmulateViewport(1280, 800))

	// Deleted while its page is open: the page says so.
	h.call(t, "DELETE", "/v3/devices/"+h.deviceID, nil, nil)
	waitJS("the page says the device was deleted", `!!document.querySelector('#deleted') && document.querySelector('#device-controls').disabled`)

	// A device without a manifest gets the free JSON form, which refuses
	// what is not a JSON object before sending anything.
	run("back to the list", chromedp.Click(chromedp.CSS("#deleted a")))
	waitJS("the deleted device is gone", `!!document.querySelector('#devices tr[data-slug="inverter-2"]') && !document.querySelector('#devices tr[data-slug="inverter-1"]')`)
	run("open the device without a manifest", chromedp.Click(chromedp.CSS(`#devices tr[data-slug="inverter-2"] a`)))
	waitJS("the free form", `!!document.querySelector('#cmd-free') && document.querySelector('#commands').textContent.includes('no blueprint manifest')`)
	run("send bad JSON", chromedp.SendKeys(chromedp.CSS("#free-name"), "set_power"), chromedp.SetValue(chromedp.CSS("#free-args"), "{power: 1"),
		chromedp.Click(chromedp.CSS("#cmd-free button[type=submit]")))
	waitJS("the JSON is refused", `document.querySelector('#status-free').textContent.includes('must be a JSON object')`)

	// A manifest assigned while the page is open brings its forms: a
	// sensitive argument is a password field, an enum a select with its
	// default, and a command with a confirmation asks first (cancelled
	// here: nothing is sent).
	var list struct {
		Devices []struct{ ID, Slug string } `json:"devices"`
	}
	h.call(t, "GET", "/v3/devices", nil, &list)
	if len(list.Devices) != 1 || list.Devices[0].Slug != "inverter-2" {
		t.Fatalf("devices = %+v", list.Devices)
	}
	h.call(t, "POST", "/v3/devices/"+list.Devices[0].ID+"/assign_blueprint", map[string]string{"manifest": testBoxManifest}, nil)
	waitJS("the manifest's form", `!!document.querySelector('#cmd-reboot') && document.querySelector('#arg-reboot-pin').type === 'password' && document.querySelector('#arg-reboot-mode').selectedOptions[0].textContent === 'hard'`)
	run("reboot", chromedp.SendKeys(chromedp.CSS("#arg-reboot-pin"), "1234"), chromedp.Click(chromedp.CSS("#cmd-reboot button[type=submit]")))
	waitJS("the confirmation", `(() => { const d = document.querySelector('dialog[open]'); return !!d && d.textContent.includes('Reboot the box?') && d.textContent.includes('drops every connection'); })()`)
	shot("console-confirm.png", false)
	run("cancel", chromedp.Click(chromedp.CSS("dialog[open] button.ghost")))
	waitJS("nothing sent", `!document.querySelector('dialog') && document.querySelector('#status-reboot').textContent === '' && document.querySelector('#executions').textContent.includes('No commands sent yet')`)
}
