package store

import (
	"context"
	"fmt"
)

// PageCount returns the database's size in pages.
func (s *Store) PageCount(ctx context.Context) (int64, error) {
	var n int64
	if err := s.w.QueryRowContext(ctx, "PRAGMA page_count").Scan(&n); err != nil {
		return 0, fmt.Errorf("store: page count: %w", err)
	}
	return n, nil
}

// SetMaxPageCount caps the database at n pages (SQLite's max_page_count on
// the writer connection): a write that would grow it further fails as on a
// full disk ("database or disk is full"), until the cap is raised again.
// The hub uses no cap; tests use it to fill the disk without filling one.
func (s *Store) SetMaxPageCount(ctx context.Context, n int64) error {
	if _, err := s.w.ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", n)); err != nil {
		return fmt.Errorf("store: set max page count: %w", err)
	}
	return nil
}
