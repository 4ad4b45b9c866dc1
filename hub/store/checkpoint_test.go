package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edk-go/edk/internal/testutil"
)

// The checkpointer copies committed pages into the database file while the
// store runs, long before the WAL reaches SQLite's own threshold (here the
// writes are a few hundred pages; the fallback would wait for 10 000).
func TestCheckpointerCopiesTheWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	s := openAt(t, path)
	d := mkDevice(t, s, 1)
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before := size()
	var samples []Sample
	for i := range 2000 {
		samples = append(samples, Sample{DeviceID: d.ID, Time: t0.Add(time.Duration(i) * time.Second),
			Values: vals("power", fmt.Sprint(i), "note", fmt.Sprintf(`"%0100d"`, i))})
	}
	if _, err := s.AppendTelemetry(context.Background(), samples); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the database file to grow while the store is open", func() bool { return size() > before+100_000 })
	// Closing stops the checkpointer once (the test's cleanup closes
	// again, which must not panic).
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
