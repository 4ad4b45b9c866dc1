// Package hubclient is the one small client of the hub's v3 HTTP API that
// edk's own code uses (edk demo) and its tests share: JSON in, JSON out, the
// token header, and the two calls every caller makes (provision a device and
// get its config, assign a manifest, execute a command). It is not an SDK for the API; a
// program of yours talks HTTP to it like to Enapter's (docs/hub-api.md).
package hubclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/edk-go/edk/commconfig"
)

// maxAnswer bounds what the client reads of one answer.
const maxAnswer = 32 << 20

// Client calls one hub.
type Client struct {
	BaseURL string       // http://host:port or https://host:port, no trailing slash
	Token   string       // the API token (X-Enapter-Auth-Token)
	HTTP    *http.Client // nil: http.DefaultClient
}

// Call sends body as JSON (none when nil) and decodes the answer, when there
// is one, into out (ignored when nil), whatever its status, which it
// returns: an error answer's JSON is decoded too. err is about the request
// or an answer that is not JSON.
func (c *Client) Call(ctx context.Context, method, path string, body, out any) (int, error) {
	resp, data, err := c.send(ctx, method, path, body)
	if err != nil {
		return 0, err
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %s: the answer is not the JSON expected: %w (%s)", method, path, resp.Status, err, data)
		}
	}
	return resp.StatusCode, nil
}

// StatusError is an answer outside 2xx from Do.
type StatusError struct {
	Method, Path string
	Code         int
	Status       string
	Body         []byte
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: %s: %s", e.Method, e.Path, e.Status, e.Body)
}

// First returns the code and message of the first error in the answer's
// Enapter-shaped body ({"errors": [{"code", "message", …}]}); ok is false
// when the body has none.
func (e *StatusError) First() (code, message string, ok bool) {
	var body struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(e.Body, &body) != nil || len(body.Errors) == 0 {
		return "", "", false
	}
	return body.Errors[0].Code, body.Errors[0].Message, true
}

// Do is Call for a request that must succeed: an answer outside 2xx is a
// *StatusError with the answer's body, and out is left alone.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	resp, data, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &StatusError{Method: method, Path: path, Code: resp.StatusCode, Status: resp.Status, Body: data}
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not the JSON expected: %w (%s)", method, path, err, data)
	}
	return nil
}

// send makes the request and reads the answer (trimmed; its body closed).
func (c *Client) send(ctx context.Context, method, path string, body any) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, rd)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("X-Enapter-Auth-Token", c.Token)
	if body != nil {
		// assign_blueprint reads a JSON body only when told so (else the
		// body is the manifest itself); the other endpoints read JSON anyway.
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	return resp, bytes.TrimSpace(data), nil
}

// Provision creates a standalone device and generates its connection
// config for protocol; it returns the device id and the config.
func (c *Client) Provision(ctx context.Context, name, slug string, protocol commconfig.Protocol) (string, *commconfig.Config, error) {
	var created struct {
		DeviceID string `json:"device_id"`
	}
	if err := c.Do(ctx, "POST", "/v3/provisioning/standalone", map[string]string{"name": name, "slug": slug}, &created); err != nil {
		return "", nil, err
	}
	var gen struct {
		Blob string `json:"blob"`
	}
	if err := c.Do(ctx, "POST", "/v3/devices/"+created.DeviceID+"/generate_config", map[string]string{"protocol": string(protocol)}, &gen); err != nil {
		return "", nil, err
	}
	cfg, err := commconfig.Parse(gen.Blob)
	if err != nil {
		return "", nil, fmt.Errorf("the hub's config for %s: %w", name, err)
	}
	return created.DeviceID, cfg, nil
}

// AssignManifest assigns a blueprint manifest (the YAML of manifest.yml) to
// a device; from then on the hub checks the device's commands and telemetry
// against it.
func (c *Client) AssignManifest(ctx context.Context, deviceID string, manifest []byte) error {
	return c.Do(ctx, "POST", "/v3/devices/"+deviceID+"/assign_blueprint", map[string]string{"manifest": string(manifest)}, nil)
}

// Execution is what execute_command answers, in part.
type Execution struct {
	ID       string    `json:"id"`
	State    string    `json:"state"`
	Response *Response `json:"response"`
}

// Response is an execution's final response.
type Response struct {
	Payload json.RawMessage `json:"payload"`
}

// ExecuteCommand runs a command on a device and waits for its answer
// (execute_command); args nil sends none.
func (c *Client) ExecuteCommand(ctx context.Context, deviceID, name string, args map[string]any) (Execution, error) {
	var out struct {
		Execution Execution `json:"execution"`
	}
	body := map[string]any{"name": name}
	if args != nil {
		body["arguments"] = args
	}
	if err := c.Do(ctx, "POST", "/v3/devices/"+deviceID+"/execute_command", body, &out); err != nil {
		return Execution{}, err
	}
	return out.Execution, nil
}
