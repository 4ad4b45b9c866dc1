package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/edk-go/edk/hub/store"
)

// apiError is one element of the "errors" array of an error response.
type apiError struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details"`
}

// writeJSON writes v as the JSON body with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		// Every response type marshals; this is a programming error.
		status = http.StatusInternalServerError
		data = []byte(`{"errors":[{"code":"internal","message":"internal error","details":{}}]}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}

// writeError writes an error response with one error.
func writeError(w http.ResponseWriter, status int, code, message string, details map[string]any) {
	if details == nil {
		details = map[string]any{}
	}
	writeJSON(w, status, map[string][]apiError{"errors": {{Code: code, Message: message, Details: details}}})
}

// fail answers an error from the store, the executor or the provisioner:
// the sentinel errors become 404, 409 and 422; a cancelled request gets no
// answer worth writing; anything else is logged and answered with a 500
// that says nothing about its cause.
func (s *server) fail(w http.ResponseWriter, r *http.Request, what string, err error, details map[string]any) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", what+" not found", details)
	case errors.Is(err, store.ErrConflict):
		writeError(w, http.StatusConflict, "conflict", what+" is already taken", details)
	case errors.Is(err, store.ErrInvalid):
		writeError(w, http.StatusUnprocessableEntity, "invalid", "invalid "+what, details)
	case r.Context().Err() != nil && errors.Is(err, context.Canceled):
		s.log.Debug("api: request cancelled", "method", r.Method, "path", r.URL.Path)
		writeError(w, http.StatusServiceUnavailable, "cancelled", "request cancelled", nil)
	default:
		s.log.Error("api: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error; the hub's log has the cause", nil)
	}
}

// badRequest answers 400.
func badRequest(w http.ResponseWriter, message string, details map[string]any) {
	writeError(w, http.StatusBadRequest, "bad_request", message, details)
}

// invalid answers 422 about one field.
func invalid(w http.ResponseWriter, field, message string) {
	writeError(w, http.StatusUnprocessableEntity, "invalid", field+": "+message, map[string]any{"field": field})
}

// decode reads a JSON request body into v: at most MaxBodyBytes, one JSON
// object, no unknown fields. It answers the request and returns false when
// the body is not acceptable.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// Exactly one value: anything but whitespace after it is an error.
		if _, err2 := dec.Token(); err2 != io.EOF {
			err = errors.New("trailing data after the JSON object")
			if err2 != nil {
				var mbe *http.MaxBytesError
				if errors.As(err2, &mbe) {
					err = err2
				}
			}
		}
	}
	if err == nil {
		return true
	}
	var (
		mbe *http.MaxBytesError
		se  *json.SyntaxError
		te  *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, "body_too_large",
			fmt.Sprintf("request body is larger than %d bytes", mbe.Limit), map[string]any{"limit": mbe.Limit})
	case errors.Is(err, io.EOF):
		badRequest(w, "request body is empty; send a JSON object", nil)
	case errors.As(err, &se):
		badRequest(w, "request body is not valid JSON: "+se.Error(), map[string]any{"offset": se.Offset})
	case errors.Is(err, io.ErrUnexpectedEOF):
		badRequest(w, "request body is not valid JSON: unexpected end", nil)
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			badRequest(w, "request body must be a JSON object", nil)
			return false
		}
		badRequest(w, fmt.Sprintf("field %q must be %s", field, jsonKind(te.Type.Kind().String())),
			map[string]any{"field": field})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		badRequest(w, fmt.Sprintf("unknown field %q", field), map[string]any{"field": field})
	default:
		badRequest(w, "request body is not acceptable: "+err.Error(), nil)
	}
	return false
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "float64", "float32", "int", "int64":
		return "a number"
	case "bool":
		return "a boolean"
	case "map", "struct":
		return "an object"
	case "slice":
		return "an array"
	}
	return "of another type"
}
