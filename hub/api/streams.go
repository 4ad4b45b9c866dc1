package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

// Stream timing.
const (
	wsWriteWait  = 10 * time.Second
	wsPongWait   = 60 * time.Second
	wsPingPeriod = wsPongWait * 9 / 10
)

// streamOr serves GET /v3/devices/{device_id}/<kind> as a WebSocket that
// pushes each event of the device as one text message. It ends with a
// close frame when the client goes, the request context ends or the
// Streams implementation closes the channel. The client sends nothing; it
// must answer pings (every browser and gorilla client does).
//
// A request that is not a WebSocket upgrade goes to plain instead (Enapter's
// CLI reads stored logs and telemetry with a plain GET on the same path).
func (s *server) streamOr(kind string, plain http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !websocket.IsWebSocketUpgrade(r) {
			plain(w, r)
			return
		}
		if s.cfg.Streams == nil {
			notAvailable(w, kind+" stream")
			return
		}
		keep, ok := streamFilter(w, r, kind)
		if !ok {
			return
		}
		d, ok := s.device(w, r)
		if !ok {
			return
		}
		id := d.ID
		conn, err := s.upgrader.Upgrade(w, r, nil)
		if err != nil {
			return // the upgrader has answered
		}
		events, cancel := s.cfg.Streams.Subscribe(id, kind)
		defer cancel()
		s.log.Debug("api: stream opened", "device_id", id, "kind", kind)

		// The reader notices the client going (and answers its close
		// frame); pongs push the read deadline forward.
		readDone := make(chan error, 1)
		_ = conn.SetReadDeadline(time.Now().Add(wsPongWait))
		conn.SetPongHandler(func(string) error {
			return conn.SetReadDeadline(time.Now().Add(wsPongWait))
		})
		go func() {
			for {
				if _, _, err := conn.NextReader(); err != nil {
					readDone <- err
					return
				}
			}
		}()
		ping := time.NewTicker(wsPingPeriod)
		defer ping.Stop()

		closeCode, reason := websocket.CloseNormalClosure, ""
		clientGone, readEnded := false, false
	loop:
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					closeCode, reason = websocket.CloseGoingAway, "stream ended"
					break loop
				}
				if !keep(ev) {
					continue
				}
				_ = conn.SetWriteDeadline(time.Now().Add(wsWriteWait))
				if err := conn.WriteMessage(websocket.TextMessage, ev.Data); err != nil {
					clientGone = true
					break loop
				}
			case <-ping.C:
				if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(wsWriteWait)); err != nil {
					clientGone = true
					break loop
				}
			case err := <-readDone:
				// A close frame from the client has been answered by
				// gorilla; any other read error means the client is gone.
				readEnded, clientGone = true, true
				var ce *websocket.CloseError
				if !errors.As(err, &ce) {
					s.log.Debug("api: stream read failed", "device_id", id, "err", err)
				}
				break loop
			case <-r.Context().Done():
				closeCode, reason = websocket.CloseGoingAway, "server going away"
				break loop
			}
		}
		if !clientGone {
			// gorilla has already echoed a client's close frame; otherwise
			// say goodbye and give the client a moment to answer.
			_ = conn.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(closeCode, reason), time.Now().Add(wsWriteWait))
			t := time.NewTimer(time.Second)
			select {
			case <-readDone:
				readEnded = true
			case <-t.C:
			}
			t.Stop()
		}
		_ = conn.Close()
		if !readEnded {
			<-readDone
		}
		s.log.Debug("api: stream closed", "device_id", id, "kind", kind)
	}
}

// streamFilter reads the filters of a log stream, Enapter's severity= and
// show=ALL|PERSISTED_ONLY|TEMPORARY_ONLY (what enapter3 device logs
// --follow passes on), and returns the test each event must pass. It
// answers a bad filter itself, before the upgrade.
func streamFilter(w http.ResponseWriter, r *http.Request, kind string) (func(StreamEvent) bool, bool) {
	all := func(StreamEvent) bool { return true }
	if kind != StreamLogs {
		return all, true
	}
	q := r.URL.Query()
	severity := q.Get("severity")
	var persist *bool
	switch q.Get("show") {
	case "", "ALL":
	case "PERSISTED_ONLY":
		persist = new(bool)
		*persist = true
	case "TEMPORARY_ONLY":
		persist = new(bool)
	default:
		invalid(w, "show", "must be ALL, PERSISTED_ONLY or TEMPORARY_ONLY")
		return nil, false
	}
	if severity == "" && persist == nil {
		return all, true
	}
	return func(ev StreamEvent) bool {
		var e struct {
			Severity string `json:"severity"`
			Persist  bool   `json:"persist"`
		}
		if json.Unmarshal(ev.Data, &e) != nil {
			return false
		}
		return (severity == "" || e.Severity == severity) && (persist == nil || e.Persist == *persist)
	}, true
}
