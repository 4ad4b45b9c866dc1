package hub

import (
	"context"
	"log/slog"
	"time"

	"github.com/edk-go/edk/hub/store"
)

// Retention defaults: raw telemetry and logs older than DefaultRetention
// are deleted, checked every DefaultRetentionInterval. Latest values,
// properties and executions are kept.
const (
	DefaultRetention         = 30 * 24 * time.Hour
	DefaultRetentionInterval = time.Hour
)

// prune deletes old telemetry and logs now and then every interval, until
// ctx is done.
func prune(ctx context.Context, st *store.Store, keep, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		pruneOnce(ctx, st, time.Now().Add(-keep), log)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pruneOnce deletes telemetry and logs older than cutoff.
func pruneOnce(ctx context.Context, st *store.Store, cutoff time.Time, log *slog.Logger) (samples, logs int64) {
	samples, err := st.DeleteTelemetryBefore(ctx, cutoff)
	if err != nil && ctx.Err() == nil {
		log.Warn("delete old telemetry", "before", cutoff, "err", err)
	}
	logs, err = st.DeleteLogsBefore(ctx, cutoff)
	if err != nil && ctx.Err() == nil {
		log.Warn("delete old logs", "before", cutoff, "err", err)
	}
	if samples+logs > 0 {
		log.Info("retention: deleted old data", "telemetry_values", samples, "log_entries", logs, "before", cutoff)
	}
	return samples, logs
}
