//go:build lua

package luarun

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/edk-go/edk/lua"
	"github.com/edk-go/edk/mqttapi"
)

// fn is a table of Go functions to install under one global.
type fns map[string]lua.Func

func (r *Runtime) setTable(global string, f fns) {
	s := r.s
	if s.GetGlobal(global) != lua.TypeTable {
		s.Pop(1)
		s.NewTable()
	}
	for name, fn := range f {
		s.PushFunc(fn)
		s.RawSetField(-2, name)
	}
	s.SetGlobal(global)
}

// class creates a metatable whose __index holds methods, kept under name.
func (r *Runtime) class(name string, methods fns, gc bool) {
	s := r.s
	s.NewTable() // metatable
	s.NewTable() // methods
	for n, fn := range methods {
		s.PushFunc(fn)
		s.RawSetField(-2, n)
	}
	s.RawSetField(-2, "__index")
	if gc {
		s.PushFunc(func(s *lua.State) (int, error) {
			if s.RawGetField(1, "__edk_id") == lua.TypeNumber {
				id := int(s.ToInteger(-1))
				if c, ok := r.objects[id].(interface{ Close() error }); ok {
					_ = c.Close()
				}
				delete(r.objects, id)
			}
			return 0, nil
		})
		s.RawSetField(-2, "__gc")
	}
	r.classes[name] = s.Ref()
}

// pushObject pushes a table of class name that stands for the Go value v.
func (r *Runtime) pushObject(name string, v any) {
	s := r.s
	r.nextObj++
	r.objects[r.nextObj] = v
	s.NewTable()
	s.PushInteger(int64(r.nextObj))
	s.RawSetField(-2, "__edk_id")
	s.GetGlobal("setmetatable")
	s.PushCopy(-2)
	s.PushRef(r.classes[name])
	// setmetatable is a C function of the base library: a plain call.
	_ = s.Call(2, 0, 0)
}

// self returns the Go value behind the object at stack index 1.
func self[T any](r *Runtime, s *lua.State, method string) (T, error) {
	var zero T
	if s.Type(1) != lua.TypeTable || s.RawGetField(1, "__edk_id") != lua.TypeNumber {
		return zero, fmt.Errorf("%s: call it with a colon (object:%s(...))", method, method)
	}
	v, ok := r.objects[int(s.ToInteger(-1))].(T)
	s.Pop(1)
	if !ok {
		return zero, fmt.Errorf("%s: wrong object", method)
	}
	return v, nil
}

func argString(s *lua.State, i int, fn string) (string, error) {
	switch s.Type(i) {
	case lua.TypeString, lua.TypeNumber:
		return s.ToString(i), nil
	}
	return "", fmt.Errorf("bad argument #%d to '%s' (string expected, got %s)", i, fn, s.Type(i))
}

func argInt(s *lua.State, i int, fn string) (int64, error) {
	if s.Type(i) != lua.TypeNumber {
		return 0, fmt.Errorf("bad argument #%d to '%s' (number expected, got %s)", i, fn, s.Type(i))
	}
	if s.IsInteger(i) {
		return s.ToInteger(i), nil
	}
	return int64(s.ToNumber(i)), nil
}

func optInt(s *lua.State, i int, def int64) int64 {
	if s.Type(i) != lua.TypeNumber {
		return def
	}
	if s.IsInteger(i) {
		return s.ToInteger(i)
	}
	return int64(s.ToNumber(i))
}

func pushErr(s *lua.State, err error) (int, error) {
	s.PushNil()
	s.PushString(err.Error())
	return 2, nil
}

func (r *Runtime) scriptLog(sev mqttapi.Severity, msg string, persist bool) {
	if r.opts.Sink == nil {
		return
	}
	if err := r.opts.Sink.SendLog(r.ctx, mqttapi.Log{Timestamp: time.Now().Unix(), Message: msg, Severity: sev, Persist: persist}); err != nil {
		r.log.Debug("log not sent", "err", err)
	}
}

