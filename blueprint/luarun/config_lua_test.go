//go:build lua

package luarun

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edk-go/edk/internal/testutil"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

const afterWriteScript = `
local writes = {}
function enapter.main()
  configuration.after_write('connection', function(values)
    local cfg = configuration.read('connection')
    table.insert(writes, cfg.conn_str .. '/' .. tostring(cfg.address) .. '/' .. tostring(values.address))
  end)
  configuration.after_write('tuning', function(values)
    table.insert(writes, 'tuning=' .. tostring(values.gain))
  end)
  enapter.register_command_handler('writes', function()
    return { writes = table.concat(writes, ','), set = configuration.is_all_required_set('connection') }
  end)
end
`

// A v3 script's configuration.after_write handlers run when the
// configuration file changes (polled) or on SIGHUP, for the groups that
// changed, and configuration.read sees the new values; a file that breaks
// the manifest is logged and the old values stay.
func TestConfigFileAfterWrite(t *testing.T) {
	dir := writeBlueprint(t, configManifest, afterWriteScript)
	path := filepath.Join(t.TempDir(), "config.yaml")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	bp, err := LoadBlueprint(dir)
	if err != nil {
		t.Fatal(err)
	}
	initial, err := LoadConfigFile(bp.Manifest, path) // not there yet: unconfigured
	if err != nil {
		t.Fatal(err)
	}
	rt, _ := start(t, dir, Options{Config: initial})
	logs := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		WatchConfigFile(ctx, path, bp.Manifest, initial, 10*time.Millisecond, hup, slog.New(slog.NewTextHandler(logs, nil)), rt.SetConfiguration)
	}()
	t.Cleanup(func() { cancel(); <-done })
	state := func() map[string]any {
		t.Helper()
		res, err := rt.Command(context.Background(), "writes", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res.(map[string]any)
	}
	if s := state(); s["writes"] != "" || s["set"] != false {
		t.Fatalf("before any write: %v", s)
	}

	write("connection:\n  conn_str: tcp://b\n  address: 12\n")
	testutil.Eventually(t, "after_write", func() bool { return state()["writes"] == "tcp://b/12/12" })
	if s := state(); s["set"] != true {
		t.Errorf("is_all_required_set after the write = %v", s["set"])
	}

	// wrong type: logged, nothing runs, the old values stay
	write("connection:\n  conn_str: tcp://b\n  address: xx\n")
	testutil.Eventually(t, "error logged", func() bool { return strings.Contains(logs.String(), "connection.address: must be an integer") })
	if s := state(); s["writes"] != "tcp://b/12/12" {
		t.Errorf("after a bad file: %v", s)
	}
	bad, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}

	// same size and time as the bad file (renamed into place), so only
	// SIGHUP finds it
	next := filepath.Join(filepath.Dir(path), "next.yaml")
	if err := os.WriteFile(next, []byte("connection:\n  conn_str: tcp://c\n  address: 12\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(next, bad.ModTime(), bad.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, path); err != nil {
		t.Fatal(err)
	}
	hup <- syscall.SIGHUP
	testutil.Eventually(t, "after_write on SIGHUP", func() bool { return state()["writes"] == "tcp://b/12/12,tcp://c/12/12" })

	// only the group that changed runs its handler
	write("tuning: {gain: 2.5}\nconnection:\n  conn_str: tcp://c\n  address: 12\n")
	testutil.Eventually(t, "tuning's after_write", func() bool { return state()["writes"] == "tcp://b/12/12,tcp://c/12/12,tuning=2.5" })
}
