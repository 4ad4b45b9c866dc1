package privatefile_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/edk-go/edk/internal/privatefile"
)

func TestCreate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "db")
	if err := privatefile.Create(path); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	// An existing file is left as it is, contents and mode.
	other := filepath.Join(dir, "old")
	if err := os.WriteFile(other, []byte("data"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(other, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := privatefile.Create(other); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(other); string(b) != "data" {
		t.Fatalf("existing file changed: %q", b)
	}
	if fi, _ := os.Stat(other); fi.Mode().Perm() != 0o640 {
		t.Fatalf("existing file's mode changed to %v", fi.Mode().Perm())
	}
	if err := privatefile.Create(filepath.Join(dir, "missing", "db")); err == nil {
		t.Fatal("create in a missing folder: no error")
	}
}