func (r *Runtime) installAPI() {
	r.setTable("enapter", fns{
		"send_telemetry":  r.sendTelemetry,
		"send_properties": r.sendProperties,
		"log":             r.enapterLog,
		"register_command_handler": func(s *lua.State) (int, error) {
			name, err := argString(s, 1, "register_command_handler")
			if err != nil {
				return 0, err
			}
			if s.Type(2) != lua.TypeFunction {
				return 0, fmt.Errorf("bad argument #2 to 'register_command_handler' (function expected, got %s)", s.Type(2))
			}
			s.SetTop(2)
			if old, ok := r.handlers[name]; ok {
				s.Unref(old)
			}
			r.handlers[name] = s.Ref()
			return 0, nil
		},
		"on_connection_status_changed": func(s *lua.State) (int, error) {
			if s.Type(1) != lua.TypeFunction {
				return 0, fmt.Errorf("bad argument #1 to 'on_connection_status_changed' (function expected, got %s)", s.Type(1))
			}
			s.SetTop(1)
			r.onStatus = append(r.onStatus, s.Ref())
			return 0, nil
		},
	})
	r.setTable("scheduler", fns{
		"add": func(s *lua.State) (int, error) {
			ms, err := argInt(s, 1, "scheduler.add")
			if err != nil {
				return 0, err
			}
			if ms < 1 {
				return 0, fmt.Errorf("scheduler.add: period must be at least 1 ms, got %d", ms)
			}
			if s.Type(2) != lua.TypeFunction {
				return 0, fmt.Errorf("bad argument #2 to 'scheduler.add' (function expected, got %s)", s.Type(2))
			}
			s.SetTop(2)
			d := time.Duration(ms) * time.Millisecond
			r.jobs = append(r.jobs, &job{ref: s.Ref(), interval: d, next: time.Now().Add(d)})
			s.PushInteger(int64(len(r.jobs)))
			return 1, nil
		},
	})
	r.setTable("system", fns{
		"delay": func(s *lua.State) (int, error) {
			ms, err := argInt(s, 1, "system.delay")
			if err != nil {
				return 0, err
			}
			// A Go sleep is not seen by the watchdog hook: a delay
			// ends at the watchdog's limit at the latest.
			t := time.NewTimer(min(time.Duration(ms)*time.Millisecond, r.opts.CallTimeout))
			defer t.Stop()
			select {
			case <-t.C:
			case <-r.ctx.Done():
				return 0, errors.New("system.delay: stopping")
			}
			return 0, nil
		},
	})
	r.installStorage()
	r.installConfiguration()
	r.setTable("__edk", fns{
		"json_encode": func(s *lua.State) (int, error) {
			v, err := s.ToValue(1)
			if err != nil {
				return pushErr(s, fmt.Errorf("json.encode: %w", err))
			}
			b, err := json.Marshal(v)
			if err != nil {
				return pushErr(s, fmt.Errorf("json.encode: %w", err))
			}
			s.PushString(string(b))
			return 1, nil
		},
		"json_decode": func(s *lua.State) (int, error) {
			str, err := argString(s, 1, "json.decode")
			if err != nil {
				return 0, err
			}
			dec := json.NewDecoder(bytes.NewReader([]byte(str)))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				return pushErr(s, fmt.Errorf("json.decode: %w", err))
			}
			if dec.More() {
				return pushErr(s, errors.New("json.decode: trailing data after the value"))
			}
			if err := s.Push(v); err != nil {
				return pushErr(s, fmt.Errorf("json.decode: %w", err))
			}
			return 1, nil
		},
	})
	r.class("ctx", fns{}, false)
	// ctx is one shared table; its functions act on the running command.
	s := r.s
	s.PushRef(r.classes["ctx"])
	s.PushFunc(func(s *lua.State) (int, error) {
		msg := s.ToString(1)
		if s.Type(1) != lua.TypeString && s.Type(1) != lua.TypeNumber {
			msg = "command failed"
		}
		if r.cmd != nil {
			r.cmd.errorMsg = &msg
		}
		return 0, errors.New(msg) // stops the handler, as on the UCM
	})
	s.RawSetField(-2, "error")
	s.PushFunc(func(s *lua.State) (int, error) {
		if r.cmd != nil && r.cmd.req.progress != nil {
			r.cmd.req.progress(s.ToString(1))
		}
		return 0, nil
	})
	s.RawSetField(-2, "log")
	s.Pop(1)
}

