package modbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	mb "github.com/simonvetter/modbus"

	"github.com/edk-go/edk/driver"
	"github.com/edk-go/edk/internal/ratelog"
)

// Default reconnect backoff bounds.
const (
	DefaultBackoffMin = 500 * time.Millisecond
	DefaultBackoffMax = 30 * time.Second
)

// DefaultLogEvery is how often a failure that lasts (a device that is down,
// a register it refuses) writes a summary line to the log.
const DefaultLogEvery = ratelog.DefaultSummaryEvery

// Options tune a Driver. The zero value is ready to use.
type Options struct {
	// Logger receives connection changes and failed reads; nil is silent.
	// A device that is down is logged when it stops answering, then once
	// every LogEvery with the attempts so far, the next retry and the latest
	// error, and once when it answers again; a group of reads the device
	// refuses (a Modbus exception) the same way.
	Logger *slog.Logger
	// LogEvery spaces out the summary lines of a lasting failure; zero
	// means DefaultLogEvery.
	LogEvery time.Duration
	// Backoff spaces out attempts to reconnect after a failure. nil means
	// exponential from DefaultBackoffMin to DefaultBackoffMax with ±50%
	// jitter. Tests pass backoff.NewConstantBackOff(time.Millisecond).
	Backoff backoff.BackOff
	// NoMerge reads every value with its own request: for devices that
	// refuse reads spanning several values, and to measure merging.
	NoMerge bool
}

// Stats counts the driver's requests since New.
type Stats struct {
	Requests     uint64 // read requests answered or failed
	Registers    uint64 // registers read successfully
	Bits         uint64 // coils and discrete inputs read successfully
	Writes       uint64 // write requests
	Errors       uint64 // failed requests (exceptions included)
	Exceptions   uint64 // Modbus exception answers
	Connects     uint64 // successful connects
	DialFailures uint64 // failed connect attempts
}

// Driver reads and writes one Modbus device (or several units behind one
// gateway or serial line) as described by a register map. It connects on
// first use and reconnects with backoff after a failure; it owns no
// goroutine. It is safe for concurrent use: requests are serialized, as the
// Modbus link requires.
type Driver struct {
	m    *Map
	plan Plan
	log  *slog.Logger

	mu       sync.Mutex
	client   *mb.ModbusClient
	bo       backoff.BackOff
	nextDial time.Time
	lastErr  error
	closed   bool
	stats    Stats
	groups   []*pollGroup
	snapshot map[string]any // latest telemetry values and alert bits
	cmds     map[string]*Command

	link  *ratelog.Outage // the device not answering at all
	props *ratelog.Outage // property reads it refuses
	logs  bool            // a logger was given
}

type pollGroup struct {
	Group
	next   time.Time
	failed bool
	reads  *ratelog.Outage // reads of the group the device refuses
}

var _ driver.FailureLogger = (*Driver)(nil)

// New makes a driver for the map. It does not connect: the first read or
// write does (call Connect to fail early).
func New(m *Map, opts Options) (*Driver, error) {
	if m == nil {
		return nil, errors.New("modbus: nil register map")
	}
	if err := parseAddress(&Connection{Address: m.Connection.Address}); err != nil {
		return nil, fmt.Errorf("modbus: %w", err)
	}
	bo := opts.Backoff
	if bo == nil {
		e := backoff.NewExponentialBackOff()
		e.InitialInterval, e.MaxInterval = DefaultBackoffMin, DefaultBackoffMax
		e.RandomizationFactor, e.MaxElapsedTime = 0.5, 0
		bo = e
	}
	bo.Reset()
	lg := opts.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	d := &Driver{
		m: m, plan: PlanReads(m, !opts.NoMerge), bo: bo, snapshot: map[string]any{}, cmds: map[string]*Command{},
		log: lg.With("modbus", redactAddress(m.Connection.Address)),
	}
	d.logs = opts.Logger != nil
	d.link = ratelog.NewOutage(d.log, opts.LogEvery, nil)
	d.props = ratelog.NewOutage(d.log, opts.LogEvery, nil)
	for _, g := range d.plan.Telemetry {
		d.groups = append(d.groups, &pollGroup{Group: g, reads: ratelog.NewOutage(d.log, opts.LogEvery, nil)})
	}
	for i := range m.Commands {
		d.cmds[m.Commands[i].Name] = &m.Commands[i]
	}
	return d, nil
}

