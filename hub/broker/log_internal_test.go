package broker

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// mochi's lines carry their error under "error"; the hub's log has one key
// for errors, "err", so they arrive under it.
func TestMochiErrorKeyIsErr(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(minLevel(slog.NewTextHandler(&buf, nil), slog.LevelWarn))
	log.Warn("error processing packet", "error", errors.New("write: broken pipe"), "client", "c1")
	out := buf.String()
	if !strings.Contains(out, `err="write: broken pipe" client=c1`) || strings.Contains(out, "error=") {
		t.Errorf("log line: %s", out)
	}
	buf.Reset()
	log.Warn("quiet", "client", "c1")
	if !strings.Contains(buf.String(), "msg=quiet client=c1") {
		t.Errorf("a line without an error changed: %s", buf.String())
	}
}
