package blueprint

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad: any input loads without panicking, every problem has a
// position and a message, and a clean manifest's runtime checks run.
func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("a: &a {<<: *a}\nb: {<<: [*a, *a]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse("fuzz.yml", data)
		var me *ManifestError
		if err != nil {
			if !errors.As(err, &me) || len(me.Problems) == 0 {
				t.Fatalf("error %v is not a *ManifestError with problems", err)
			}
			for _, p := range me.Problems {
				if p.Line < 1 || p.Column < 1 || p.Message == "" || p.File != "fuzz.yml" {
					t.Fatalf("problem without position or message: %+v", p)
				}
			}
			return
		}
		for _, c := range m.Commands {
			_, _ = m.CheckCommand(c.Name, map[string]any{"x": 1.5})
		}
		_ = m.CheckTelemetry(map[string]any{"a": "b", "status": 1.0}, []string{"x"})
		_ = m.WriteMarkdown(discard{})
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
