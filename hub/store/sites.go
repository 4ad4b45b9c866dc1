package store

import (
	"context"
	"fmt"
	"time"
)

// Site is the hub's one site. Enapter groups devices in sites and its
// clients expect every device to belong to one; a hub is one place, so it
// has exactly one, made by the schema with a random id.
type Site struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Timezone  string    `json:"timezone"`
	CreatedAt time.Time `json:"created_at"`
}

// Site returns the hub's site.
func (s *Store) Site(ctx context.Context) (Site, error) {
	var (
		st      Site
		created int64
	)
	err := s.r.QueryRowContext(ctx, "SELECT id, name, timezone, created_at FROM sites ORDER BY created_at, id LIMIT 1").
		Scan(&st.ID, &st.Name, &st.Timezone, &created)
	if err != nil {
		return Site{}, fmt.Errorf("store: read the site: %w", err)
	}
	st.CreatedAt = fromMS(created)
	return st, nil
}
