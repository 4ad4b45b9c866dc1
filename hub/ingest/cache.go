// The hardware id → device cache.

package ingest

import (
	"context"
	"errors"
	"time"

	"github.com/edk-go/edk/blueprint"
	"github.com/edk-go/edk/hub/store"
)

type cacheEntry struct {
	deviceID, channelID string
	manifest            *blueprint.Manifest // nil without an assigned blueprint
	expires             time.Time
}

// Forget drops the cached device of a hardware id, e.g. after the device was
// deleted or its hardware id changed.
func (p *Pipeline) Forget(hardwareID string) {
	p.cacheMu.Lock()
	delete(p.cache, hardwareID)
	p.cacheMu.Unlock()
}

// device resolves a hardware id, through the cache; ok is false for a
// hardware id no device has, and err is set when the store could not say.
func (p *Pipeline) device(ctx context.Context, hardwareID string) (_ cacheEntry, ok bool, err error) {
	now := p.cfg.Now()
	p.cacheMu.Lock()
	e, ok := p.cache[hardwareID]
	p.cacheMu.Unlock()
	if ok && now.Before(e.expires) {
		return e, e.deviceID != "", nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.WriteTimeout)
	defer cancel()
	d, err := p.cfg.Store.GetDeviceByHardwareID(ctx, hardwareID)
	switch {
	case err == nil:
		e = cacheEntry{deviceID: d.ID, channelID: d.ChannelID, expires: now.Add(p.cfg.CacheTTL)}
		if len(d.Manifest) > 0 && string(d.Manifest) != "null" {
			// Stored as JSON, which is YAML too; assign_blueprint checked it.
			e.manifest, _ = blueprint.Parse("manifest.json", d.Manifest)
		}
	case errors.Is(err, store.ErrNotFound):
		e = cacheEntry{expires: now.Add(p.cfg.CacheTTL / 10)}
	default:
		p.stat.storeErrors.Add(1)
		p.cfg.Logger.Error("ingest: look up device", "hardware_id", hardwareID, "err", err)
		return cacheEntry{}, false, err // not cached: try again next message
	}
	p.cacheMu.Lock()
	if len(p.cache) > 100_000 { // many unknown ids: start over rather than grow
		clear(p.cache)
	}
	p.cache[hardwareID] = e
	p.cacheMu.Unlock()
	return e, e.deviceID != "", nil
}
