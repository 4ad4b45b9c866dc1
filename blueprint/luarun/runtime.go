//go:build lua

package luarun

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/lua"
	"github.com/edk-go/edk/mqttapi"
)

//go:embed prelude.lua
var prelude []byte

// Runtime runs one blueprint script. Create it with New, start it with
// Run; Command and SetConnected may be called from any goroutine.
type Runtime struct {
	bp   *Blueprint
	opts Options
	log  *slog.Logger
	s    *lua.State

	ctx        context.Context // Run's, for calls made from the script
	jobs       []*job
	handlers   map[string]int // command name → registry ref
	onStatus   []int
	afterCfg   map[string][]int
	storage    map[string]string
	objects    map[int]any
	nextObj    int
	classes    map[string]int // class name → metatable ref
	cmd        *cmdState      // the command being executed, if any
	tcpClients map[string]*mbClient
	v1Serial   *mbClient // the port set up by rs485.init / rs232.init
	canBuses   map[string]*canBus

	// v1 serial ports: raw rs485/rs232 send and receive, and the ports
	// already warned about as unmapped
	v1Lines     map[string]*v1Line
	warnedPorts map[string]bool

	commands chan *cmdRequest
	status   chan bool
	configs  chan map[string]map[string]any
}

type job struct {
	ref      int
	interval time.Duration
	next     time.Time
}

type cmdRequest struct {
	name     string
	args     map[string]any
	progress func(string)
	reply    chan cmdResult
}

type cmdResult struct {
	payload any
	err     error
}

type cmdState struct {
	req      *cmdRequest
	errorMsg *string
}

// New loads the blueprint's script into a fresh Lua state and runs its
// top level (v1 scripts call main() there; v3's enapter.main runs at the
// start of Run).
func New(bp *Blueprint, opts Options) (*Runtime, error) {
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = DefaultCallTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := lua.NewState(lua.Options{MemoryLimit: opts.MemoryLimit})
	if err != nil {
		return nil, err
	}
	r := &Runtime{
		bp: bp, opts: opts, log: opts.Logger, s: s, ctx: context.Background(),
		handlers: map[string]int{}, afterCfg: map[string][]int{}, storage: map[string]string{},
		objects: map[int]any{}, classes: map[string]int{}, tcpClients: map[string]*mbClient{},
		v1Lines: map[string]*v1Line{}, warnedPorts: map[string]bool{},
		commands: make(chan *cmdRequest), status: make(chan bool, 1),
		configs: make(chan map[string]map[string]any, 1),
	}
	if err := r.loadStorage(); err != nil {
		s.Close()
		return nil, err
	}
	if err := r.install(); err != nil {
		s.Close()
		return nil, err
	}
	src, err := os.ReadFile(bp.Main)
	if err != nil {
		s.Close()
		return nil, err
	}
	if err := s.Load(src, "@"+filepath.Base(bp.Main)); err != nil {
		s.Close()
		return nil, fmt.Errorf("load %s: %w", bp.Main, err)
	}
	if err := s.Call(0, 0, opts.CallTimeout); err != nil {
		r.closeCAN()
		s.Close()
		return nil, fmt.Errorf("run %s: %w", filepath.Base(bp.Main), err)
	}
	return r, nil
}

// Check compiles the blueprint's Lua files without running them.
func Check(bp *Blueprint) error {
	s, err := lua.NewState(lua.Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	var errs []error
	_ = filepath.WalkDir(bp.ModuleDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) != ".lua" {
			return nil
		}
		src, err := os.ReadFile(p)
		if err == nil {
			rel, _ := filepath.Rel(bp.Dir, p)
			if err = s.Load(src, "@"+rel); err == nil {
				s.Pop(1)
			}
		}
		if err != nil {
			errs = append(errs, err)
		}
		return nil
	})
	return errors.Join(errs...)
}

func (r *Runtime) install() error {
	s := r.s
	r.installAPI()
	r.installModbus()
	r.installHTTP()
	r.installSerial()
	r.installCAN()
	s.PushString(r.bp.ModuleDir)
	s.SetGlobal("__edk_module_dir")
	s.PushInteger(int64(r.bp.APIVersion()))
	s.SetGlobal("__edk_api")
	if err := s.Load(prelude, "=edk prelude"); err != nil {
		return err
	}
	return s.Call(0, 0, r.opts.CallTimeout)
}

// Run runs the script until ctx is done: enapter.main (v3), then the
// scheduler's jobs, commands and connection callbacks, one at a time.
func (r *Runtime) Run(ctx context.Context) error {
	defer func() {
		r.closeCAN()
		r.s.Close()
		for _, c := range r.tcpClients {
			c.shared = false
			_ = c.Close()
		}
		if r.v1Serial != nil {
			r.v1Serial.shared = false
			_ = r.v1Serial.Close()
		}
		for _, l := range r.v1Lines {
			_ = l.Close()
		}
	}()
	r.ctx = ctx
	if r.bp.APIVersion() == 3 {
		r.s.SetTop(0)
		r.s.GetGlobal("enapter")
		if r.s.Type(-1) == lua.TypeTable && r.s.RawGetField(-1, "main") == lua.TypeFunction {
			if err := r.s.Call(0, 0, r.opts.CallTimeout); err != nil {
				r.log.Error("enapter.main failed", "err", err)
				r.scriptLog(mqttapi.SeverityError, "enapter.main failed: "+err.Error(), true)
			}
		}
		r.s.SetTop(0)
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		r.runDue(time.Now())
		timer.Reset(r.untilNext(time.Now()))
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case req := <-r.commands:
			payload, err := r.execute(req)
			req.reply <- cmdResult{payload, err}
		case up := <-r.status:
			r.connectionChanged(up)
		case cfg := <-r.configs:
			r.configurationChanged(cfg)
		}
	}
}

