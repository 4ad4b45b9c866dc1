package api

import (
	"errors"
	"net/http"
	"sync"

	"github.com/edk-go/edk/hub/store"
)

// AuthorizedRole is the role Enapter's API reports for the caller on each
// site and device. The hub has one token, which may do everything.
const AuthorizedRole = "OWNER"

// siteJSON is a site as Enapter's v3 API shows it.
type siteJSON struct {
	ID             string `json:"id"`
	Name           string `json:"name"`
	Timezone       string `json:"timezone"`
	Version        string `json:"version"`
	AuthorizedRole string `json:"authorized_role"`
	Location       any    `json:"location"`
}

// siteCache keeps the hub's site: the store never changes it.
type siteCache struct {
	mu   sync.Mutex
	site store.Site
}

// siteOf returns the hub's one site.
func (s *server) siteOf(r *http.Request) (store.Site, error) {
	s.site.mu.Lock()
	defer s.site.mu.Unlock()
	if s.site.site.ID != "" {
		return s.site.site, nil
	}
	st, err := s.cfg.Store.Site(r.Context())
	if err != nil {
		return store.Site{}, err
	}
	s.site.site = st
	return st, nil
}

func siteView(st store.Site) siteJSON {
	return siteJSON{ID: st.ID, Name: st.Name, Timezone: st.Timezone, Version: "V3", AuthorizedRole: AuthorizedRole}
}

// checkSite answers 404 unless id is the hub's site (or empty, when empty
// is allowed), and returns the site.
func (s *server) checkSite(w http.ResponseWriter, r *http.Request, id string, emptyOK bool) (store.Site, bool) {
	st, err := s.siteOf(r)
	if err != nil {
		s.fail(w, r, "site", err, nil)
		return store.Site{}, false
	}
	if id == st.ID || (emptyOK && id == "") {
		return st, true
	}
	s.fail(w, r, "site", store.ErrNotFound, map[string]any{"site_id": id})
	return store.Site{}, false
}

// listSites answers GET /v3/sites (and /v3/users/me/sites): the hub's one
// site, paged as Enapter pages lists.
func (s *server) listSites(w http.ResponseWriter, r *http.Request) {
	offset, limit, ok := pagination(w, r)
	if !ok {
		return
	}
	st, err := s.siteOf(r)
	if err != nil {
		s.fail(w, r, "site", err, nil)
		return
	}
	all := []siteJSON{siteView(st)}
	page := all[min(offset, len(all)):]
	page = page[:min(limit, len(page))]
	writeJSON(w, http.StatusOK, map[string]any{"sites": page, "total_count": len(all)})
}

// getSite answers GET /v3/site (the caller's site) and GET /v3/sites/{id}.
func (s *server) getSite(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("site_id")
	st, ok := s.checkSite(w, r, id, id == "")
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"site": siteView(st)})
}

// device finds the device the path's {device_id} names, by id or, as
// Enapter's API allows, by slug. It answers 404 itself.
func (s *server) device(w http.ResponseWriter, r *http.Request) (store.Device, bool) {
	idOrSlug := r.PathValue("device_id")
	d, err := s.lookupDevice(r, idOrSlug)
	if err != nil {
		s.fail(w, r, "device", err, map[string]any{"device_id": idOrSlug})
		return store.Device{}, false
	}
	return d, true
}

// lookupDevice finds a device by id or slug.
func (s *server) lookupDevice(r *http.Request, idOrSlug string) (store.Device, error) {
	d, err := s.cfg.Store.GetDevice(r.Context(), idOrSlug)
	if errors.Is(err, store.ErrNotFound) {
		d, err = s.cfg.Store.GetDeviceBySlug(r.Context(), idOrSlug)
	}
	return d, err
}
