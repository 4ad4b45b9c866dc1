//go:build !lua

package luarun

import (
	"context"

	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/lua"
)

// Runtime runs one blueprint; this build has no Lua, so none can be made.
type Runtime struct{}

// New returns lua.ErrNotBuilt: this edk was built without -tags lua.
func New(*Blueprint, Options) (*Runtime, error) { return nil, lua.ErrNotBuilt }

// Check returns lua.ErrNotBuilt.
func Check(*Blueprint) error { return lua.ErrNotBuilt }

// Run is never reached.
func (*Runtime) Run(context.Context) error { return lua.ErrNotBuilt }

// SetConnected is never reached.
func (*Runtime) SetConnected(bool) {}

// HandleCommands is never reached.
func (*Runtime) HandleCommands(*device.Device) {}

// SetConfiguration is never reached.
func (*Runtime) SetConfiguration(map[string]map[string]any) {}
