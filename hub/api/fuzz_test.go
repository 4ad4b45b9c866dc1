package api

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzCheckBlueprintZip feeds the blueprint zip reader arbitrary bodies: it
// must never panic, and it returns either a JSON manifest or problems.
func FuzzCheckBlueprintZip(f *testing.F) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("manifest.yml")
	_, _ = w.Write([]byte("blueprint_spec: device/3.0\ndisplay_name: T\nruntime:\n  type: embedded\n"))
	_ = zw.Close()
	f.Add(buf.Bytes())
	f.Add([]byte("PK\x03\x04"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, problems, _ := checkBlueprintZip(data)
		switch {
		case len(problems) > 0 && m != nil:
			t.Fatalf("both a manifest and problems: %v", problems)
		case len(problems) == 0 && !json.Valid(m):
			t.Fatalf("accepted, but the manifest is not JSON: %q", m)
		}
		for _, p := range problems {
			if strings.TrimSpace(p) == "" {
				t.Fatal("an empty problem")
			}
		}
	})
}
