package api

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"

	"github.com/edk-go/edk/blueprint"
)

// MaxBlueprintBytes bounds an uploaded blueprint zip. Real blueprints (a
// manifest, Lua code, an icon) are tens of KB.
const MaxBlueprintBytes = 16 << 20

// maxBlueprintEntries bounds the files of a blueprint zip.
const maxBlueprintEntries = 1000

// blueprintJSON is a blueprint as Enapter's v3 API shows it.
type blueprintJSON struct {
	ID        string `json:"id"`
	CreatedAt string `json:"created_at"`
}

// readBlueprintBody reads a blueprint zip body, answering 413 above
// MaxBlueprintBytes.
func readBlueprintBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBlueprintBytes))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, "body_too_large",
			fmt.Sprintf("the blueprint zip is larger than %d bytes", mbe.Limit), map[string]any{"limit": mbe.Limit})
		return nil, false
	case err != nil:
		badRequest(w, "could not read the request body", nil)
		return nil, false
	}
	return data, true
}

// checkBlueprintZip reads a blueprint zip: it finds manifest.yml (at the
// root, or in the one folder that holds everything, as a zipped folder has
// it), checks it with package blueprint and returns it as JSON. problems
// lists everything wrong, each as one sentence; the manifest is nil unless
// there are none. warnings (fields outside Enapter's schema) do not count.
func checkBlueprintZip(data []byte) (manifest json.RawMessage, problems, warnings []string) {
	if len(data) == 0 {
		return nil, []string{"the request body is empty: send the blueprint as a zip archive"}, nil
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, []string{"the blueprint is not a zip archive: " + err.Error()}, nil
	}
	if len(zr.File) > maxBlueprintEntries {
		return nil, []string{fmt.Sprintf("the zip holds %d files, more than the %d a blueprint may have", len(zr.File), maxBlueprintEntries)}, nil
	}
	var (
		root, nested *zip.File
		tops         = map[string]bool{}
	)
	for _, f := range zr.File {
		name := f.Name
		clean := path.Clean(name)
		if strings.Contains(name, `\`) || path.IsAbs(name) || clean == ".." || strings.HasPrefix(clean, "../") {
			problems = append(problems, fmt.Sprintf("zip entry %q is not a plain relative path", name))
			continue
		}
		top, rest, nestedName := strings.Cut(name, "/")
		if top != "__MACOSX" { // the resource forks macOS's Archive Utility adds
			tops[top] = true
		}
		switch {
		case name == blueprint.ManifestFile:
			root = f
		case nestedName && rest == blueprint.ManifestFile:
			nested = f
		}
	}
	if len(problems) > 0 {
		return nil, problems, nil
	}
	mf := root
	if mf == nil && nested != nil && len(tops) == 1 {
		mf = nested
	}
	if mf == nil {
		return nil, []string{"the zip has no " + blueprint.ManifestFile + " at its root"}, nil
	}
	if mf.UncompressedSize64 > blueprint.MaxManifestSize {
		return nil, []string{fmt.Sprintf("%s is %d bytes, more than the %d a manifest may have",
			mf.Name, mf.UncompressedSize64, blueprint.MaxManifestSize)}, nil
	}
	rc, err := mf.Open()
	if err != nil {
		return nil, []string{fmt.Sprintf("cannot read %s from the zip: %v", mf.Name, err)}, nil
	}
	yml, err := io.ReadAll(io.LimitReader(rc, blueprint.MaxManifestSize+1))
	_ = rc.Close()
	if err != nil {
		return nil, []string{fmt.Sprintf("cannot read %s from the zip: %v", mf.Name, err)}, nil
	}
	if len(yml) > blueprint.MaxManifestSize {
		return nil, []string{fmt.Sprintf("%s is more than the %d bytes a manifest may have", mf.Name, blueprint.MaxManifestSize)}, nil
	}
	return checkManifest(mf.Name, yml)
}

// checkManifest checks a manifest.yml and returns it as JSON (JSON is YAML
// too, so the stored form parses again for the command and telemetry
// checks), or every problem it has. warnings are what Enapter's platform
// takes but is likely a mistake (fields outside its schema): they do not
// refuse the manifest.
func checkManifest(file string, yml []byte) (manifest json.RawMessage, problems, warnings []string) {
	m, err := blueprint.Parse(file, yml)
	if err != nil {
		var me *blueprint.ManifestError
		if errors.As(err, &me) && len(me.Problems) > 0 {
			return nil, problemStrings(me.Problems), nil
		}
		return nil, []string{err.Error()}, nil
	}
	warnings = problemStrings(m.Warnings)
	// Stored as JSON, as Enapter returns manifests, in the manifest's own
	// key order (the console lists commands and arguments that way).
	asJSON, err := manifestJSON(yml)
	if err != nil {
		return nil, []string{file + " cannot be stored as JSON: " + err.Error()}, nil
	}
	return asJSON, nil, warnings
}

func problemStrings(ps []blueprint.Problem) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// uploadBlueprint answers POST /v3/blueprints/upload: the body is the
// blueprint zip; a blueprint whose manifest passes the checks is stored
// and answered with {"blueprint": {"id", "created_at"}}. One with problems
// is refused with 422, every problem in details.validation_errors.
func (s *server) uploadBlueprint(w http.ResponseWriter, r *http.Request) {
	data, ok := readBlueprintBody(w, r)
	if !ok {
		return
	}
	manifest, problems, warnings := checkBlueprintZip(data)
	if len(problems) > 0 {
		msg := "invalid blueprint: " + problems[0]
		if len(problems) > 1 {
			msg += fmt.Sprintf(" (and %d more problems)", len(problems)-1)
		}
		writeError(w, http.StatusUnprocessableEntity, "invalid_blueprint", msg,
			map[string]any{"validation_errors": problems})
		return
	}
	b, err := s.cfg.Store.CreateBlueprint(r.Context(), data, manifest)
	if err != nil {
		s.fail(w, r, "blueprint", err, nil)
		return
	}
	out := map[string]any{"blueprint": blueprintJSON{ID: b.ID, CreatedAt: formatTime(b.CreatedAt)}}
	if len(warnings) > 0 {
		out["validation_warnings"] = warnings // an edk addition
	}
	writeJSON(w, http.StatusOK, out)
}

// validateBlueprint answers POST /v3/blueprints/validate: the body is a
// blueprint zip, the answer {"validation_errors": [...]}, empty when the
// blueprint would be accepted. Nothing is stored.
func (s *server) validateBlueprint(w http.ResponseWriter, r *http.Request) {
	data, ok := readBlueprintBody(w, r)
	if !ok {
		return
	}
	_, problems, warnings := checkBlueprintZip(data)
	if problems == nil {
		problems = []string{}
	}
	if warnings == nil {
		warnings = []string{}
	}
	// validation_warnings is an edk addition: fields outside Enapter's
	// schema, which do not refuse the blueprint.
	writeJSON(w, http.StatusOK, map[string]any{"validation_errors": problems, "validation_warnings": warnings})
}

// getBlueprint answers GET /v3/blueprints/{id}.
func (s *server) getBlueprint(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("blueprint_id")
	b, err := s.cfg.Store.GetBlueprint(r.Context(), id)
	if err != nil {
		s.fail(w, r, "blueprint", err, map[string]any{"blueprint_id": id})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"blueprint": blueprintJSON{ID: b.ID, CreatedAt: formatTime(b.CreatedAt)}})
}

// downloadBlueprint answers GET /v3/blueprints/{id}/zip with the zip as it
// was uploaded. Enapter's ?view=ORIGINAL|COMPILED is accepted; the hub
// compiles nothing, so both are the original.
func (s *server) downloadBlueprint(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("blueprint_id")
	switch v := r.URL.Query().Get("view"); v {
	case "", "ORIGINAL", "COMPILED":
	default:
		invalid(w, "view", "must be ORIGINAL or COMPILED")
		return
	}
	b, err := s.cfg.Store.GetBlueprint(r.Context(), id)
	if err != nil {
		s.fail(w, r, "blueprint", err, map[string]any{"blueprint_id": id})
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/zip")
	h.Set("Content-Disposition", `attachment; filename="`+b.ID+`.zip"`)
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b.Zip)
}
