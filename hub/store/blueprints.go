package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Blueprint is an uploaded blueprint: the zip as it was sent and its
// manifest as JSON (the API checks the manifest before storing it). Several
// devices may use one blueprint; a device's copy of the manifest is set
// when the blueprint is assigned to it.
type Blueprint struct {
	ID        string          `json:"id"`
	CreatedAt time.Time       `json:"created_at"`
	Zip       []byte          `json:"-"`
	Manifest  json.RawMessage `json:"manifest"`
}

// CreateBlueprint stores a blueprint with a fresh id and returns it. Fails
// with ErrInvalid for an empty zip or a manifest that is not JSON.
func (s *Store) CreateBlueprint(ctx context.Context, zip []byte, manifest json.RawMessage) (Blueprint, error) {
	if len(zip) == 0 {
		return Blueprint{}, fmt.Errorf("store: create blueprint: empty zip: %w", ErrInvalid)
	}
	if len(manifest) == 0 || !json.Valid(manifest) {
		return Blueprint{}, fmt.Errorf("store: create blueprint: manifest is not JSON: %w", ErrInvalid)
	}
	b := Blueprint{ID: newID(), CreatedAt: s.now(), Zip: zip, Manifest: manifest}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO blueprints (id, created_at, zip, manifest) VALUES (?, ?, ?, ?)",
			b.ID, ms(b.CreatedAt), b.Zip, string(b.Manifest))
		return err
	})
	if err != nil {
		return Blueprint{}, fmt.Errorf("store: create blueprint: %w", err)
	}
	return b, nil
}

// GetBlueprint returns a blueprint, zip included. Fails with ErrNotFound.
func (s *Store) GetBlueprint(ctx context.Context, id string) (Blueprint, error) {
	var (
		b        Blueprint
		created  int64
		manifest string
	)
	err := s.r.QueryRowContext(ctx, "SELECT id, created_at, zip, manifest FROM blueprints WHERE id = ?", id).
		Scan(&b.ID, &created, &b.Zip, &manifest)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Blueprint{}, fmt.Errorf("store: get blueprint %s: %w", id, err)
	}
	b.CreatedAt, b.Manifest = fromMS(created), json.RawMessage(manifest)
	return b, nil
}

// AssignBlueprint makes the blueprint the device's: its blueprint_id and
// its manifest, in one transaction, and returns the device. Fails with
// ErrNotFound when either does not exist.
func (s *Store) AssignBlueprint(ctx context.Context, deviceID, blueprintID string) (Device, error) {
	var d Device
	err := s.write(ctx, func(tx *sql.Tx) error {
		var manifest string
		err := tx.QueryRowContext(ctx, "SELECT manifest FROM blueprints WHERE id = ?", blueprintID).Scan(&manifest)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("blueprint %s: %w", blueprintID, ErrNotFound)
		}
		if err != nil {
			return err
		}
		row := tx.QueryRowContext(ctx, `UPDATE devices SET blueprint_id = ?, manifest = ?, updated_at = ?
			WHERE id = ? RETURNING `+deviceColumns, blueprintID, []byte(manifest), ms(s.now()), deviceID)
		d, err = scanDevice(row)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("device %s: %w", deviceID, ErrNotFound)
		}
		return err
	})
	if err != nil {
		return Device{}, fmt.Errorf("store: assign blueprint %s to %s: %w", blueprintID, deviceID, err)
	}
	return d, nil
}
