package api

import (
	"cmp"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/edk-go/edk/hub/exec"
	"github.com/edk-go/edk/hub/store"
)

// executionJSON is a command execution as Enapter's v3 API shows it.
type executionJSON struct {
	ID        string          `json:"id"`
	DeviceID  string          `json:"device_id"`
	State     string          `json:"state"`
	CreatedAt string          `json:"created_at"`
	Request   requestJSON     `json:"request"`
	Response  *responseJSON   `json:"response"`
	Log       *[]responseJSON `json:"log"`
}

type requestJSON struct {
	Name         string          `json:"name"`
	Arguments    json.RawMessage `json:"arguments"`
	ManifestName string          `json:"manifest_name"`
}

type responseJSON struct {
	State      string          `json:"state"`
	Payload    json.RawMessage `json:"payload"`
	ReceivedAt string          `json:"received_at"`
}

var emptyObject = json.RawMessage("{}")

func orEmpty(m json.RawMessage) json.RawMessage {
	if len(m) == 0 || string(m) == "null" {
		return emptyObject
	}
	return m
}

func responseView(r store.ExecutionResponse) responseJSON {
	return responseJSON{State: string(r.State), Payload: orEmpty(r.Payload), ReceivedAt: formatTime(r.ReceivedAt)}
}

// executionView renders e; the log only when withLog.
func executionView(e store.Execution, withLog bool) executionJSON {
	v := executionJSON{
		ID: e.ID, DeviceID: e.DeviceID, State: string(e.State), CreatedAt: formatTime(e.CreatedAt),
		Request: requestJSON{Name: e.Request.Name, Arguments: orEmpty(e.Request.Arguments), ManifestName: e.Request.ManifestName},
	}
	if e.Response != nil {
		rv := responseView(*e.Response)
		v.Response = &rv
	}
	if withLog {
		l := make([]responseJSON, 0, len(e.Log))
		for _, r := range e.Log {
			l = append(l, responseView(r))
		}
		v.Log = &l
	}
	return v
}

// commandRequest reads and checks the body of execute_command and
// command_executions: the device (by id or slug), the request to send
// (arguments checked against the device's manifest, defaults filled in) and
// the timeout. It answers the request itself when something is wrong,
// and when the device is offline (refuseOffline).
func (s *server) commandRequest(w http.ResponseWriter, r *http.Request) (store.Device, store.ExecutionRequest, time.Duration, bool) {
	var body struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
		// Timeout is in seconds; an edk extension.
		Timeout *float64 `json:"timeout"`
	}
	fail := func() (store.Device, store.ExecutionRequest, time.Duration, bool) {
		return store.Device{}, store.ExecutionRequest{}, 0, false
	}
	if !decode(w, r, &body) {
		return fail()
	}
	if strings.TrimSpace(body.Name) == "" {
		invalid(w, "name", "is required")
		return fail()
	}
	if a := strings.TrimSpace(string(body.Arguments)); a != "" && a != "null" && !strings.HasPrefix(a, "{") {
		invalid(w, "arguments", "must be a JSON object")
		return fail()
	}
	timeout := s.cfg.DefaultCommandTimeout
	if body.Timeout != nil {
		t := *body.Timeout
		if math.IsNaN(t) || t <= 0 || t > MaxCommandTimeout.Seconds() {
			invalid(w, "timeout", "must be more than 0 and at most "+MaxCommandTimeout.String()+" in seconds")
			return fail()
		}
		timeout = time.Duration(t * float64(time.Second))
	}
	if s.cfg.Executor == nil {
		notAvailable(w, "execute_command")
		return fail()
	}
	dev, ok := s.device(w, r)
	if !ok {
		return fail()
	}
	args := body.Arguments
	if a := strings.TrimSpace(string(args)); a == "" || a == "null" {
		args = nil
	}
	// A command the device's manifest rejects is refused here, with the
	// manifest's message, and never sent.
	args, err := s.checkCommand(dev, body.Name, args)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, "rejected_by_manifest", err.Error(),
			map[string]any{"device_id": dev.ID, "command": body.Name})
		return fail()
	}
	if s.refuseOffline(w, r, dev, body.Name) {
		return fail()
	}
	return dev, store.ExecutionRequest{Name: body.Name, Arguments: args, ManifestName: body.Name}, timeout, true
}

func (s *server) executeCommand(w http.ResponseWriter, r *http.Request) {
	dev, req, timeout, ok := s.commandRequest(w, r)
	if !ok {
		return
	}
	e, err := s.cfg.Executor.Execute(r.Context(), dev.ID, req, timeout)
	if err != nil {
		s.failCommand(w, r, dev, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"execution": executionView(e, expandSet(r)["log"])})
}

// createExecution answers POST /v3/devices/{id}/command_executions: the
// command is sent and the answer, {"execution_id": ...}, comes at once;
// GET .../command_executions/{id} shows how it went. The execution ends
// like one of execute_command: the device's answer, TIMEOUT after the
// timeout, or ERROR when the hub stops first.
func (s *server) createExecution(w http.ResponseWriter, r *http.Request) {
	starter, ok := s.cfg.Executor.(Starter)
	if !ok && s.cfg.Executor != nil {
		notAvailable(w, "command_executions")
		return
	}
	dev, req, timeout, ok := s.commandRequest(w, r)
	if !ok {
		return
	}
	e, err := starter.Start(r.Context(), dev.ID, req, timeout)
	if err != nil {
		s.failCommand(w, r, dev, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"execution_id": e.ID})
}

