package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/edk-go/edk/blueprint"
	"github.com/edk-go/edk/hub/store"
)

// assignBlueprint attaches a blueprint to a device. With a JSON content
// type the body is Enapter's {"blueprint_id": "<uploaded blueprint>"} (or
// edk's {"manifest": "<yaml>"}); otherwise it is the manifest.yml itself. A
// manifest with problems is refused with every problem listed. The answer
// is {"device": ...} with the manifest. From then on execute_command
// refuses what the manifest rejects.
func (s *server) assignBlueprint(w http.ResponseWriter, r *http.Request) {
	dev, ok := s.device(w, r)
	if !ok {
		return
	}
	id := dev.ID
	var data []byte
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var body struct {
			BlueprintID *string `json:"blueprint_id"`
			Manifest    *string `json:"manifest"`
		}
		if !decode(w, r, &body) {
			return
		}
		switch {
		case body.BlueprintID != nil && body.Manifest != nil:
			invalid(w, "blueprint_id", `send "blueprint_id" or "manifest", not both`)
			return
		case body.BlueprintID != nil:
			s.assignUploaded(w, r, id, *body.BlueprintID)
			return
		case body.Manifest == nil || *body.Manifest == "":
			invalid(w, "blueprint_id", `is required: send {"blueprint_id": "<id from /v3/blueprints/upload>"}`)
			return
		}
		data = []byte(*body.Manifest)
	} else {
		var err error
		data, err = io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
		if err != nil {
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", "the manifest is larger than 1 MiB", nil)
			return
		}
	}
	asJSON, problems, _ := checkManifest("manifest.yml", data)
	if len(problems) > 0 {
		msg := "invalid manifest: " + problems[0]
		if len(problems) > 1 {
			msg += fmt.Sprintf(" (and %d more problems)", len(problems)-1)
		}
		writeError(w, http.StatusUnprocessableEntity, "invalid_manifest", msg,
			map[string]any{"device_id": id, "problems": problems})
		return
	}
	empty := ""
	d, err := s.cfg.Store.UpdateDevice(r.Context(), id, store.DeviceUpdate{Manifest: asJSON, BlueprintID: &empty})
	if err != nil {
		s.fail(w, r, "device", err, map[string]any{"device_id": id})
		return
	}
	s.assigned(w, r, d)
}

// assignUploaded makes an uploaded blueprint the device's.
func (s *server) assignUploaded(w http.ResponseWriter, r *http.Request, deviceID, blueprintID string) {
	if blueprintID == "" {
		invalid(w, "blueprint_id", "is empty")
		return
	}
	d, err := s.cfg.Store.AssignBlueprint(r.Context(), deviceID, blueprintID)
	if err != nil {
		// The device was found a moment ago: a 404 is the blueprint's.
		s.fail(w, r, "blueprint", err, map[string]any{"device_id": deviceID, "blueprint_id": blueprintID})
		return
	}
	s.assigned(w, r, d)
}

// assigned tells the hub and answers with the device and its manifest.
func (s *server) assigned(w http.ResponseWriter, r *http.Request, d store.Device) {
	s.manifests.forget(d.ID)
	if s.cfg.ManifestAssigned != nil {
		s.cfg.ManifestAssigned(d)
	}
	v, err := s.deviceView(r, d, map[string]bool{"manifest": true})
	if err != nil {
		s.fail(w, r, "device", err, map[string]any{"device_id": d.ID})
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
