//go:build lua

package luarun

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"

	candrv "github.com/edk-go/edk/driver/can"
	"github.com/edk-go/edk/lua"
)

// Lua values of can.DROP_OLDEST and can.DROP_NEWEST.
const (
	canDropOldest = "drop_oldest"
	canDropNewest = "drop_newest"
)

// canMaxQueue bounds client:queue's size per id.
const canMaxQueue = 10000

// canBus is one mapped CAN port, open while the runtime runs: a reader
// goroutine hands each frame to the monitors and queues made on it.
type canBus struct {
	name   string
	bus    candrv.Bus
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	subs map[*canSub]bool
	err  error // why the reader stopped; the bus is then dead
}

// canSub is a monitor (the latest data per id) or a queue (up to size
// frames per id).
type canSub struct {
	bus        *canBus
	ids        map[uint32]bool
	queue      bool
	size       int
	dropNewest bool
	latest     map[uint32]string
	queued     map[uint32][]string
	drops      map[uint32]int64
}

// Close unsubscribes (the Lua object was collected).
func (c *canSub) Close() error {
	c.bus.mu.Lock()
	defer c.bus.mu.Unlock()
	delete(c.bus.subs, c)
	return nil
}

// canClient is what can.new returns; its bus outlives it.
type canClient struct{ b *canBus }

func (b *canBus) read(ctx context.Context, r *Runtime) {
	defer close(b.done)
	for {
		f, err := b.bus.Receive(ctx)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("CAN bus stopped", "port", b.name, "err", err)
				b.mu.Lock()
				b.err = err
				b.mu.Unlock()
			}
			return
		}
		if f.Remote {
			continue // no data for the script
		}
		data := string(f.Data)
		b.mu.Lock()
		for sub := range b.subs {
			if sub.ids[f.ID] {
				sub.add(f.ID, data)
			}
		}
		b.mu.Unlock()
	}
}

func (c *canSub) add(id uint32, data string) {
	if !c.queue {
		c.latest[id] = data
		return
	}
	q := c.queued[id]
	if len(q) >= c.size {
		c.drops[id]++
		if c.dropNewest {
			return
		}
		q = q[1:]
	}
	c.queued[id] = append(q, data)
}

func (b *canBus) failed() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return fmt.Errorf("CAN port %s: %w", b.name, b.err)
	}
	return nil
}

func (b *canBus) close() {
	b.cancel()
	<-b.done
	_ = b.bus.Close()
}

// openCAN returns the port's bus, opening it on first use and again
// after it failed (an adapter plugged back in).
func (r *Runtime) openCAN(name string, p CANPort) (*canBus, error) {
	if b := r.canBuses[name]; b != nil {
		if b.failed() == nil {
			return b, nil
		}
		b.close()
		delete(r.canBuses, name)
	}
	var bus candrv.Bus
	var err error
	switch p.Driver {
	case "socketcan":
		bus, err = candrv.OpenSocketCAN(p.Device)
	default:
		ctx, cancel := context.WithTimeout(r.ctx, r.opts.CallTimeout)
		bus, err = candrv.OpenSLCAN(ctx, candrv.SLCANConfig{Device: p.Device, Bitrate: p.Bitrate, Baud: p.Baud, Logger: r.log.With("can", name)})
		cancel()
	}
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &canBus{name: name, bus: bus, cancel: cancel, done: make(chan struct{}), subs: map[*canSub]bool{}}
	go b.read(ctx, r)
	if r.canBuses == nil {
		r.canBuses = map[string]*canBus{}
	}
	r.canBuses[name] = b
	return b, nil
}

// closeCAN stops every bus's reader and closes the bus.
func (r *Runtime) closeCAN() {
	for name, b := range r.canBuses {
		b.close()
		delete(r.canBuses, name)
	}
}

// canID reads a CAN id argument: a non-number is a Lua error (a bug in
// the script), a number that is no CAN id an error string.
func canID(s *lua.State, i int, fn string) (uint32, error, error) {
	if s.Type(i) != lua.TypeNumber {
		return 0, nil, fmt.Errorf("bad argument #%d to '%s' (number expected, got %s)", i, fn, s.Type(i))
	}
	if !s.IsInteger(i) {
		f := s.ToNumber(i)
		if f != float64(int64(f)) {
			return 0, fmt.Errorf("%s: CAN id %v is not an integer", fn, f), nil
		}
	}
	return checkCANID(fn, s.ToInteger(i))
}

