package api

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/hub/store"
)

// timeFormat is RFC 3339 with milliseconds, the store's precision.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

func formatTime(t time.Time) string { return t.UTC().Format(timeFormat) }

// ChannelID is the channel of every device the API provisions.
const ChannelID = "primary"

// deviceJSON is a device as Enapter's v3 API shows it.
type deviceJSON struct {
	ID             string            `json:"id"`
	BlueprintID    string            `json:"blueprint_id"`
	Name           string            `json:"name"`
	SiteID         string            `json:"site_id"`
	Slug           string            `json:"slug"`
	Type           string            `json:"type"`
	AuthorizedRole string            `json:"authorized_role"`
	UpdatedAt      string            `json:"updated_at"`
	Properties     any               `json:"properties,omitempty"` // an object when expanded, even empty
	Connectivity   *connectivityJSON `json:"connectivity,omitempty"`
	Manifest       json.RawMessage   `json:"manifest,omitempty"`
	// Communication (?expand=communication) is how the device talks to
	// the hub, as Enapter's DeviceCommunication.
	Communication *communicationJSON `json:"communication,omitempty"`
	// Site (?expand=site, which enapter3 device list/get offer) is the
	// device's site, as GET /v3/sites/{site_id} shows it.
	Site *siteJSON `json:"site,omitempty"`
	// RaisedAlertNames (?expand=raised_alert_names) are the alerts of the
	// device's latest telemetry message that carried any.
	RaisedAlertNames *[]string `json:"raised_alert_names,omitempty"`
	// Malformed (an edk extension, ?expand=malformed) counts the device's
	// messages that could not be decoded, by kind, and its telemetry values
	// that broke its assigned manifest, as kind "manifest/<attribute>/<problem>".
	Malformed map[string]store.Malformed `json:"malformed,omitempty"`
}

// connectivityJSON is {"status": ONLINE|OFFLINE|UNKNOWN}: Enapter's Python
// SDK reads the status from an object.
type connectivityJSON struct {
	Status string `json:"status"`
	// LastSeenAt (an edk addition) is when the hub last knew the device
	// was there; absent when never seen.
	LastSeenAt string `json:"last_seen_at,omitempty"`
}

// communicationJSON is Enapter's DeviceCommunication for a standalone
// device: MQTT with a password (MQTT_V1_PLAINTEXT) or a client certificate
// (MQTT_V1_TLS), straight to the hub (no upstream).
type communicationJSON struct {
	Type       string  `json:"type"`
	UpstreamID *string `json:"upstream_id"`
	HardwareID string  `json:"hardware_id"`
	ChannelID  string  `json:"channel_id"`
}

// expandSet parses ?expand=a,b. Unknown names are ignored, as Enapter's
// clients may ask for expansions the hub does not have.
func expandSet(r *http.Request) map[string]bool {
	set := map[string]bool{}
	for _, v := range r.URL.Query()["expand"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				set[f] = true
			}
		}
	}
	return set
}

// deviceView renders d with the expansions asked for.
func (s *server) deviceView(r *http.Request, d store.Device, expand map[string]bool) (deviceJSON, error) {
	v := deviceJSON{
		ID: d.ID, BlueprintID: d.BlueprintID, Name: d.Name, Slug: d.Slug,
		Type: "STANDALONE", AuthorizedRole: AuthorizedRole, UpdatedAt: formatTime(d.UpdatedAt),
	}
	site, err := s.siteOf(r)
	if err != nil {
		return v, err
	}
	v.SiteID = site.ID
	if expand["site"] {
		sv := siteView(site)
		v.Site = &sv
	}
	ctx := r.Context()
	if expand["communication"] {
		c := &communicationJSON{Type: "MQTT_V1_PLAINTEXT", HardwareID: d.HardwareID, ChannelID: d.ChannelID}
		if d.CertFingerprint != "" {
			c.Type = "MQTT_V1_TLS"
		}
		v.Communication = c
	}
	if expand["raised_alert_names"] {
		names, err := s.raisedAlerts(r, d.ID)
		if err != nil {
			return v, err
		}
		v.RaisedAlertNames = &names
	}
	if expand["properties"] {
		p, err := s.cfg.Store.GetProperties(ctx, d.ID)
		if err != nil {
			return v, err
		}
		props := p.Values
		if props == nil {
			props = map[string]json.RawMessage{}
		}
		v.Properties = props
	}
	if expand["connectivity"] {
		c, err := s.cfg.Store.GetConnectivity(ctx, d.ID)
		if err != nil {
			return v, err
		}
		st := "UNKNOWN"
		if c.Known && c.Online {
			st = "ONLINE"
		} else if c.Known {
			st = "OFFLINE"
		}
		v.Connectivity = &connectivityJSON{Status: st}
		if c.Known && !c.LastSeen.IsZero() {
			v.Connectivity.LastSeenAt = formatTime(c.LastSeen)
		}
	}
	if expand["malformed"] {
		m, err := s.cfg.Store.MalformedCounts(r.Context(), d.ID)
		if err != nil {
			return v, err
		}
		if m == nil {
			m = map[string]store.Malformed{}
		}
		v.Malformed = m
	}
	if expand["manifest"] {
		v.Manifest = d.Manifest
		if len(v.Manifest) == 0 {
			v.Manifest = json.RawMessage("null")
		}
	}
	return v, nil
}