// telemetryTable converts the table at 1 into values and alerts: an
// alerts list (even empty) is a known state, no alerts key is unknown.
func telemetryTable(s *lua.State, fn string) (map[string]any, *mqttapi.Alerts, error) {
	if s.Type(1) != lua.TypeTable {
		return nil, nil, fmt.Errorf("bad argument #1 to '%s' (table expected, got %s)", fn, s.Type(1))
	}
	v, err := s.ToValue(1)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", fn, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		if arr, _ := v.([]any); len(arr) == 0 {
			m = map[string]any{}
		} else {
			return nil, nil, fmt.Errorf("%s: want a table of name = value, got a list", fn)
		}
	}
	delete(m, "timestamp")
	raw, has := m["alerts"]
	if !has {
		return m, nil, nil
	}
	delete(m, "alerts")
	list, ok := raw.([]any)
	if !ok {
		return nil, nil, fmt.Errorf("%s: alerts must be a list of alert names", fn)
	}
	names := make([]string, 0, len(list))
	for _, a := range list {
		n, ok := a.(string)
		if !ok {
			return nil, nil, fmt.Errorf("%s: alerts must be a list of alert names, got %v", fn, a)
		}
		names = append(names, n)
	}
	al := mqttapi.ActiveAlerts(names...)
	return m, &al, nil
}

func (r *Runtime) sendTelemetry(s *lua.State) (int, error) {
	m, alerts, err := telemetryTable(s, "enapter.send_telemetry")
	if err != nil {
		return 0, err
	}
	t := mqttapi.Telemetry{Timestamp: time.Now().Unix(), Values: m}
	if alerts != nil {
		t.Alerts = *alerts
	}
	if r.opts.Sink != nil {
		if err := r.opts.Sink.SendTelemetry(r.ctx, t); err != nil {
			r.log.Debug("telemetry not sent", "err", err)
			s.PushString(err.Error())
			return 1, nil
		}
	}
	return 0, nil
}

func (r *Runtime) sendProperties(s *lua.State) (int, error) {
	m, _, err := telemetryTable(s, "enapter.send_properties")
	if err != nil {
		return 0, err
	}
	if r.opts.Sink != nil {
		if err := r.opts.Sink.SendProperties(r.ctx, mqttapi.Properties{Timestamp: time.Now().Unix(), Values: m}); err != nil {
			r.log.Debug("properties not sent", "err", err)
			s.PushString(err.Error())
			return 1, nil
		}
	}
	return 0, nil
}

func (r *Runtime) enapterLog(s *lua.State) (int, error) {
	msg := s.ToString(1)
	if s.Type(1) != lua.TypeString && s.Type(1) != lua.TypeNumber {
		return 0, fmt.Errorf("bad argument #1 to 'enapter.log' (string expected, got %s)", s.Type(1))
	}
	sev := mqttapi.SeverityInfo
	if s.Type(2) == lua.TypeString {
		switch x := mqttapi.Severity(s.ToString(2)); x {
		case mqttapi.SeverityDebug, mqttapi.SeverityInfo, mqttapi.SeverityWarning, mqttapi.SeverityError:
			sev = x
		default:
			return 0, fmt.Errorf("enapter.log: severity must be debug, info, warning or error, got %q", x)
		}
	}
	persist := s.ToBool(3)
	r.log.Info("blueprint log", "severity", sev, "message", msg)
	r.scriptLog(sev, msg, persist)
	return 0, nil
}