func checkCANID(fn string, id int64) (uint32, error, error) {
	if id < 0 || id > candrv.MaxExtendedID {
		return 0, fmt.Errorf("%s: CAN id %d out of range 0..0x%X", fn, id, candrv.MaxExtendedID), nil
	}
	return uint32(id), nil, nil
}

// canIDs reads a list of CAN ids at i.
func canIDs(s *lua.State, i int, fn string) ([]uint32, error, error) {
	if s.Type(i) != lua.TypeTable {
		return nil, nil, fmt.Errorf("bad argument #%d to '%s' (table expected, got %s)", i, fn, s.Type(i))
	}
	v, err := s.ToValue(i)
	if err != nil {
		return nil, fmt.Errorf("%s: ids: %w", fn, err), nil
	}
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return nil, fmt.Errorf("%s: ids must be a non-empty list of CAN ids", fn), nil
	}
	ids := make([]uint32, len(list))
	for k, x := range list {
		var n int64
		switch x := x.(type) {
		case int64:
			n = x
		case float64:
			if x != float64(int64(x)) {
				return nil, fmt.Errorf("%s: ids[%d] = %v is not an integer", fn, k+1, x), nil
			}
			n = int64(x)
		default:
			return nil, fmt.Errorf("%s: ids[%d] is a %T, not a CAN id", fn, k+1, x), nil
		}
		id, bad, _ := checkCANID(fn, n)
		if bad != nil {
			return nil, fmt.Errorf("%s (ids[%d])", bad, k+1), nil
		}
		ids[k] = id
	}
	return ids, nil, nil
}

