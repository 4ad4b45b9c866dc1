package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/edk-go/edk/hub/store"
)

// Presence reports whether a device has an MQTT session open now, as the
// broker sees it; known is false when it cannot tell (a device that has not
// connected since the hub started, or devices on an external broker).
type Presence func(deviceID string) (online, known bool)

// CodeDeviceOffline is the error code of a command refused because its
// device is offline.
const CodeDeviceOffline = "device_offline"

// refuseOffline answers 422 device_offline, and reports true, when the
// device is known to be offline: a request published to a device without a
// session is lost (devices connect with a clean session), so waiting for
// the timeout would only make the caller wait for nothing. The broker's live
// view (Presence) wins over the store's, which lags it by a flush; without
// one, the store's connectivity decides. A device whose state is unknown
// gets the command, unless Config.SeesEverySession says that unknown means
// it has never connected.
func (s *server) refuseOffline(w http.ResponseWriter, r *http.Request, dev store.Device, command string) bool {
	online, known := false, false
	if s.cfg.Presence != nil {
		online, known = s.cfg.Presence(dev.ID)
	}
	c, err := s.cfg.Store.GetConnectivity(r.Context(), dev.ID)
	if err != nil {
		return false // the executor meets the same error and reports it
	}
	if !known {
		online, known = c.Online, c.Known
	}
	never := false
	if !known && s.cfg.SeesEverySession {
		online, known, never = false, true, true
	}
	if !known || online {
		return false
	}
	details := map[string]any{"device_id": dev.ID, "command": command, "last_seen_at": nil}
	seen := "its connection ended a moment ago" // the store has not caught up with the broker yet
	if !c.LastSeen.IsZero() {
		details["last_seen_at"] = formatTime(c.LastSeen)
		seen = "last seen " + formatTime(c.LastSeen)
		if ago := s.cfg.Now().Sub(c.LastSeen); ago >= time.Second {
			seen += ", " + ago.Round(time.Second).String() + " ago"
		}
	}
	name := dev.Slug
	if name == "" {
		name = dev.ID
	}
	msg := fmt.Sprintf("device %s is OFFLINE (%s): the command was not sent, as the device could not receive it; start the device or check its connection, and try again when it is ONLINE", name, seen)
	if never {
		// Its connectivity shows UNKNOWN: say why the hub is sure anyway.
		msg = fmt.Sprintf("device %s has never connected to the hub: the command was not sent, as the device could not receive it; start the device with the communication config generate_config gives, and try again when it is ONLINE", name)
	}
	writeError(w, http.StatusUnprocessableEntity, CodeDeviceOffline, msg, details)
	return true
}
