package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/edk-go/edk/commconfig"
)

// hubClient is the little of the hub's HTTP API (docs/hub-api.md) that the
// fleet uses: provisioning, generate_config and execute_command.
type hubClient struct {
	base  string
	token string
	http  *http.Client
}

// apiError is an answer other than 200, with Enapter's error message when
// the body carries one.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string {
	if e.msg != "" {
		return fmt.Sprintf("%d %s: %s", e.status, e.code, e.msg)
	}
	return fmt.Sprintf("HTTP %d", e.status)
}

// errUnreachable marks a request that got no answer at all.
var errUnreachable = errors.New("hub unreachable")

func (c *hubClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("X-Enapter-Auth-Token", c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The URL may hold nothing secret, but the token is in a header,
		// never in the error.
		return fmt.Errorf("%w: %s %s: %w", errUnreachable, method, c.base+path, unwrapURLError(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Errors []struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"errors"`
		}
		ae := &apiError{status: resp.StatusCode}
		if json.Unmarshal(b, &e) == nil && len(e.Errors) > 0 {
			ae.code, ae.msg = e.Errors[0].Code, e.Errors[0].Message
		}
		return fmt.Errorf("%s %s: %w", method, path, ae)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: the answer is not what the hub API sends: %w", method, path, err)
		}
	}
	return nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// provision creates the device with slug (or finds it, when a fleet with
// the same prefix ran against this hub before) and returns its id and a
// fresh communication config for protocol.
func (c *hubClient) provision(ctx context.Context, slug string, protocol commconfig.Protocol) (string, *commconfig.Config, error) {
	var created struct {
		DeviceID string `json:"device_id"`
	}
	err := c.do(ctx, http.MethodPost, "/v3/provisioning/standalone", map[string]any{"name": slug, "slug": slug}, &created)
	var ae *apiError
	switch {
	case errors.As(err, &ae) && ae.status == http.StatusConflict:
		// The slug is taken: this device was made by an earlier run.
		var got struct {
			Device struct {
				ID string `json:"id"`
			} `json:"device"`
		}
		if err := c.do(ctx, http.MethodGet, "/v3/devices/"+url.PathEscape(slug), nil, &got); err != nil {
			return "", nil, fmt.Errorf("find device %s: %w", slug, err)
		}
		created.DeviceID = got.Device.ID
	case err != nil:
		return "", nil, fmt.Errorf("provision device %s: %w", slug, err)
	}
	if created.DeviceID == "" {
		return "", nil, fmt.Errorf("provision device %s: the hub answered no device id", slug)
	}
	var gen struct {
		Blob string `json:"blob"`
	}
	if err := c.do(ctx, http.MethodPost, "/v3/devices/"+url.PathEscape(created.DeviceID)+"/generate_config", map[string]any{"protocol": protocol}, &gen); err != nil {
		return "", nil, fmt.Errorf("generate config for %s: %w", slug, err)
	}
	cfg, err := commconfig.Parse(gen.Blob)
	if err != nil {
		return "", nil, fmt.Errorf("generate config for %s: %w", slug, err)
	}
	return created.DeviceID, cfg, nil
}

// execute runs one command through the hub and returns the execution's
// state (SUCCESS, ERROR, TIMEOUT).
func (c *hubClient) execute(ctx context.Context, deviceID, name string, args map[string]any, timeoutSeconds float64) (string, error) {
	var out struct {
		Execution struct {
			State string `json:"state"`
		} `json:"execution"`
	}
	body := map[string]any{"name": name, "arguments": args, "timeout": timeoutSeconds}
	if err := c.do(ctx, http.MethodPost, "/v3/devices/"+url.PathEscape(deviceID)+"/execute_command", body, &out); err != nil {
		return "", err
	}
	if out.Execution.State == "" {
		return "", errors.New("execute_command: the answer has no execution state")
	}
	return out.Execution.State, nil
}

func trimSlash(s string) string { return strings.TrimRight(s, "/") }
