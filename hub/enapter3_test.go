package hub_test

// The contract test: Enapter's own CLI (enapter3, built from the v3 branch
// of github.com/Enapter/enapter-cli; a copy sits in ../shared/tools beside
// the repository) drives a running hub through every step a user takes,
// with only the URL and the token changed. Any step that fails fails the
// test. In CI (CI=true) a missing binary fails it too.

import (
	"archive/zip"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

// enapter3Path finds Enapter's CLI: $EDK_ENAPTER3, else shared/tools/enapter3
// beside the repository root (the folder holding go.mod).
func enapter3Path(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("EDK_ENAPTER3"); p != "" {
		return p
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's folder")
		}
		dir = parent
	}
	p := filepath.Join(dir, "..", "shared", "tools", "enapter3")
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Enapter's CLI is required in CI: %v", err)
		}
		t.Skipf("Enapter's CLI not found (%v); set EDK_ENAPTER3 or put shared/ beside the repository", err)
	}
	return p
}

// enapter3 runs the CLI against one hub.
type enapter3 struct {
	t          *testing.T
	bin, url   string
	token, dir string
}

func (c enapter3) cmd(ctx context.Context, token string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = []string{"HOME=" + c.dir, "PATH=" + os.Getenv("PATH"),
		"ENAPTER3_API_URL=" + c.url, "ENAPTER3_API_TOKEN=" + token}
	cmd.Dir = c.dir
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// run runs one step and returns its stdout; the step must succeed.
func (c enapter3) run(args ...string) string {
	c.t.Helper()
	out, errOut, err := c.try(c.token, args...)
	if err != nil {
		c.t.Fatalf("enapter3 %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// try runs one step and returns its stdout, stderr and exit error.
func (c enapter3) try(token string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	cmd := c.cmd(ctx, token, args...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// runJSON runs a step whose output is one JSON value and decodes it.
func (c enapter3) runJSON(v any, args ...string) string {
	c.t.Helper()
	out := c.run(args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("enapter3 %s: output is not the JSON expected: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// follow starts a --follow step and returns the first line of its output
// that match accepts, then stops the CLI.
func (c enapter3) follow(trigger func(), match func(string) bool, args ...string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	cmd := c.cmd(ctx, c.token, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	errOut := &testutil.SyncBuffer{}
	cmd.Stderr = errOut
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	defer func() {
		cancel()
		_ = cmd.Wait()
		for range lines { // let the reader end
		}
	}()
	// The stream is open once the hub has a subscriber; until then a
	// trigger could be missed, so trigger again while waiting.
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	trigger()
	var seen []string
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				c.t.Fatalf("enapter3 %s ended before the expected line; stdout: %q; stderr: %s", strings.Join(args, " "), seen, errOut.String())
			}
			if match(l) {
				return l
			}
			seen = append(seen, l)
		case <-tick.C:
			trigger()
		case <-ctx.Done():
			c.t.Fatalf("enapter3 %s: no expected line in time; stdout: %q; stderr: %s", strings.Join(args, " "), seen, errOut.String())
		}
	}
}

// writeBlueprint writes a blueprint folder holding the inverter's manifest.
func writeBlueprint(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "sim", "inverter", "manifest.yml"))
	if err != nil {
		t.Fatal(err)
	}
	bp := filepath.Join(dir, "inverter-blueprint")
	if err := os.MkdirAll(bp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bp, "manifest.yml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return bp
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestEnapterCLI(t *testing.T) {
	bin := enapter3Path(t)
	h := startHub(t, t.TempDir())
	c := enapter3{t: t, bin: bin, url: h.info.HTTPURL, token: h.info.Token, dir: t.TempDir()}

	// Sites: one, the hub's.
	var sites struct {
		TotalCount int `json:"total_count"`
		Sites      []struct {
			ID             string `json:"id"`
			AuthorizedRole string `json:"authorized_role"`
		} `json:"sites"`
	}
	c.runJSON(&sites, "site", "list")
	if sites.TotalCount != 1 || len(sites.Sites) != 1 || !uuidRE.MatchString(sites.Sites[0].ID) || sites.Sites[0].AuthorizedRole != "OWNER" {
		t.Fatalf("site list: %+v", sites)
	}
	siteID := sites.Sites[0].ID
	c.runJSON(&sites, "site", "list", "--my-sites")
	if sites.TotalCount != 1 || sites.Sites[0].ID != siteID {
		t.Fatalf("site list --my-sites: %+v", sites)
	}
	var site struct {
		Site struct {
			ID string `json:"id"`
		} `json:"site"`
	}
	if c.runJSON(&site, "site", "get", "--site-id", siteID); site.Site.ID != siteID {
		t.Fatalf("site get: %+v", site)
	}

	// Create, with and without the site.
	var created struct {
		DeviceID string `json:"device_id"`
	}
	c.runJSON(&created, "device", "create", "standalone", "-n", "CLI Inverter", "-s", siteID)
	id := created.DeviceID
	if !uuidRE.MatchString(id) {
		t.Fatalf("device create: %+v", created)
	}
	c.runJSON(&created, "device", "create", "standalone", "--device-name", "Second")
	second := created.DeviceID

	// List pages by 50: make sure there is more than one page.
	for i := range 50 {
		if code := h.call(t, "POST", "/v3/provisioning/standalone", map[string]any{"name": fmt.Sprintf("filler %d", i)}, nil); code != http.StatusOK {
			t.Fatalf("filler %d: %d", i, code)
		}
	}
	var list struct {
		TotalCount int `json:"total_count"`
		Devices    []struct {
			ID     string `json:"id"`
			SiteID string `json:"site_id"`
			Site   *struct {
				ID string `json:"id"`
			} `json:"site"`
		} `json:"devices"`
	}
	c.runJSON(&list, "device", "list")
	if list.TotalCount != 52 || len(list.Devices) != 52 {
		t.Fatalf("device list: total %d, %d devices", list.TotalCount, len(list.Devices))
	}
	c.runJSON(&list, "device", "list", "--site-id", siteID, "--limit", "3", "--expand", "connectivity,site")
	if len(list.Devices) != 3 || list.Devices[0].SiteID != siteID || list.Devices[0].Site == nil || list.Devices[0].Site.ID != siteID {
		t.Fatalf("device list --site-id --limit 3 --expand connectivity,site: %+v", list)
	}

	// Communication config → the device runs with it.
	var gen struct {
		Config map[string]any `json:"config"`
		Blob   string         `json:"blob"`
	}
	c.runJSON(&gen, "device", "communication-config", "generate", "-d", id, "--protocol", "MQTT")
	if gen.Config["mqtt_protocol"] != "MQTT" {
		t.Fatalf("communication-config: %+v", gen.Config)
	}
	cfg, err := commconfig.Parse(gen.Blob)
	if err != nil {
		t.Fatalf("the CLI's config does not parse: %v", err)
	}
	dev := runInverter(t, cfg)

	var got struct {
		Device struct {
			ID             string `json:"id"`
			AuthorizedRole string `json:"authorized_role"`
			Connectivity   struct {
				Status string `json:"status"`
			} `json:"connectivity"`
			Communication struct {
				Type string `json:"type"`
			} `json:"communication"`
			Properties map[string]any `json:"properties"`
		} `json:"device"`
	}
	c.runJSON(&got, "device", "get", "-d", id, "--expand", "connectivity,manifest,properties,communication")
	if got.Device.ID != id || got.Device.AuthorizedRole != "OWNER" || got.Device.Communication.Type != "MQTT_V1_PLAINTEXT" {
		t.Fatalf("device get --expand: %+v", got.Device)
	}

	// Commands.
	var executed struct {
		Execution struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"execution"`
	}
	c.runJSON(&executed, "device", "command", "execute", "-d", id, "--name", "set_power", "--arguments", `{"power": 1500}`)
	if executed.Execution.State != "SUCCESS" {
		t.Fatalf("command execute: %+v", executed)
	}
	var executions struct {
		Executions []struct {
			ID string `json:"id"`
		} `json:"executions"`
	}
	c.runJSON(&executions, "device", "command", "list", "-d", id)
	if len(executions.Executions) == 0 || executions.Executions[0].ID != executed.Execution.ID {
		t.Fatalf("command list: %+v", executions)
	}
	var one struct {
		Execution struct {
			ID  string            `json:"id"`
			Log []json.RawMessage `json:"log"`
		} `json:"execution"`
	}
	c.runJSON(&one, "device", "command", "get", "-d", id, "--execution-id", executed.Execution.ID, "--expand", "log")
	if one.Execution.ID != executed.Execution.ID || len(one.Execution.Log) == 0 {
		t.Fatalf("command get --expand log: %+v", one)
	}

	// Telemetry, stored and followed.
	waitLatestPower(t, h, id, 1500)
	var tel struct {
		Telemetry map[string]struct {
			Value any `json:"value"`
		} `json:"telemetry"`
	}
	c.runJSON(&tel, "device", "telemetry", "-d", id)
	if tel.Telemetry["power"].Value != 1500.0 {
		t.Fatalf("device telemetry: %+v", tel)
	}
	line := c.follow(func() {}, func(l string) bool { return strings.Contains(l, `"power"`) }, "device", "telemetry", "-d", id, "--follow")
	if !strings.Contains(line, id) {
		t.Errorf("device telemetry --follow: %s", line)
	}

	// Logs, followed and stored.
	n := 0
	line = c.follow(func() {
		n++
		sctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := dev.SendLog(sctx, mqttapi.Log{Timestamp: time.Now().Unix(), Severity: mqttapi.SeverityWarning,
			Message: fmt.Sprintf("cli log %d", n), Persist: true}); err != nil {
			t.Errorf("send log: %v", err)
		}
	}, func(l string) bool { return strings.Contains(l, "[warning] cli log") }, "device", "logs", "-d", id, "--follow", "--severity", "warning")
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT.* \[warning\] cli log \d+$`).MatchString(line) {
		t.Errorf("device logs --follow: %q", line)
	}
	// The hub writes logs in batches.
	testutil.EventuallyWithin(t, waitLimit, "device logs to show cli log 1", func() bool {
		out := c.run("device", "logs", "-d", id, "--severity", "warning", "--order", "RECEIVED_AT_DESC", "--limit", "5")
		return strings.Contains(out, "[warning] cli log 1")
	})

	// Blueprints: upload, get, download, and change-blueprint by path and by id.
	bp := writeBlueprint(t, c.dir)
	var up struct {
		Blueprint struct {
			ID        string `json:"id"`
			CreatedAt string `json:"created_at"`
		} `json:"blueprint"`
	}
	c.runJSON(&up, "blueprint", "upload", "-p", bp)
	if !uuidRE.MatchString(up.Blueprint.ID) || up.Blueprint.CreatedAt == "" {
		t.Fatalf("blueprint upload: %+v", up)
	}
	var bget struct {
		Blueprint struct {
			ID string `json:"id"`
		} `json:"blueprint"`
	}
	if c.runJSON(&bget, "blueprint", "get", "-b", up.Blueprint.ID); bget.Blueprint.ID != up.Blueprint.ID {
		t.Fatalf("blueprint get: %+v", bget)
	}
	zipPath := filepath.Join(c.dir, "downloaded.zip")
	c.run("blueprint", "download", "-b", up.Blueprint.ID, "-o", zipPath)
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatalf("blueprint download: %v", err)
	}
	var manifest []byte
	for _, f := range zr.File {
		if f.Name == "manifest.yml" {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			manifest, _ = io.ReadAll(rc)
			rc.Close()
		}
	}
	zr.Close()
	if want, _ := os.ReadFile(filepath.Join(bp, "manifest.yml")); len(want) == 0 || string(manifest) != string(want) {
		t.Fatalf("blueprint download: the zip's manifest.yml (%d bytes) is not the one uploaded", len(manifest))
	}
	// A zip file works as a blueprint path too.
	c.runJSON(&up, "blueprint", "upload", "-p", zipPath)

	var assigned struct {
		Device struct {
			BlueprintID string         `json:"blueprint_id"`
			Manifest    map[string]any `json:"manifest"`
		} `json:"device"`
	}
	c.runJSON(&assigned, "device", "change-blueprint", "-d", id, "--blueprint-path", bp)
	if !uuidRE.MatchString(assigned.Device.BlueprintID) || assigned.Device.Manifest["display_name"] != "SimInverter 10K" {
		t.Fatalf("change-blueprint --blueprint-path: %+v", assigned)
	}
	c.runJSON(&assigned, "device", "change-blueprint", "-d", second, "-b", assigned.Device.BlueprintID)
	// The manifest now guards the device's commands.
	if _, errOut, err := c.try(c.token, "device", "command", "execute", "-d", id, "--name", "set_power", "--arguments", `{"power": "abc"}`); err == nil ||
		!strings.Contains(errOut, "power") {
		t.Errorf("a command the manifest rejects: err %v, stderr %q", err, errOut)
	}

	// Delete.
	c.run("device", "delete", "-d", second)
	if _, errOut, err := c.try(c.token, "device", "get", "-d", second); err == nil || !strings.Contains(errOut, "not found") {
		t.Errorf("get after delete: err %v, stderr %q", err, errOut)
	}

	// A wrong token is refused with the hub's message.
	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"device", "list"}, "401"}, // the paging client names the status only
		{[]string{"device", "get", "-d", id}, "API token"},
		{[]string{"site", "get", "--site-id", siteID}, "API token"},
	} {
		out, errOut, err := c.try("wrong-token", step.args...)
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) || !strings.Contains(out+errOut, step.want) {
			t.Errorf("wrong token, %v: err %v, stdout %q, stderr %q", step.args, err, out, errOut)
		}
	}
}
