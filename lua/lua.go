//go:build lua

package lua

/*
#cgo CFLAGS: -I/usr/include/lua5.3
#cgo LDFLAGS: -l:liblua5.3.a -lm -ldl
#include <stdlib.h>
#include <time.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

typedef struct {
	volatile int interrupt;  // set from any thread: stop the running call
	long long deadline_ns;   // CLOCK_MONOTONIC; 0 = none
	size_t mem_limit;        // bytes; 0 = none
	int handle;              // Go-side registry id of the state
} edk_ctl;

static edk_ctl *edk_getctl(lua_State *L) { return *(edk_ctl **)lua_getextraspace(L); }

static long long edk_now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

// The count hook is the watchdog: errors raised here unwind to the
// pcall that Go made, through C frames only.
static void edk_hook(lua_State *L, lua_Debug *ar) {
	(void)ar;
	edk_ctl *c = edk_getctl(L);
	if (c->interrupt) {
		luaL_error(L, "script interrupted");
	}
	if (c->deadline_ns && edk_now() > c->deadline_ns) {
		luaL_error(L, "script took too long (watchdog)");
	}
	if (c->mem_limit) {
		size_t used = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
		if (used > c->mem_limit) {
			lua_gc(L, LUA_GCCOLLECT, 0);
			used = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024;
			if (used > c->mem_limit) luaL_error(L, "script uses too much memory (limit %d KiB)", (int)(c->mem_limit / 1024));
		}
	}
}

static lua_State *edk_newstate(int handle, size_t mem_limit) {
	lua_State *L = luaL_newstate();
	if (L == NULL) return NULL;
	edk_ctl *c = calloc(1, sizeof(edk_ctl));
	if (c == NULL) { lua_close(L); return NULL; }
	c->handle = handle;
	c->mem_limit = mem_limit;
	*(edk_ctl **)lua_getextraspace(L) = c;
	lua_sethook(L, edk_hook, LUA_MASKCOUNT, 1000);
	return L;
}

static void edk_close(lua_State *L) {
	edk_ctl *c = edk_getctl(L);
	lua_close(L);
	free(c);
}

static int edk_handle(lua_State *L) { return edk_getctl(L)->handle; }
static void edk_interrupt(lua_State *L, int on) { edk_getctl(L)->interrupt = on; }
static void edk_deadline(lua_State *L, long long d) { edk_getctl(L)->deadline_ns = d; }
static long long edk_monotonic(void) { return edk_now(); }

extern int goLuaCall(lua_State *L, int handle, int id);

static int edk_trampoline(lua_State *L) {
	int id = (int)lua_tointeger(L, lua_upvalueindex(1));
	int n = goLuaCall(L, edk_handle(L), id);
	if (n < 0) return lua_error(L); // Go pushed the message
	return n;
}

static void edk_pushgofunc(lua_State *L, int id) {
	lua_pushinteger(L, id);
	lua_pushcclosure(L, edk_trampoline, 1);
}

static int edk_pcall(lua_State *L, int nargs, int nres) { return lua_pcall(L, nargs, nres, 0); }
static void edk_pop(lua_State *L, int n) { lua_pop(L, n); }
static void edk_newtable(lua_State *L) { lua_newtable(L); }
static lua_Integer edk_tointeger(lua_State *L, int i) { return lua_tointegerx(L, i, NULL); }
static lua_Number edk_tonumber(lua_State *L, int i) { return lua_tonumberx(L, i, NULL); }
static void edk_pushglobals(lua_State *L) { lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS); }
static int edk_load(lua_State *L, const char *buf, size_t n, const char *name) { return luaL_loadbufferx(L, buf, n, name, "t"); }
static int edk_ref(lua_State *L) { return luaL_ref(L, LUA_REGISTRYINDEX); }
static void edk_unref(lua_State *L, int r) { luaL_unref(L, LUA_REGISTRYINDEX, r); }
static void edk_pushref(lua_State *L, int r) { lua_rawgeti(L, LUA_REGISTRYINDEX, r); }
static int edk_expired(lua_State *L) {
	edk_ctl *c = edk_getctl(L);
	lua_pushboolean(L, c->interrupt || (c->deadline_ns && edk_now() > c->deadline_ns));
	return 1;
}

// pcall and xpcall must not swallow the watchdog's error, or a script
// that loops around a pcall would never stop: after a protected call
// fails, the wrapper re-raises when the deadline has passed.
static const char *edk_guard =
	"local expired, pcall, xpcall, pack, unpack, error = ...\n"
	"local function pass(ok, ...)\n"
	"  if not ok and expired() then error((...), 0) end\n"
	"  return ok, ...\n"
	"end\n"
	"_G.pcall = function(f, ...) return pass(pcall(f, ...)) end\n"
	"_G.xpcall = function(f, h, ...) return pass(xpcall(f, h, ...)) end\n";

static int edk_openlibs(lua_State *L) {
	luaL_openlibs(L);
	if (luaL_loadstring(L, edk_guard) != LUA_OK) return 1;
	lua_pushcfunction(L, edk_expired);
	lua_getglobal(L, "pcall");
	lua_getglobal(L, "xpcall");
	lua_pushnil(L);
	lua_pushnil(L);
	lua_getglobal(L, "error");
	return lua_pcall(L, 6, 0, 0) != LUA_OK;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"
)

// Available reports whether this binary was built with Lua (-tags lua).
const Available = true

// ErrNotBuilt is never returned by a build with Lua; it exists so that
// callers compile the same way with and without the tag.
var ErrNotBuilt = errors.New("lua: not built")

// Type is a Lua value type.
type Type int

// Lua value types, as lua.h numbers them.
const (
	TypeNone     Type = C.LUA_TNONE
	TypeNil      Type = C.LUA_TNIL
	TypeBoolean  Type = C.LUA_TBOOLEAN
	TypeLightUD  Type = C.LUA_TLIGHTUSERDATA
	TypeNumber   Type = C.LUA_TNUMBER
	TypeString   Type = C.LUA_TSTRING
	TypeTable    Type = C.LUA_TTABLE
	TypeFunction Type = C.LUA_TFUNCTION
	TypeUserdata Type = C.LUA_TUSERDATA
	TypeThread   Type = C.LUA_TTHREAD
)

func (t Type) String() string {
	switch t {
	case TypeNone:
		return "no value"
	case TypeNil:
		return "nil"
	case TypeBoolean:
		return "boolean"
	case TypeNumber:
		return "number"
	case TypeString:
		return "string"
	case TypeTable:
		return "table"
	case TypeFunction:
		return "function"
	case TypeThread:
		return "thread"
	default:
		return "userdata"
	}
}

// Func is a Go function callable from Lua. It reads its arguments at
// stack indexes 1..Top(), pushes its results and returns how many. An
// error is raised in Lua as a Lua error carrying its message.
type Func func(s *State) (int, error)

// Error is a Lua error that reached Go: a syntax error, a runtime error,
// or the watchdog stopping a call.
type Error struct {
	Message string
	Timeout bool // the watchdog stopped the call
}

func (e *Error) Error() string { return e.Message }

type shared struct {
	main      *C.lua_State
	funcs     []Func
	closed    bool
	depth     int           // nesting of Call, so only the outermost sets the deadline
	callErr   error         // a Go panic turned into a Lua error, kept for the report
	interrupt chan struct{} // closed by Close
}

// State is a Lua state, or one of its threads (coroutines) while a Go
// function is being called from it.
type State struct {
	l  *C.lua_State
	sh *shared
}

var (
	registryMu sync.Mutex
	registry   = map[int]*shared{}
	nextHandle = 1
)

// Options configures a new state.
type Options struct {
	// MemoryLimit bounds the memory the scripts may hold, in bytes
	// (checked by the watchdog hook); 0 means DefaultMemoryLimit.
	MemoryLimit int
}

// DefaultMemoryLimit is the memory a state may use unless told otherwise.
const DefaultMemoryLimit = 64 << 20

// NewState creates a Lua state with the standard libraries opened.
func NewState(opts Options) (*State, error) {
	if opts.MemoryLimit <= 0 {
		opts.MemoryLimit = DefaultMemoryLimit
	}
	registryMu.Lock()
	h := nextHandle
	nextHandle++
	sh := &shared{}
	registry[h] = sh
	registryMu.Unlock()
	L := C.edk_newstate(C.int(h), C.size_t(opts.MemoryLimit))
	if L == nil {
		registryMu.Lock()
		delete(registry, h)
		registryMu.Unlock()
		return nil, errors.New("lua: cannot create state (out of memory)")
	}
	sh.main = L
	s := &State{l: L, sh: sh}
	if C.edk_openlibs(L) != 0 {
		msg := s.errorMessage()
		s.Close()
		return nil, fmt.Errorf("lua: set up state: %s", msg)
	}
	return s, nil
}

// Close frees the state. The State must not be used afterwards.
func (s *State) Close() {
	if s.sh.closed {
		return
	}
	s.sh.closed = true
	h := int(C.edk_handle(s.sh.main))
	C.edk_close(s.sh.main)
	registryMu.Lock()
	delete(registry, h)
	registryMu.Unlock()
}

// Interrupt stops the call running in the state with a Lua error as soon
// as it executes Lua code (a Go function it called is not interrupted).
// It may be called from any goroutine; Call clears it.
func (s *State) Interrupt() { C.edk_interrupt(s.sh.main, 1) }

//export goLuaCall
func goLuaCall(L *C.lua_State, handle, id C.int) (n C.int) {
	registryMu.Lock()
	sh := registry[int(handle)]
	registryMu.Unlock()
	s := &State{l: L, sh: sh}
	if sh == nil || int(id) < 0 || int(id) >= len(sh.funcs) {
		s.PushString("edk: unknown Go function")
		return -1
	}
	defer func() {
		// A panicking Go function must not unwind through C frames:
		// turn it into a Lua error instead.
		if r := recover(); r != nil {
			s.PushString(fmt.Sprintf("internal error in Go function: %v", r))
			n = -1
		}
	}()
	k, err := sh.funcs[id](s)
	if err != nil {
		s.PushString(err.Error())
		return -1
	}
	return C.int(k)
}

// Load compiles a chunk of Lua source (binary chunks are refused) and
// pushes it as a function. name is used in error messages, e.g.
// "@main.lua".
func (s *State) Load(src []byte, name string) error {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var p *C.char
	if len(src) > 0 {
		p = (*C.char)(unsafe.Pointer(&src[0]))
	} else {
		p = (*C.char)(unsafe.Pointer(cname)) // any valid pointer; length 0
	}
	if rc := C.edk_load(s.l, p, C.size_t(len(src)), cname); rc != C.LUA_OK {
		msg := s.errorMessage()
		return &Error{Message: msg}
	}
	return nil
}

func (s *State) errorMessage() string {
	msg := "(error object is not a string)"
	if s.Type(-1) == TypeString || s.Type(-1) == TypeNumber {
		msg = s.ToString(-1)
	}
	s.Pop(1)
	return msg
}

// Call calls the function below nargs arguments on the stack, leaving
// nresults results (C.LUA_MULTRET = -1 for all). A timeout > 0 is the
// watchdog: the call is stopped with an error once it runs that long.
// Only the outermost Call sets the deadline; nested calls inherit it.
func (s *State) Call(nargs, nresults int, timeout time.Duration) error {
	sh := s.sh
	outer := sh.depth == 0
	if outer {
		C.edk_interrupt(sh.main, 0)
		if timeout > 0 {
			C.edk_deadline(sh.main, C.longlong(int64(C.edk_monotonic())+int64(timeout)))
		} else {
			C.edk_deadline(sh.main, 0)
		}
	}
	sh.depth++
	rc := C.edk_pcall(s.l, C.int(nargs), C.int(nresults))
	sh.depth--
	if outer {
		C.edk_deadline(sh.main, 0)
	}
	if rc != C.LUA_OK {
		msg := s.errorMessage()
		return &Error{Message: msg, Timeout: outer && timeout > 0 && containsWatchdog(msg)}
	}
	return nil
}

func containsWatchdog(msg string) bool {
	const w = "(watchdog)"
	for i := 0; i+len(w) <= len(msg); i++ {
		if msg[i:i+len(w)] == w {
			return true
		}
	}
	return false
}

// Top returns the index of the top element (the number of elements).
func (s *State) Top() int { return int(C.lua_gettop(s.l)) }

// SetTop sets the stack top, dropping or nil-filling elements.
func (s *State) SetTop(n int) { C.lua_settop(s.l, C.int(n)) }

// Pop removes n elements.
func (s *State) Pop(n int) { C.edk_pop(s.l, C.int(n)) }

// PushValue pushes a copy of the element at idx.
func (s *State) PushCopy(idx int) { C.lua_pushvalue(s.l, C.int(idx)) }

// Type returns the type of the element at idx.
func (s *State) Type(idx int) Type { return Type(C.lua_type(s.l, C.int(idx))) }

// PushNil pushes nil.
func (s *State) PushNil() { C.lua_pushnil(s.l) }

// PushBool pushes a boolean.
func (s *State) PushBool(b bool) {
	v := 0
	if b {
		v = 1
	}
	C.lua_pushboolean(s.l, C.int(v))
}

// PushInteger pushes an integer.
func (s *State) PushInteger(n int64) { C.lua_pushinteger(s.l, C.lua_Integer(n)) }

// PushNumber pushes a float.
func (s *State) PushNumber(f float64) { C.lua_pushnumber(s.l, C.lua_Number(f)) }

// PushString pushes a string (any bytes).
func (s *State) PushString(str string) {
	if len(str) == 0 {
		C.lua_pushlstring(s.l, nil, 0)
		return
	}
	C.lua_pushlstring(s.l, (*C.char)(unsafe.Pointer(unsafe.StringData(str))), C.size_t(len(str)))
}

// PushFunc pushes a Go function as a Lua function.
func (s *State) PushFunc(fn Func) {
	id := len(s.sh.funcs)
	s.sh.funcs = append(s.sh.funcs, fn)
	C.edk_pushgofunc(s.l, C.int(id))
}

// NewTable pushes a new empty table.
func (s *State) NewTable() { C.edk_newtable(s.l) }

// IsInteger reports whether the element at idx is an integer number.
func (s *State) IsInteger(idx int) bool { return C.lua_isinteger(s.l, C.int(idx)) != 0 }

// ToBool converts the element at idx as Lua does (nil and false are false).
func (s *State) ToBool(idx int) bool { return C.lua_toboolean(s.l, C.int(idx)) != 0 }

// ToInteger returns the element at idx as an integer (0 if it is not a
// number or a string convertible to one).
func (s *State) ToInteger(idx int) int64 { return int64(C.edk_tointeger(s.l, C.int(idx))) }

// ToNumber returns the element at idx as a float (0 if not convertible).
func (s *State) ToNumber(idx int) float64 { return float64(C.edk_tonumber(s.l, C.int(idx))) }

// ToString returns the string at idx. Numbers are formatted in Go, so the
// stack element is left as it is (lua_tolstring would change it).
func (s *State) ToString(idx int) string {
	switch s.Type(idx) {
	case TypeString:
		var n C.size_t
		p := C.lua_tolstring(s.l, C.int(idx), &n)
		return C.GoStringN(p, C.int(n))
	case TypeNumber:
		if s.IsInteger(idx) {
			return fmt.Sprint(s.ToInteger(idx))
		}
		return formatFloat(s.ToNumber(idx))
	}
	return ""
}

// abs turns a relative stack index into an absolute one.
func (s *State) abs(idx int) int {
	if idx < 0 && idx > int(C.LUA_REGISTRYINDEX) {
		return s.Top() + idx + 1
	}
	return idx
}

// RawGetField pushes t[key] without metamethods, t at idx.
func (s *State) RawGetField(idx int, key string) Type {
	idx = s.abs(idx)
	s.PushString(key)
	return Type(C.lua_rawget(s.l, C.int(idx)))
}

// RawSetField sets t[key] = top value without metamethods and pops it.
func (s *State) RawSetField(idx int, key string) {
	idx = s.abs(idx)
	s.PushString(key)
	C.lua_rotate(s.l, -2, 1) // key below value
	C.lua_rawset(s.l, C.int(idx))
}

// RawGetIndex pushes t[i], t at idx.
func (s *State) RawGetIndex(idx int, i int64) Type {
	return Type(C.lua_rawgeti(s.l, C.int(idx), C.lua_Integer(i)))
}

// RawSetIndex sets t[i] = top value and pops it.
func (s *State) RawSetIndex(idx int, i int64) {
	C.lua_rawseti(s.l, C.int(s.abs(idx)), C.lua_Integer(i))
}

// RawLen returns the raw length (#) of the table or string at idx.
func (s *State) RawLen(idx int) int { return int(C.lua_rawlen(s.l, C.int(idx))) }

// GetGlobal pushes the global name (raw access to _G).
func (s *State) GetGlobal(name string) Type {
	C.edk_pushglobals(s.l)
	t := s.RawGetField(-1, name)
	C.lua_rotate(s.l, -2, 1)
	s.Pop(1)
	return t
}

// SetGlobal pops the top value into the global name.
func (s *State) SetGlobal(name string) {
	C.edk_pushglobals(s.l)
	C.lua_rotate(s.l, -2, 1) // globals below value
	s.RawSetField(-2, name)
	s.Pop(1)
}

// Next pops a key and pushes the next key/value pair of the table at idx,
// returning false (and pushing nothing) at the end. Start with PushNil.
// The keys must not be changed while iterating.
func (s *State) Next(idx int) bool { return C.lua_next(s.l, C.int(s.abs(idx))) != 0 }

// Ref pops the top value and keeps it in the registry, returning a
// reference for PushRef.
func (s *State) Ref() int { return int(C.edk_ref(s.l)) }

// Unref releases a reference.
func (s *State) Unref(r int) { C.edk_unref(s.l, C.int(r)) }

// PushRef pushes the value kept under r.
func (s *State) PushRef(r int) { C.edk_pushref(s.l, C.int(r)) }

// MemoryUsed returns the bytes the state holds.
func (s *State) MemoryUsed() int {
	return int(C.lua_gc(s.l, C.LUA_GCCOUNT, 0))*1024 + int(C.lua_gc(s.l, C.LUA_GCCOUNTB, 0))
}

// ToPointer identifies a table or function at idx (for cycle detection).
func (s *State) ToPointer(idx int) uintptr { return uintptr(C.lua_topointer(s.l, C.int(idx))) }
