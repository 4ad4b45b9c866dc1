package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenRefusesCorruptFile damages one page of a hub.db that holds
// devices, as a failing disk or a copy taken mid-write would: Open refuses
// it with ErrCorrupt and says what to do, instead of starting and then
// refusing every device.
func TestOpenRefusesCorruptFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "hub.db")
	s, err := Open(ctx, path, Options{PasswordIterations: testIterations})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if _, err := s.CreateDevice(ctx, NewDevice{Name: fmt.Sprintf("device %d %s", i, strings.Repeat("n", 200)),
			Slug: fmt.Sprintf("d%d", i), HardwareID: fmt.Sprintf("HW%d", i), ChannelID: "ch"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A healthy file opens.
	s, err = Open(ctx, path, Options{PasswordIterations: testIterations})
	if err != nil {
		t.Fatalf("healthy file: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	const page = 4096
	// Scribble over the middle of a page in the second half of the file,
	// where the devices' rows are: its header and cell pointers.
	at := (st.Size()/page/2 + 1) * page
	if _, err := f.WriteAt([]byte(strings.Repeat("\xa5", 64)), at); err != nil {
		t.Fatal(err)
	}
	f.Close()

	_, err = Open(ctx, path, Options{PasswordIterations: testIterations})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of a damaged file: %v, want ErrCorrupt", err)
	}
	if testing.Verbose() {
		t.Log(err)
	}
	for _, want := range []string{"quick_check", "restore them from a backup", path} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}