func (s *server) createStandalone(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name string `json:"name"`
		Slug string `json:"slug"`
		// SiteID may be empty or null (the hub's site) or the hub's site.
		SiteID *string `json:"site_id"`
	}
	if !decode(w, r, &body) {
		return
	}
	if body.SiteID != nil {
		if _, ok := s.checkSite(w, r, *body.SiteID, true); !ok {
			return
		}
	}
	body.Name = strings.TrimSpace(body.Name)
	if body.Name == "" {
		invalid(w, "name", "is required")
		return
	}
	if len(body.Name) > 255 {
		invalid(w, "name", "is longer than 255 bytes")
		return
	}
	if body.Slug == "" {
		body.Slug = slugify(body.Name)
	} else if msg := checkSlug(body.Slug); msg != "" {
		invalid(w, "slug", msg)
		return
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	d, err := s.cfg.Store.CreateDevice(r.Context(), store.NewDevice{
		Name:       body.Name,
		Slug:       body.Slug,
		HardwareID: "EDK" + strings.ToUpper(hex.EncodeToString(b[:])),
		ChannelID:  ChannelID,
	})
	if err != nil {
		s.fail(w, r, "slug", err, map[string]any{"slug": body.Slug})
		return
	}
	// 200, as Enapter answers: its CLI takes any other status for an error.
	writeJSON(w, http.StatusOK, map[string]string{"device_id": d.ID})
}

// checkSlug returns what is wrong with a slug, "" when nothing.
func checkSlug(slug string) string {
	if len(slug) > 64 {
		return "is longer than 64 characters"
	}
	for _, c := range slug {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "may hold only letters, digits, '-' and '_'"
		}
	}
	if slug == "" {
		return "is empty"
	}
	return ""
}

// slugify makes a slug from a name, with a random suffix so that two
// devices of the same name do not clash.
func slugify(name string) string {
	var sb strings.Builder
	dash := false
	for _, c := range strings.ToLower(name) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			sb.WriteRune(c)
			dash = false
		} else if !dash && sb.Len() > 0 {
			sb.WriteByte('-')
			dash = true
		}
		if sb.Len() >= 48 {
			break
		}
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	base := strings.TrimRight(sb.String(), "-")
	if base == "" {
		base = "device"
	}
	return base + "-" + hex.EncodeToString(b[:])
}

// pagination parses ?offset= and ?limit=.
func pagination(w http.ResponseWriter, r *http.Request) (offset, limit int, ok bool) {
	q := r.URL.Query()
	offset, limit = 0, DefaultLimit
	for _, p := range []struct {
		name string
		dst  *int
		max  int
	}{{"offset", &offset, int(^uint32(0) >> 1)}, {"limit", &limit, MaxLimit}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			badRequest(w, p.name+" must be an integer", map[string]any{"field": p.name})
			return 0, 0, false
		}
		if n < 0 || n > p.max || (p.name == "limit" && n == 0) {
			invalid(w, p.name, "is out of range (limit 1.."+strconv.Itoa(MaxLimit)+", offset >= 0)")
			return 0, 0, false
		}
		*p.dst = n
	}
	return offset, limit, true
}