// storage: v1 returns numeric codes (0 = ok), v3 error strings or nil.
func (r *Runtime) installStorage() {
	v1 := r.bp.APIVersion() == 1
	ok := func(s *lua.State) int {
		if v1 {
			s.PushInteger(0)
			return 1
		}
		return 0
	}
	fail := func(s *lua.State, code int64, err error) (int, error) {
		if v1 {
			s.PushInteger(code)
			return 1, nil
		}
		s.PushString(err.Error())
		return 1, nil
	}
	r.setTable("storage", fns{
		"read": func(s *lua.State) (int, error) {
			key, err := argString(s, 1, "storage.read")
			if err != nil {
				return 0, err
			}
			if v, has := r.storage[key]; has {
				s.PushString(v)
			} else {
				s.PushNil()
			}
			if v1 {
				s.PushInteger(0)
			} else {
				s.PushNil()
			}
			return 2, nil
		},
		"write": func(s *lua.State) (int, error) {
			key, err := argString(s, 1, "storage.write")
			if err != nil {
				return 0, err
			}
			val, err := argString(s, 2, "storage.write")
			if err != nil {
				return 0, err
			}
			old, had := r.storage[key]
			r.storage[key] = val
			if err := r.saveStorage(); err != nil {
				if had {
					r.storage[key] = old
				} else {
					delete(r.storage, key)
				}
				return fail(s, 2, err)
			}
			return ok(s), nil
		},
		"remove": func(s *lua.State) (int, error) {
			key, err := argString(s, 1, "storage.remove")
			if err != nil {
				return 0, err
			}
			delete(r.storage, key)
			if err := r.saveStorage(); err != nil {
				return fail(s, 2, err)
			}
			return ok(s), nil
		},
		"err_to_str": func(s *lua.State) (int, error) {
			switch optInt(s, 1, 0) {
			case 0:
				s.PushString("")
			case 1:
				s.PushString("NotFound")
			default:
				s.PushString("InternalError")
			}
			return 1, nil
		},
	})
}

func (r *Runtime) loadStorage() error {
	if r.opts.StorageFile == "" {
		return nil
	}
	b, err := os.ReadFile(r.opts.StorageFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	if err := json.Unmarshal(b, &r.storage); err != nil {
		return fmt.Errorf("storage %s: %w (move the file away to start empty)", r.opts.StorageFile, err)
	}
	return nil
}

// saveStorage writes the whole store atomically (temp file + rename).
func (r *Runtime) saveStorage() error {
	if r.opts.StorageFile == "" {
		return nil
	}
	b, err := json.MarshalIndent(r.storage, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(r.opts.StorageFile)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	tmp := r.opts.StorageFile + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("storage: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("storage: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	return os.Rename(tmp, r.opts.StorageFile)
}

func (r *Runtime) installConfiguration() {
	groups := map[string]bool{}
	for _, b := range r.bp.Manifest.Configuration {
		groups[b.Name] = true
	}
	group := func(s *lua.State, fn string) (string, error) {
		g, err := argString(s, 1, fn)
		if err != nil {
			return "", err
		}
		if !groups[g] {
			return "", fmt.Errorf("%s: the manifest declares no configuration group %q", fn, g)
		}
		return g, nil
	}
	r.setTable("configuration", fns{
		"read": func(s *lua.State) (int, error) {
			g, err := group(s, "configuration.read")
			if err != nil {
				return pushErr(s, err)
			}
			if err := s.Push(r.configValues(g)); err != nil {
				return pushErr(s, err)
			}
			s.PushNil()
			return 2, nil
		},
		"is_all_required_set": func(s *lua.State) (int, error) {
			g, err := group(s, "configuration.is_all_required_set")
			if err != nil {
				return 0, err
			}
			vals := r.configValues(g)
			for _, b := range r.bp.Manifest.Configuration {
				if b.Name != g {
					continue
				}
				for _, p := range b.Parameters {
					if _, set := vals[p.Name]; p.Required && !set {
						s.PushBool(false)
						return 1, nil
					}
				}
			}
			s.PushBool(true)
			return 1, nil
		},
		"after_write": func(s *lua.State) (int, error) {
			g, err := group(s, "configuration.after_write")
			if err != nil {
				return 0, err
			}
			if s.Type(2) != lua.TypeFunction {
				return 0, fmt.Errorf("bad argument #2 to 'configuration.after_write' (function expected, got %s)", s.Type(2))
			}
			s.SetTop(2)
			r.afterCfg[g] = append(r.afterCfg[g], s.Ref())
			return 0, nil
		},
	})
}

// configValues are the group's values: those given, then defaults.
func (r *Runtime) configValues(g string) map[string]any {
	out := map[string]any{}
	for _, b := range r.bp.Manifest.Configuration {
		if b.Name != g {
			continue
		}
		for _, p := range b.Parameters {
			if p.Default != nil {
				out[p.Name] = p.Default
			}
		}
	}
	for k, v := range r.opts.Config[g] {
		out[k] = v
	}
	return out
}