func redactAddress(a string) string {
	if i := strings.IndexByte(a, '@'); i >= 0 { // no credentials in Modbus URLs, but never log them
		if j := strings.Index(a, "://"); j >= 0 && j < i {
			return a[:j+3] + "…" + a[i:]
		}
	}
	return a
}

// LogsFailures reports whether the driver logs its failed reads (it was
// given Options.Logger); it implements driver.FailureLogger, so that the
// device runtime does not log them a second time.
func (d *Driver) LogsFailures() bool { return d.logs }

// Map returns the driver's register map.
func (d *Driver) Map() *Map { return d.m }

// Plan returns the reads the driver makes.
func (d *Driver) Plan() Plan { return d.plan }

// Stats returns the request counters.
func (d *Driver) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// Interval is the shortest telemetry poll interval: how often to call
// Telemetry. It is the map's default poll when there is no telemetry.
func (d *Driver) Interval() time.Duration {
	if len(d.groups) == 0 {
		return d.m.Connection.Poll
	}
	return d.groups[0].Poll
}

// Connect opens the connection now (if it is not open), ignoring the
// backoff. Reads and writes connect by themselves; Connect is for failing
// early, e.g. in a command-line tool.
func (d *Driver) Connect(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nextDial = time.Time{}
	_, err := d.conn(ctx)
	return err
}

// Close closes the connection. Later calls return ErrClosed.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	return d.disconnect()
}

func (d *Driver) disconnect() error {
	if d.client == nil {
		return nil
	}
	err := d.client.Close()
	d.client = nil
	return err
}