// listDevices answers GET /v3/devices and GET /v3/sites/{site_id}/devices
// (every device is on the hub's site) with a page and the total_count
// Enapter's CLI pages by.
func (s *server) listDevices(w http.ResponseWriter, r *http.Request) {
	offset, limit, ok := pagination(w, r)
	if !ok {
		return
	}
	if id := r.PathValue("site_id"); id != "" {
		if _, ok := s.checkSite(w, r, id, false); !ok {
			return
		}
	}
	total, err := s.cfg.Store.CountDevices(r.Context())
	if err != nil {
		s.fail(w, r, "devices", err, nil)
		return
	}
	ds, err := s.cfg.Store.ListDevices(r.Context(), offset, limit)
	if err != nil {
		s.fail(w, r, "devices", err, nil)
		return
	}
	expand := expandSet(r)
	out := make([]deviceJSON, 0, len(ds))
	for _, d := range ds {
		v, err := s.deviceView(r, d, expand)
		if err != nil {
			s.fail(w, r, "device", err, map[string]any{"device_id": d.ID})
			return
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": out, "total_count": total})
}

func (s *server) getDevice(w http.ResponseWriter, r *http.Request) {
	d, ok := s.device(w, r)
	if !ok {
		return
	}
	id := d.ID
	v, err := s.deviceView(r, d, expandSet(r))
	if err != nil {
		s.fail(w, r, "device", err, map[string]any{"device_id": id})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"device": v})
}

func (s *server) updateDevice(w http.ResponseWriter, r *http.Request) {
	dev, ok := s.device(w, r)
	if !ok {
		return
	}
	id := dev.ID
	var body struct {
		Name *string `json:"name"`
		Slug *string `json:"slug"`
	}
	if !decode(w, r, &body) {
		return
	}
	if body.Name != nil {
		n := strings.TrimSpace(*body.Name)
		if n == "" || len(n) > 255 {
			invalid(w, "name", "must be 1 to 255 bytes")
			return
		}
		body.Name = &n
	}
	if body.Slug != nil {
		if msg := checkSlug(*body.Slug); msg != "" {
			invalid(w, "slug", msg)
			return
		}
	}
	d, err := s.cfg.Store.UpdateDevice(r.Context(), id, store.DeviceUpdate{Name: body.Name, Slug: body.Slug})
	if err != nil {
		details := map[string]any{"device_id": id}
		what := "device"
		if body.Slug != nil {
			details["slug"] = *body.Slug
			if errors.Is(err, store.ErrConflict) {
				what = "slug"
			}
		}
		s.fail(w, r, what, err, details)
		return
	}
	v, err := s.deviceView(r, d, nil)
	if err != nil {
		s.fail(w, r, "device", err, map[string]any{"device_id": id})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"device": v})
}

// deleteDevice answers 200 with an empty JSON object, as Enapter does.
func (s *server) deleteDevice(w http.ResponseWriter, r *http.Request) {
	d, ok := s.device(w, r)
	if !ok {
		return
	}
	if err := s.cfg.Store.DeleteDevice(r.Context(), d.ID); err != nil {
		s.fail(w, r, "device", err, map[string]any{"device_id": d.ID})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}

func (s *server) generateConfig(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("device_id")
	var body struct {
		Protocol string `json:"protocol"`
	}
	if !decode(w, r, &body) {
		return
	}
	proto := commconfig.Protocol(strings.ToUpper(body.Protocol))
	if proto != commconfig.ProtocolMQTT && proto != commconfig.ProtocolMQTTS {
		invalid(w, "protocol", `must be "MQTT" or "MQTTS"`)
		return
	}
	if s.cfg.Provisioner == nil {
		notAvailable(w, "generate_config")
		return
	}
	details := map[string]any{"device_id": id}
	dev, ok := s.device(w, r)
	if !ok {
		return
	}
	id = dev.ID
	cfg, err := s.cfg.Provisioner.GenerateConfig(r.Context(), id, proto)
	if err != nil {
		s.fail(w, r, "device", err, details)
		return
	}
	blob, err := cfg.Encode()
	if err != nil {
		s.fail(w, r, "config", err, nil) // the provisioner's mistake: a 500
		return
	}
	raw, err := base64.StdEncoding.DecodeString(blob)
	if err != nil {
		s.fail(w, r, "config", err, nil)
		return
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		s.fail(w, r, "config", err, nil)
		return
	}
	// Enapter's Python SDK requires the time_sync_* keys in the "config"
	// object. The hub serves no time sync (edk leaves the clock to the
	// operating system); these name the API's own address so that the
	// values are at least reachable.
	host, port := requestHostPort(r)
	doc["time_sync_protocol"] = "HTTP"
	doc["time_sync_host"] = host
	doc["time_sync_port"] = port
	writeJSON(w, http.StatusOK, map[string]any{"config": doc, "blob": blob})
}

// requestHostPort splits the request's Host into host and port.
func requestHostPort(r *http.Request) (string, int) {
	host, p, err := net.SplitHostPort(r.Host)
	if err != nil {
		host, p = r.Host, "80"
		if r.TLS != nil {
			p = "443"
		}
	}
	port, _ := strconv.Atoi(p)
	return host, port
}

func notAvailable(w http.ResponseWriter, what string) {
	writeError(w, http.StatusNotImplemented, "not_available", what+" is not available on this hub", nil)
}
