package mqttapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/edk-go/edk/mqttapi"
)

// maxErrorLen bounds every decode error message, whatever the payload.
const maxErrorLen = 300

func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// samples returns the testdata files matching pattern, by name.
func samples(tb testing.TB, pattern string) map[string][]byte {
	tb.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil {
		tb.Fatal(err)
	}
	if len(names) == 0 {
		tb.Fatalf("no testdata matches %q", pattern)
	}
	sort.Strings(names)
	out := make(map[string][]byte, len(names))
	for _, name := range names {
		out[filepath.Base(name)] = readTestdata(tb, filepath.Base(name))
	}
	return out
}

// asDecodeError checks that err is a *DecodeError about message msg whose
// text stays short, and returns it.
func asDecodeError(tb testing.TB, err error, msg string) *mqttapi.DecodeError {
	tb.Helper()
	var derr *mqttapi.DecodeError
	if !errors.As(err, &derr) {
		tb.Fatalf("error %v (%T) is not a *DecodeError", err, err)
	}
	if derr.Message != msg {
		tb.Errorf("DecodeError.Message = %q, want %q", derr.Message, msg)
	}
	if derr.Problem == "" {
		tb.Errorf("DecodeError %+v has no Problem", derr)
	}
	if n := len(err.Error()); n > maxErrorLen {
		tb.Errorf("error message is %d bytes, want at most %d: %.400s…", n, maxErrorLen, err.Error())
	}
	return derr
}

// canonicalJSON rewrites a JSON text the way json.Marshal writes an embedded
// json.RawMessage (compact, HTML-escaped), so that raw arguments and payloads
// can be compared byte for byte after a trip through either encoder.
func canonicalJSON(tb testing.TB, raw []byte) string {
	tb.Helper()
	if len(raw) == 0 {
		return ""
	}
	var compact, escaped bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		tb.Fatalf("compact %q: %v", raw, err)
	}
	json.HTMLEscape(&escaped, compact.Bytes())
	return escaped.String()
}

// jsonObject decodes an encoded message into its raw fields.
func jsonObject(tb testing.TB, b []byte) map[string]json.RawMessage {
	tb.Helper()
	var o map[string]json.RawMessage
	if err := json.Unmarshal(b, &o); err != nil {
		tb.Fatalf("encoded message %q is not a JSON object: %v", b, err)
	}
	return o
}