// conn returns the open client, connecting when the backoff allows.
func (d *Driver) conn(ctx context.Context) (*mb.ModbusClient, error) {
	if d.closed {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if d.client != nil {
		return d.client, nil
	}
	if now := time.Now(); now.Before(d.nextDial) {
		retryIn := d.nextDial.Sub(now).Round(time.Millisecond)
		// The backoff spaces attempts up to DefaultBackoffMax apart, longer
		// than the summary cadence: the polls in between keep it.
		d.link.Summary("cannot connect to the device; retrying", "err", d.lastErr, "retry_in", retryIn)
		return nil, fmt.Errorf("%w (next attempt in %s; last error: %v)", ErrNotConnected, retryIn, d.lastErr)
	}
	c, err := dial(d.m.Connection)
	if err == nil {
		err = c.Open()
	}
	if err != nil {
		d.stats.DialFailures++
		wait := d.bo.NextBackOff()
		if wait == backoff.Stop {
			wait = DefaultBackoffMax
		}
		d.nextDial = time.Now().Add(wait)
		err = fmt.Errorf("modbus: connect to %s: %w (check the address, and that the device is on and reachable)", redactAddress(d.m.Connection.Address), err)
		d.link.Failed("cannot connect to the device; retrying", "err", err, "retry_in", wait.Round(time.Millisecond))
		d.lastErr = err
		return nil, err
	}
	d.stats.Connects++
	// The recovery is logged at the first answer, not here: a gateway can
	// take the connection while the device behind it stays silent.
	d.bo.Reset()
	d.client, d.lastErr = c, nil
	return c, nil
}

var discardLog = log.New(io.Discard, "", 0)

func dial(c Connection) (*mb.ModbusClient, error) {
	cfg := &mb.ClientConfiguration{URL: c.Address, Timeout: c.Timeout, Logger: discardLog}
	if i := strings.Index(cfg.URL, "://"); i > 0 {
		// parseAddress accepts RTU:// (url.Parse folds the scheme), the library only rtu://
		cfg.URL = strings.ToLower(cfg.URL[:i]) + cfg.URL[i:]
	}
	if strings.HasPrefix(cfg.URL, "rtu://") {
		cc := c
		if err := parseAddress(&cc); err != nil {
			return nil, err
		}
		cfg.URL = "rtu://" + strings.SplitN(strings.TrimPrefix(cfg.URL, "rtu://"), "?", 2)[0]
		cfg.Speed, cfg.DataBits, cfg.Parity, cfg.StopBits = cc.Baud, cc.DataBits, cc.Parity, cc.StopBits
	} else {
		// parseAddress accepts tcp://host:502/, the library would dial "502/"
		cfg.URL = strings.TrimRight(cfg.URL, "/")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	return mb.NewClient(cfg)
}

// failed records a failed request: an exception keeps the link, anything
// else (timeout, broken connection, garbled answer) closes it so that the
// next request starts on a fresh one.
func (d *Driver) failed(err error) {
	d.stats.Errors++
	if IsException(err) {
		d.stats.Exceptions++
		d.answered()
		return
	}
	d.link.Failed("the device does not answer; reconnecting", "err", err)
	d.disconnect()
	d.lastErr = err
	d.nextDial = time.Time{} // the first reconnect is immediate, the backoff spaces out the next ones
}

// answered ends an outage of the link: the device answered a request.
func (d *Driver) answered() {
	d.link.Recovered("the device answers again")
}

// readRegisters reads raw registers (or bits, as 0/1 words, for a bit table).
func (d *Driver) read(ctx context.Context, unit uint8, t Table, start, count uint16) ([]uint16, error) {
	c, err := d.conn(ctx)
	if err != nil {
		return nil, err
	}
	c.SetUnitId(unit)
	d.stats.Requests++
	var words []uint16
	switch t {
	case Holding, Input:
		rt := mb.HOLDING_REGISTER
		if t == Input {
			rt = mb.INPUT_REGISTER
		}
		words, err = c.ReadRegisters(start, count, rt)
		if err == nil {
			d.stats.Registers += uint64(count)
		}
	case Coil, DiscreteInput:
		var bits []bool
		if t == Coil {
			bits, err = c.ReadCoils(start, count)
		} else {
			bits, err = c.ReadDiscreteInputs(start, count)
		}
		if err == nil {
			d.stats.Bits += uint64(count)
			words = make([]uint16, len(bits))
			for i, b := range bits {
				if b {
					words[i] = 1
				}
			}
		}
	default:
		err = fmt.Errorf("unknown table %v", t)
	}
	if err == nil && len(words) != int(count) {
		err = fmt.Errorf("got %d values, asked for %d", len(words), count)
	}
	if err != nil {
		err = &RequestError{Op: "read", Unit: unit, Table: t, Register: start, Count: count, Err: err}
		d.failed(err)
		return nil, err
	}
	d.answered()
	return words, nil
}

// ReadRegisters reads count raw registers of a table (for coils and
// discrete inputs, each word is 0 or 1). It is the building block of
// command-line probing; decode with Value.Decode.
func (d *Driver) ReadRegisters(ctx context.Context, unit uint8, t Table, start, count uint16) ([]uint16, error) {
	limit := d.m.Connection.MaxRegisters
	if t.IsBits() {
		limit = d.m.Connection.MaxBits
	}
	if limit == 0 {
		limit = DefaultMaxRegisters
		if t.IsBits() {
			limit = DefaultMaxBits
		}
	}
	if count == 0 || count > limit || int(start)+int(count) > 65536 {
		return nil, fmt.Errorf("modbus: cannot read %d %s values from %d: one request reads 1..%d, up to address 65535", count, t, start, limit)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.read(ctx, unit, t, start, count)
}

// execute runs the reads and stores the decoded values in out; values of
// failed reads are deleted from out.
func (d *Driver) execute(ctx context.Context, reads []Read, out map[string]any) error {
	var errs []error
	for i, r := range reads {
		words, err := d.read(ctx, r.Unit, r.Table, r.Start, r.Count)
		if err != nil {
			errs = append(errs, err)
			for _, v := range r.values {
				delete(out, v.Name)
			}
			var re *RequestError
			if !errors.As(err, &re) || !re.Exception() {
				// the link is gone: the remaining reads would fail the same way
				for _, r := range reads[i+1:] {
					for _, v := range r.values {
						delete(out, v.Name)
					}
				}
				break
			}
			continue
		}
		for _, v := range r.values {
			off := int(v.Register) - int(r.Start)
			x, ok, err := v.Decode(words[off : off+int(v.Count())])
			if err != nil || !ok {
				delete(out, v.Name)
				continue
			}
			out[v.Name] = x
		}
	}
	return errors.Join(errs...)
}

// Groups returns the telemetry poll intervals, shortest first.
func (d *Driver) Groups() []time.Duration {
	out := make([]time.Duration, len(d.groups))
	for i, g := range d.groups {
		out[i] = g.Poll
	}
	return out
}

// Poll reads the telemetry group of one poll interval now and returns its
// values with the alerts active after the read (evaluated on the latest
// values of every group). A failed read leaves its values out, adds the
// communication_error alert and returns an error for the caller to log.
func (d *Driver) Poll(ctx context.Context, interval time.Duration) (driver.Reading, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := slices.IndexFunc(d.groups, func(g *pollGroup) bool { return g.Poll == interval })
	if i < 0 {
		return driver.Reading{}, fmt.Errorf("modbus: no telemetry polled every %s (groups: %v)", interval, d.Groups())
	}
	g := d.groups[i]
	err := d.pollGroup(ctx, g)
	r := driver.Reading{Values: map[string]any{}, Alerts: d.alerts()}
	for _, rd := range g.Reads {
		for _, v := range rd.values {
			if x, ok := d.snapshot[v.Name]; ok && !strings.HasPrefix(v.Name, "alert:") {
				r.Values[v.Name] = x
			}
		}
	}
	return r, err
}

func (d *Driver) pollGroup(ctx context.Context, g *pollGroup) error {
	g.next = time.Now().Add(g.Poll)
	err := d.execute(ctx, g.Reads, d.snapshot)
	g.failed = err != nil
	d.logReads(g.reads, "telemetry", err, "poll", g.Poll)
	return err
}

// logReads logs the reads of a group through its outage. A device that is
// down fails every read: the link's outage tells about that once, so only
// reads the device refused (exceptions) are logged here.
func (d *Driver) logReads(o *ratelog.Outage, what string, err error, attrs ...any) {
	switch {
	case err == nil:
		o.Recovered(what+" reads work again", attrs...)
	case IsException(err): // errors.Is looks into the errors execute joined
		o.Failed(what+" read refused by the device", append(attrs, "err", err)...)
	}
}

// Telemetry polls every group that is due (and every group whose last
// read failed, and all of them after a command wrote) and returns the latest
// value of every telemetry attribute and the active alerts. It implements
// driver.Driver: call it every Interval.
func (d *Driver) Telemetry(ctx context.Context) (driver.Reading, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	// a group is due half the shortest interval early, so that a caller's
	// ticker that fires a little early does not skip a round
	now := time.Now().Add(d.Interval() / 2)
	var errs []error
	for _, g := range d.groups {
		if !now.Before(g.next) || g.failed {
			if err := d.pollGroup(ctx, g); err != nil {
				errs = append(errs, err)
			}
		}
	}
	r := driver.Reading{Values: make(map[string]any, len(d.snapshot)), Alerts: d.alerts()}
	for k, v := range d.snapshot {
		if !strings.HasPrefix(k, "alert:") {
			r.Values[k] = v
		}
	}
	return r, errors.Join(errs...)
}

// alerts evaluates the alerts on the snapshot.
func (d *Driver) alerts() []string {
	out := []string{}
	for _, a := range d.m.Alerts {
		switch {
		case a.expr != nil:
			if a.expr.eval(d.snapshot) {
				out = append(out, a.Name)
			}
		case a.Source != nil:
			if b, _ := d.snapshot[a.Source.Name].(bool); b {
				out = append(out, a.Name)
			}
		}
	}
	for _, g := range d.groups {
		if g.failed {
			out = append(out, driver.CommunicationError)
			break
		}
	}
	slices.Sort(out)
	return out
}

// Properties reads every property. On a failed read it returns the
// properties it could read and the error.
func (d *Driver) Properties(ctx context.Context) (map[string]any, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]any{}
	err := d.execute(ctx, d.plan.Properties.Reads, out)
	d.logReads(d.props, "property", err)
	return out, err
}

// Commands lists the commands of the map, sorted.
func (d *Driver) Commands() []string {
	return slices.Sorted(maps.Keys(d.cmds))
}

// Execute checks the arguments of a command and makes its writes, in the
// order of the map. Every argument is checked and every value encoded
// before the first write, so a bad argument writes nothing. The payload
// lists the writes: [{"table", "register", "raw"}].
func (d *Driver) Execute(ctx context.Context, name string, args map[string]any) (map[string]any, error) {
	c, ok := d.cmds[name]
	if !ok {
		return nil, fmt.Errorf("%w %q; this device handles: %s", ErrUnknownCommand, name, strings.Join(d.Commands(), ", "))
	}
	vals := map[string]any{}
	for _, a := range c.Arguments {
		v, err := a.value(args)
		if err != nil {
			return nil, &ArgumentError{Command: name, Argument: a.Name, Problem: err.Error()}
		}
		if v != nil {
			vals[a.Name] = v
		}
	}
	for k := range args {
		if !slices.ContainsFunc(c.Arguments, func(a Argument) bool { return a.Name == k }) {
			names := make([]string, len(c.Arguments))
			for i, a := range c.Arguments {
				names[i] = a.Name
			}
			return nil, &ArgumentError{Command: name, Argument: k, Problem: fmt.Sprintf("unknown argument; %s takes: %s", name, strings.Join(names, ", "))}
		}
	}
	type op struct {
		w     *Write
		words []uint16
		bit   bool
	}
	var ops []op
	for i := range c.Writes {
		w := &c.Writes[i]
		v := w.Const
		if w.Argument != "" {
			v = vals[w.Argument]
			if v == nil {
				continue // optional argument not given: skip its write
			}
		}
		if b, isBool := v.(bool); isBool {
			ops = append(ops, op{w: w, bit: b})
			continue
		}
		words, err := w.encode(v.(float64))
		if err != nil {
			return nil, &ArgumentError{Command: name, Argument: w.Argument, Problem: err.Error()}
		}
		ops = append(ops, op{w: w, words: words})
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var done []any
	for _, o := range ops {
		cl, err := d.conn(ctx)
		if err != nil {
			return nil, fmt.Errorf("command %q: %w", name, err)
		}
		cl.SetUnitId(o.w.Unit)
		d.stats.Writes++
		var raw any
		switch {
		case o.w.Table == Coil:
			err, raw = cl.WriteCoil(o.w.Register, o.bit), o.bit
		case len(o.words) == 1:
			err, raw = cl.WriteRegister(o.w.Register, o.words[0]), ints(o.words)
		default:
			err, raw = cl.WriteRegisters(o.w.Register, o.words), ints(o.words)
		}
		if err == nil {
			d.answered()
		}
		if err != nil {
			err = &RequestError{Op: "write", Unit: o.w.Unit, Table: o.w.Table, Register: o.w.Register, Count: o.w.Count(), Err: err}
			d.failed(err)
			if len(done) > 0 {
				return nil, fmt.Errorf("command %q: %w (%d earlier write(s) of this command went through)", name, err, len(done))
			}
			return nil, fmt.Errorf("command %q: %w", name, err)
		}
		done = append(done, map[string]any{"table": o.w.Table.String(), "register": int(o.w.Register), "raw": raw})
	}
	for _, g := range d.groups {
		g.next = time.Time{} // the next Telemetry shows what the write changed
	}
	return map[string]any{"writes": done}, nil
}

func ints(words []uint16) []int {
	out := make([]int, len(words))
	for i, w := range words {
		out[i] = int(w)
	}
	return out
}