func (r *Runtime) installCAN() {
	if r.bp.APIVersion() != 3 {
		return // v1's can stays "not available": no v1 CAN reference
	}
	newSub := func(s *lua.State, c *canClient, fn string, queue bool) (int, error) {
		ids, bad, err := canIDs(s, 2, fn)
		if err != nil {
			return 0, err
		}
		if bad != nil {
			return pushErr(s, bad)
		}
		sub := &canSub{bus: c.b, ids: map[uint32]bool{}, queue: queue}
		for _, id := range ids {
			sub.ids[id] = true
		}
		if queue {
			size, err := argInt(s, 3, fn)
			if err != nil {
				return 0, err
			}
			if size < 1 || size > canMaxQueue {
				return pushErr(s, fmt.Errorf("%s: size %d out of range 1..%d", fn, size, canMaxQueue))
			}
			sub.size = int(size)
			switch policy := s.ToString(4); {
			case s.Type(4) == lua.TypeNil || policy == canDropOldest:
			case s.Type(4) == lua.TypeString && policy == canDropNewest:
				sub.dropNewest = true
			default:
				return pushErr(s, fmt.Errorf("%s: policy must be can.DROP_OLDEST or can.DROP_NEWEST, got %s", fn, s.ToString(4)))
			}
			sub.queued, sub.drops = map[uint32][]string{}, map[uint32]int64{}
		} else {
			sub.latest = map[uint32]string{}
		}
		if err := c.b.failed(); err != nil {
			return pushErr(s, err)
		}
		c.b.mu.Lock()
		c.b.subs[sub] = true
		c.b.mu.Unlock()
		if queue {
			r.pushObject("can_queue", sub)
		} else {
			r.pushObject("can_monitor", sub)
		}
		return 1, nil
	}
	r.class("can", fns{
		"send": func(s *lua.State) (int, error) {
			c, err := self[*canClient](r, s, "send")
			if err != nil {
				return 0, err
			}
			id, bad, err := canID(s, 2, "send")
			if err != nil {
				return 0, err
			}
			data, err := argString(s, 3, "send")
			if err != nil {
				return 0, err
			}
			if bad == nil && len(data) > candrv.MaxDataLen {
				bad = fmt.Errorf("send: data is %d bytes, a classic CAN frame carries at most %d", len(data), candrv.MaxDataLen)
			}
			if bad == nil {
				bad = c.b.failed()
			}
			if bad == nil {
				var f candrv.Frame
				if f, bad = candrv.NewFrame(id, []byte(data)); bad == nil {
					ctx, cancel := context.WithTimeout(r.ctx, r.opts.CallTimeout)
					bad = c.b.bus.Send(ctx, f)
					cancel()
				}
			}
			if bad != nil {
				s.PushString(bad.Error())
				return 1, nil
			}
			return 0, nil
		},
		"monitor": func(s *lua.State) (int, error) {
			c, err := self[*canClient](r, s, "monitor")
			if err != nil {
				return 0, err
			}
			return newSub(s, c, "monitor", false)
		},
		"queue": func(s *lua.State) (int, error) {
			c, err := self[*canClient](r, s, "queue")
			if err != nil {
				return 0, err
			}
			return newSub(s, c, "queue", true)
		},
	}, false)
	r.class("can_monitor", fns{
		// pop: data[i] is the latest data of ids[i] since the last pop,
		// nil when none came (or ids[i] is not monitored).
		"pop": func(s *lua.State) (int, error) {
			m, err := self[*canSub](r, s, "pop")
			if err != nil {
				return 0, err
			}
			ids, bad, err := canIDs(s, 2, "pop")
			if err != nil {
				return 0, err
			}
			if bad == nil {
				bad = m.bus.failed()
			}
			if bad != nil {
				return pushErr(s, bad)
			}
			s.NewTable()
			m.bus.mu.Lock()
			defer m.bus.mu.Unlock()
			for k, id := range ids {
				if data, ok := m.latest[id]; ok {
					s.PushString(data)
					s.RawSetIndex(-2, int64(k+1))
					delete(m.latest, id)
				}
			}
			return 1, nil
		},
	}, true)
	queueID := func(s *lua.State, fn string) (*canSub, uint32, int, error) {
		q, err := self[*canSub](r, s, fn)
		if err != nil {
			return nil, 0, 0, err
		}
		id, bad, err := canID(s, 2, fn)
		if err != nil {
			return nil, 0, 0, err
		}
		if bad == nil && !q.ids[id] {
			bad = fmt.Errorf("%s: id 0x%X is not in this queue (%s)", fn, id, idList(q.ids))
		}
		if bad == nil {
			bad = q.bus.failed()
		}
		if bad != nil {
			n, _ := pushErr(s, bad)
			return nil, 0, n, nil
		}
		return q, id, 0, nil
	}
	r.class("can_queue", fns{
		// pop: every data of id since the last pop, oldest first.
		"pop": func(s *lua.State) (int, error) {
			q, id, n, err := queueID(s, "pop")
			if q == nil {
				return n, err
			}
			q.bus.mu.Lock()
			list := q.queued[id]
			delete(q.queued, id)
			q.bus.mu.Unlock()
			s.NewTable()
			for k, data := range list {
				s.PushString(data)
				s.RawSetIndex(-2, int64(k+1))
			}
			return 1, nil
		},
		"drops_count": func(s *lua.State) (int, error) {
			q, id, n, err := queueID(s, "drops_count")
			if q == nil {
				return n, err
			}
			q.bus.mu.Lock()
			drops := q.drops[id]
			q.bus.mu.Unlock()
			s.PushInteger(drops)
			return 1, nil
		},
	}, true)
	r.setTable("can", fns{
		"new": func(s *lua.State) (int, error) {
			uri, err := argString(s, 1, "can.new")
			if err != nil {
				return 0, err
			}
			u, err := url.Parse(uri)
			if err != nil || u.Scheme != "port" {
				return pushErr(s, fmt.Errorf("can.new: connection URI %q: want port://NAME", uri))
			}
			name := u.Host + u.Opaque
			p, ok := r.opts.CANPorts[name]
			if !ok {
				return pushErr(s, fmt.Errorf("can.new: UCM port %q is not available on this host (map it to a CAN bus with --port %s=socketcan:can0 or --port %s=slcan:/dev/ttyACM0?bitrate=500000)", name, name, name))
			}
			b, err := r.openCAN(name, p)
			if err != nil {
				return pushErr(s, fmt.Errorf("can.new: %w", err))
			}
			r.pushObject("can", &canClient{b: b})
			return 1, nil
		},
	})
	s := r.s
	s.GetGlobal("can")
	s.PushString(canDropOldest)
	s.RawSetField(-2, "DROP_OLDEST")
	s.PushString(canDropNewest)
	s.RawSetField(-2, "DROP_NEWEST")
	s.Pop(1)
}

func idList(ids map[uint32]bool) string {
	l := make([]string, 0, len(ids))
	for id := range ids {
		l = append(l, fmt.Sprintf("0x%X", id))
	}
	sort.Strings(l)
	return strings.Join(l, ", ")
}
