package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/edk-go/edk/blueprint"
	"github.com/edk-go/edk/hub/store"
)

// assignBlueprint attaches a blueprint manifest to a device: the body is the
// manifest.yml itself (or {"manifest": "<yaml>"} with a JSON content type).
// A manifest with problems is refused with every problem listed. From then
// on execute_command refuses what the manifest rejects.
func (s *server) assignBlueprint(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("device_id")
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", "the manifest is larger than 1 MiB", nil)
		return
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var body struct {
			Manifest string `json:"manifest"`
		}
		if err := json.Unmarshal(data, &body); err != nil || body.Manifest == "" {
			invalid(w, "manifest", "send the manifest.yml as the body, or {\"manifest\": \"<yaml>\"} as JSON")
			return
		}
		data = []byte(body.Manifest)
	}
	if _, err := blueprint.Parse("manifest.yml", data); err != nil {
		var me *blueprint.ManifestError
		details := map[string]any{"device_id": id}
		if errors.As(err, &me) {
			problems := make([]string, len(me.Problems))
			for i, p := range me.Problems {
				problems[i] = p.String()
			}
			details["problems"] = problems
		}
		writeError(w, http.StatusUnprocessableEntity, "invalid_manifest", err.Error(), details)
		return
	}
	// Stored as JSON, as Enapter returns manifests, in the manifest's own
	// key order; JSON is YAML too, so the stored form parses again for the
	// checks.
	asJSON, err := manifestJSON(data)
	if err != nil {
		invalid(w, "manifest", "cannot be stored as JSON: "+err.Error())
		return
	}
	d, err := s.cfg.Store.UpdateDevice(r.Context(), id, store.DeviceUpdate{Manifest: asJSON})
	if err != nil {
		s.fail(w, r, "device", err, map[string]any{"device_id": id})
		return
	}
	s.manifests.forget(id)
	if s.cfg.ManifestAssigned != nil {
		s.cfg.ManifestAssigned(d)
	}
	v, err := s.deviceView(r, d, map[string]bool{"manifest": true})
	if err != nil {
		s.fail(w, r, "device", err, map[string]any{"device_id": id})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"device": v})
}

// manifestCache keeps each device's parsed manifest, keyed by the stored
// JSON so that an update is seen at once.
type manifestCache struct {
	mu sync.Mutex
	m  map[string]cachedManifest
}

type cachedManifest struct {
	source string
	parsed *blueprint.Manifest
}

func (c *manifestCache) forget(deviceID string) {
	c.mu.Lock()
	delete(c.m, deviceID)
	c.mu.Unlock()
}

// get returns the device's manifest, nil when it has none (or one that no
// longer parses, which assign_blueprint never stores).
func (c *manifestCache) get(d store.Device) *blueprint.Manifest {
	if len(d.Manifest) == 0 || string(d.Manifest) == "null" {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[d.ID]; ok && e.source == string(d.Manifest) {
		return e.parsed
	}
	m, err := blueprint.Parse("manifest.json", d.Manifest)
	if err != nil {
		return nil
	}
	if c.m == nil {
		c.m = make(map[string]cachedManifest)
	}
	c.m[d.ID] = cachedManifest{source: string(d.Manifest), parsed: m}
	return m
}

// checkCommand applies the device's manifest, if any, to a command: it
// returns the arguments to send (defaults filled in) or the rejection.
func (s *server) checkCommand(d store.Device, name string, args json.RawMessage) (json.RawMessage, error) {
	m := s.manifests.get(d)
	if m == nil {
		return args, nil
	}
	values := map[string]any{}
	if len(args) > 0 {
		if err := json.Unmarshal(args, &values); err != nil {
			return nil, err
		}
	}
	checked, err := m.CheckCommand(name, values)
	if err != nil {
		return nil, err
	}
	if len(checked) == len(values) {
		return args, nil
	}
	return json.Marshal(checked)
}
