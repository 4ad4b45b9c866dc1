package device

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/edk-go/edk/blueprint"
	"github.com/edk-go/edk/mqttapi"
)

// ErrManifestViolation is wrapped by the error a Send method returns in
// strict manifest mode when the message breaks the manifest.
var ErrManifestViolation = errors.New("message breaks the device's manifest")

// WithManifest makes the device hold to its blueprint manifest:
//   - every command request is checked before its handler runs: a command
//     the manifest does not declare, a missing required argument, a wrong
//     type, a value outside the enum or the min/max range gets one error
//     response naming the argument and the rule, and the handler is not
//     called; arguments the manifest gives defaults for are filled in;
//   - every telemetry and properties message is checked: an undeclared
//     attribute, a wrong type, a value not in its enum or an undeclared
//     alert is logged once per attribute and problem, and counted (see
//     Stats); with WithStrictManifest the message is not sent.
func WithManifest(m *blueprint.Manifest) Option {
	return func(o *options) { o.manifest = m }
}

// WithStrictManifest refuses to send telemetry or properties that break
// the manifest given with WithManifest.
func WithStrictManifest() Option { return func(o *options) { o.strictManifest = true } }

// HandleArgs registers fn for the command name with its arguments decoded
// into a T (a struct with json tags), after the manifest's checks and
// defaults when there is one. An argument of the wrong type becomes an
// error response naming it; fn is not called.
func HandleArgs[T any](d *Device, name string, fn func(ctx context.Context, cmd *Command, args T) (any, error), opts ...HandleOption) {
	d.Handle(name, func(ctx context.Context, cmd *Command) (any, error) {
		var args T
		if err := cmd.Decode(&args); err != nil {
			return nil, err
		}
		return fn(ctx, cmd, args)
	}, opts...)
}

// manifestGuard checks messages against the manifest and remembers which
// problems it has already reported.
type manifestGuard struct {
	m          *blueprint.Manifest
	strict     bool
	reported   sync.Map // "kind/attribute/problem" → struct{}
	violations atomic.Uint64
}

// checkCommand applies the manifest to a request; it returns the
// arguments to run the handler with, or the error response.
func (g *manifestGuard) checkCommand(cmd *Command) error {
	args := cmd.Args()
	checked, err := g.m.CheckCommand(cmd.Name, args)
	if err != nil {
		return &CommandError{Message: err.Error()}
	}
	if len(checked) != len(args) { // defaults were filled in
		b, err := json.Marshal(checked)
		if err != nil {
			return fmt.Errorf("encode arguments with defaults: %w", err)
		}
		cmd.Arguments, cmd.args = b, checked
	}
	return nil
}

// checkOutgoing reports the violations of one message and, in strict
// mode, turns them into an error.
func (d *Device) checkOutgoing(kind string, vs []blueprint.Violation) error {
	if len(vs) == 0 {
		return nil
	}
	g := d.manifest
	g.violations.Add(uint64(len(vs)))
	for _, v := range vs {
		key := kind + "/" + v.Attribute + "/" + string(v.Problem)
		if _, seen := g.reported.LoadOrStore(key, struct{}{}); !seen {
			d.log.Warn(kind+" breaks the manifest (reported once per attribute and problem)",
				"attribute", v.Attribute, "problem", string(v.Problem), "detail", v.Message, "strict", g.strict)
		}
	}
	if !g.strict {
		return nil
	}
	msgs := make([]string, len(vs))
	for i, v := range vs {
		msgs[i] = v.Message
	}
	return fmt.Errorf("%w: %s not sent: %s", ErrManifestViolation, kind, strings.Join(msgs, "; "))
}

func (d *Device) checkTelemetry(t mqttapi.Telemetry) error {
	if d.manifest == nil {
		return nil
	}
	return d.checkOutgoing("telemetry", d.manifest.m.CheckTelemetry(t.Values, t.Alerts.Names()))
}

func (d *Device) checkProperties(p mqttapi.Properties) error {
	if d.manifest == nil {
		return nil
	}
	return d.checkOutgoing("properties", d.manifest.m.CheckProperties(p.Values))
}
