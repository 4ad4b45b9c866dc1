package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// SetExecutionDeadline records when an unfinished execution is to time out
// at the latest. ExpireExecutions finishes those whose deadline has passed,
// so an execution that nobody waits for any more (the hub stopped while it
// waited, or it was started without waiting) still ends. Fails with
// ErrNotFound; a finished execution is left alone.
func (s *Store) SetExecutionDeadline(ctx context.Context, executionID string, deadline time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		return execOne(ctx, tx, "UPDATE executions SET deadline_at = ? WHERE id = ?", ms(deadline), executionID)
	})
	if err != nil {
		return fmt.Errorf("store: set deadline of execution %s: %w", executionID, err)
	}
	return nil
}

// ExpireExecutions moves every unfinished execution whose deadline is
// before now to TIMEOUT and returns how many it moved. An execution without
// a deadline (made before deadlines were kept, or by a caller that sets
// none) has created_at + fallback as its deadline.
func (s *Store) ExpireExecutions(ctx context.Context, now time.Time, fallback time.Duration) (int, error) {
	return s.finishUnfinished(ctx, ExecutionTimeout,
		"coalesce(deadline_at, created_at + ?) < ?", fallback.Milliseconds(), ms(now))
}

// FailUnfinishedExecutions moves every unfinished execution to ERROR and
// returns how many it moved. A hub that is the only one using its store
// calls it when it starts: nobody waits for those executions any more, and
// an answer from the device would find no one to tell.
func (s *Store) FailUnfinishedExecutions(ctx context.Context) (int, error) {
	return s.finishUnfinished(ctx, ExecutionError, "1")
}

func (s *Store) finishUnfinished(ctx context.Context, st ExecutionState, cond string, args ...any) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE executions SET state = ?, updated_at = ? WHERE state IN (?, ?) AND "+cond,
			append([]any{st, ms(s.now()), ExecutionNew, ExecutionInProgress}, args...)...)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: finish unfinished executions as %s: %w", st, err)
	}
	return int(n), nil
}
