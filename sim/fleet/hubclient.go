package fleet

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/internal/hubclient"
)

// hubClient is the little of the hub's HTTP API (docs/hub-api.md) that the
// fleet uses: provisioning, generate_config and execute_command, on the
// project's one hub client with the fleet's error wording.
type hubClient struct {
	api *hubclient.Client
}

// apiError is an answer other than 2xx, with Enapter's error message when
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
	err := c.api.Do(ctx, method, path, body, out)
	var se *hubclient.StatusError
	var ue *url.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se):
		ae := &apiError{status: se.Code}
		ae.code, ae.msg, _ = se.First()
		return fmt.Errorf("%s %s: %w", method, path, ae)
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &ue):
		// The token is in a header, never in the error.
		return fmt.Errorf("%w: %s %s: %w", errUnreachable, method, c.api.BaseURL+path, ue.Err)
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

// latestTimestamp is the timestamp (Unix seconds) of the latest stored
// value of a device's attribute; 0 when it has none.
func (c *hubClient) latestTimestamp(ctx context.Context, deviceID, attribute string) (int64, error) {
	var out struct {
		Telemetry map[string]map[string]struct {
			Timestamp *int64 `json:"timestamp"`
		} `json:"telemetry"`
	}
	q := url.Values{"devices[" + deviceID + "]": {attribute}}
	if err := c.do(ctx, http.MethodGet, "/v3/telemetry/latest?"+q.Encode(), nil, &out); err != nil {
		return 0, err
	}
	if ts := out.Telemetry[deviceID][attribute].Timestamp; ts != nil {
		return *ts, nil
	}
	return 0, nil
}

func trimSlash(s string) string { return strings.TrimRight(s, "/") }