// failCommand answers an error of the executor: a hub that is stopping is
// a 503; the rest goes to fail.
func (s *server) failCommand(w http.ResponseWriter, r *http.Request, dev store.Device, err error) {
	if errors.Is(err, exec.ErrClosed) {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the hub is stopping; try again when it is back", nil)
		return
	}
	what := "command"
	if errors.Is(err, store.ErrNotFound) {
		what = "device" // deleted while the command was on its way
	}
	s.fail(w, r, what, err, map[string]any{"device_id": dev.ID})
}

func (s *server) getExecution(w http.ResponseWriter, r *http.Request) {
	dev, ok := s.device(w, r)
	if !ok {
		return
	}
	id, eid := dev.ID, r.PathValue("execution_id")
	details := map[string]any{"device_id": id, "execution_id": eid}
	e, err := s.cfg.Store.GetExecution(r.Context(), eid)
	if err == nil && e.DeviceID != id {
		err = store.ErrNotFound
	}
	if err != nil {
		s.fail(w, r, "execution", err, details)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"execution": executionView(e, expandSet(r)["log"])})
}

// listExecutions supports Enapter's order (CREATED_AT_DESC, the default, or
// CREATED_AT_ASC), state.in, name.in, created_at.gte and created_at.lt.
// With any of them but the default order, the device's executions are
// filtered in memory: fine for one laptop's hub.
func (s *server) listExecutions(w http.ResponseWriter, r *http.Request) {
	dev, ok := s.device(w, r)
	if !ok {
		return
	}
	s.executions(w, r, []string{dev.ID})
}

// listSiteExecutions answers Enapter's GET
// /v3/sites/{site_id}/commands/executions: the executions of the site's
// devices (every device, or those of device_id.in, by id or slug), with the
// same filters as a device's list.
func (s *server) listSiteExecutions(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.checkSite(w, r, r.PathValue("site_id"), false); !ok {
		return
	}
	var ids []string
	if names := splitList(r.URL.Query().Get("device_id.in")); names != nil {
		for _, n := range names {
			d, err := s.lookupDevice(r, n)
			if err != nil {
				s.fail(w, r, "device", err, map[string]any{"device_id": n, "field": "device_id.in"})
				return
			}
			ids = append(ids, d.ID)
		}
	} else {
		ds, err := s.cfg.Store.ListDevices(r.Context(), 0, 0)
		if err != nil {
			s.fail(w, r, "devices", err, nil)
			return
		}
		for _, d := range ds {
			ids = append(ids, d.ID)
		}
	}
	s.executions(w, r, ids)
}

// executions lists the executions of the devices, newest first unless
// order=CREATED_AT_ASC, filtered by state.in, name.in, created_at.gte and
// created_at.lt. One device without filters is paged by the store; anything
// else is filtered in memory: fine for one laptop's hub.
func (s *server) executions(w http.ResponseWriter, r *http.Request, deviceIDs []string) {
	offset, limit, ok := pagination(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	order := q.Get("order")
	if order != "" && order != "CREATED_AT_ASC" && order != "CREATED_AT_DESC" {
		invalid(w, "order", "must be CREATED_AT_ASC or CREATED_AT_DESC")
		return
	}
	var gte, lt time.Time
	if !queryTimes(w, q, queryTime{"created_at.gte", &gte}, queryTime{"created_at.lt", &lt}) {
		return
	}
	states, names := splitList(q.Get("state.in")), splitList(q.Get("name.in"))
	filtered := len(deviceIDs) != 1 || order == "CREATED_AT_ASC" || !gte.IsZero() || !lt.IsZero() || states != nil || names != nil
	var es []store.Execution
	for _, id := range deviceIDs {
		var (
			got []store.Execution
			err error
		)
		if !filtered {
			got, err = s.cfg.Store.ListExecutions(r.Context(), id, offset, limit)
		} else {
			got, err = s.cfg.Store.ListExecutions(r.Context(), id, 0, 0)
		}
		if err != nil {
			s.fail(w, r, "device", err, map[string]any{"device_id": id})
			return
		}
		es = append(es, got...)
	}
	if filtered {
		es = slices.DeleteFunc(es, func(e store.Execution) bool {
			return (states != nil && !slices.Contains(states, string(e.State))) ||
				(names != nil && !slices.Contains(names, e.Request.Name)) ||
				(!gte.IsZero() && e.CreatedAt.Before(gte)) ||
				(!lt.IsZero() && !e.CreatedAt.Before(lt))
		})
		// Newest first; executions of the same millisecond (on different
		// devices too) in the order they were created.
		slices.SortFunc(es, func(a, b store.Execution) int {
			if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
				return c
			}
			return cmp.Compare(b.Seq, a.Seq)
		})
		if order == "CREATED_AT_ASC" {
			slices.Reverse(es)
		}
		es = es[min(offset, len(es)):]
		es = es[:min(limit, len(es))]
	}
	withLog := expandSet(r)["log"]
	out := make([]executionJSON, 0, len(es))
	for _, e := range es {
		out = append(out, executionView(e, withLog))
	}
	writeJSON(w, http.StatusOK, map[string]any{"executions": out})
}

// splitList splits a comma-separated list, nil when empty.
func splitList(v string) []string {
	var out []string
	for f := range strings.SplitSeq(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
