package hub

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/edk-go/edk/hub/store"
)

func TestRetentionDeletesOldRawTelemetryAndKeepsLatest(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "hub.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dev, err := st.CreateDevice(ctx, store.NewDevice{Name: "d", Slug: "d", HardwareID: "hw", ChannelID: "primary"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	old, recent := now.Add(-48*time.Hour), now.Add(-time.Minute)
	_, err = st.AppendTelemetry(ctx, []store.Sample{
		{DeviceID: dev.ID, Time: old, Values: map[string]json.RawMessage{"p": json.RawMessage("1")}},
		{DeviceID: dev.ID, Time: recent, Values: map[string]json.RawMessage{"p": json.RawMessage("2")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	samples, _ := pruneOnce(ctx, st, now.Add(-24*time.Hour), slog.New(slog.DiscardHandler))
	if samples != 1 {
		t.Fatalf("deleted %d values, want the one older than a day", samples)
	}
	series, err := st.QueryTelemetry(ctx, dev.ID, []string{"p"}, now.Add(-72*time.Hour), now, 0, store.AggAuto)
	if err != nil || len(series) != 1 || len(series[0].Points) != 1 || string(series[0].Points[0].Value) != "2" {
		t.Fatalf("series after pruning = %+v, %v", series, err)
	}
	latest, err := st.LatestTelemetry(ctx, dev.ID, []string{"p"})
	if err != nil || string(latest["p"].Value) != "2" {
		t.Fatalf("latest = %+v, %v", latest, err)
	}
}