func (r *Runtime) untilNext(now time.Time) time.Duration {
	d := time.Hour
	for _, j := range r.jobs {
		if w := j.next.Sub(now); w < d {
			d = w
		}
	}
	if d < 0 {
		d = 0
	}
	return d
}

// runDue runs every job whose time has come, in order of registration;
// a job that overran is not run twice to catch up.
func (r *Runtime) runDue(now time.Time) {
	for _, j := range r.jobs {
		if now.Before(j.next) {
			continue
		}
		r.s.SetTop(0)
		r.s.PushRef(j.ref)
		if err := r.s.Call(0, 0, r.opts.CallTimeout); err != nil {
			r.log.Error("scheduled function failed", "err", err)
			r.scriptLog(mqttapi.SeverityError, "scheduled function failed: "+err.Error(), false)
		}
		r.s.SetTop(0)
		j.next = j.next.Add(j.interval)
		if n := time.Now(); j.next.Before(n) {
			j.next = n.Add(j.interval)
		}
	}
}

// SetConnected tells the script (on_connection_status_changed) that the
// device went online or offline. It never blocks: only the latest state
// is kept.
func (r *Runtime) SetConnected(up bool) {
	select {
	case <-r.status:
	default:
	}
	select {
	case r.status <- up:
	default:
	}
}

func (r *Runtime) connectionChanged(up bool) {
	status := "error"
	if up {
		status = "ok"
	}
	for _, ref := range r.onStatus {
		r.s.SetTop(0)
		r.s.PushRef(ref)
		r.s.PushString(status)
		if err := r.s.Call(1, 0, r.opts.CallTimeout); err != nil {
			r.log.Error("connection status callback failed", "err", err)
		}
	}
	r.s.SetTop(0)
}

// Command runs the script's handler for a command and returns its
// response payload. progress receives ctx.log messages (may be nil).
func (r *Runtime) Command(ctx context.Context, name string, args map[string]any, progress func(string)) (any, error) {
	req := &cmdRequest{name: name, args: args, progress: progress, reply: make(chan cmdResult, 1)}
	select {
	case r.commands <- req:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case res := <-req.reply:
		return res.payload, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// HandleCommands makes d route every command to the script.
func (r *Runtime) HandleCommands(d *device.Device) {
	d.HandleAny(func(ctx context.Context, cmd *device.Command) (any, error) {
		// Decoded again with UseNumber so that 61 arrives as the Lua
		// integer 61 (tostring gives "61"), not the float 61.0, as
		// json.decode does.
		args := map[string]any{}
		if len(cmd.Arguments) > 0 {
			dec := json.NewDecoder(bytes.NewReader(cmd.Arguments))
			dec.UseNumber()
			if err := dec.Decode(&args); err != nil {
				return nil, device.Errorf("arguments: %v", err)
			}
		}
		return r.Command(ctx, cmd.Name, args, func(msg string) { _ = cmd.Logf(ctx, "%s", msg) })
	}, device.Timeout(r.opts.CallTimeout+time.Second))
}

func (r *Runtime) execute(req *cmdRequest) (any, error) {
	ref, ok := r.handlers[req.name]
	if !ok {
		return nil, device.Errorf("unknown command %q (the blueprint registers: %s)", req.name, r.handlerNames())
	}
	s := r.s
	s.SetTop(0)
	st := &cmdState{req: req}
	r.cmd = st
	defer func() { r.cmd = nil }()
	s.PushRef(ref)
	s.PushRef(r.classes["ctx"])
	if err := s.Push(req.args); err != nil {
		return nil, device.Errorf("arguments: %v", err)
	}
	if req.args == nil {
		s.Pop(1)
		s.NewTable()
	}
	err := s.Call(2, 1, r.opts.CallTimeout)
	if st.errorMsg != nil {
		s.SetTop(0)
		return nil, &device.CommandError{Message: *st.errorMsg}
	}
	if err != nil {
		s.SetTop(0)
		return nil, &device.CommandError{Message: err.Error()}
	}
	v, cerr := s.ToValue(-1)
	s.SetTop(0)
	if cerr != nil {
		return nil, device.Errorf("handler returned a value that cannot be sent: %v", cerr)
	}
	switch x := v.(type) {
	case nil:
		return map[string]any{}, nil
	case map[string]any:
		return x, nil
	case []any:
		if len(x) == 0 {
			return map[string]any{}, nil
		}
	}
	return map[string]any{"result": v}, nil
}

func (r *Runtime) handlerNames() string {
	names := make([]string, 0, len(r.handlers))
	for n := range r.handlers {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "none"
	}
	b, _ := json.Marshal(names)
	return string(b)
}
