package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/edk-go/edk/driver/modbus"
	"github.com/edk-go/edk/driver/modbus/modbussim"
)

func runModbus(ctx context.Context, e *env, args []string) error {
	return dispatch(ctx, e, "modbus", []subcommand{
		{"read", "read registers and decode them", runModbusRead},
		{"scan", "find which registers answer", runModbusScan},
	}, args)
}

// modbusFlags are the connection flags of read and scan.
type modbusFlags struct {
	address string
	unit    uint
	table   string
}

func (m *modbusFlags) register(fsFlags interface {
	StringVar(*string, string, string, string)
	UintVar(*uint, string, uint, string)
}) {
	fsFlags.StringVar(&m.address, "address", "tcp://127.0.0.1:502", "the device: tcp://host:port, rtuovertcp://host:port or rtu:///dev/ttyUSB0?baud=9600&parity=N&stop_bits=1")
	fsFlags.UintVar(&m.unit, "unit", 1, "Modbus unit id (slave address)")
	fsFlags.StringVar(&m.table, "table", "holding", "register table: holding, input, coil or discrete")
}

// open connects to the device in the flags.
func (m *modbusFlags) open(ctx context.Context) (*modbus.Driver, modbus.Table, error) {
	table, err := modbus.ParseTable(m.table)
	if err != nil {
		return nil, 0, usagef("--table: %v", err)
	}
	if m.unit > 255 {
		return nil, 0, usagef("--unit %d: want 0 to 255", m.unit)
	}
	conn, err := modbus.ParseConnection(m.address)
	if err != nil {
		return nil, 0, usagef("--address: %v", err)
	}
	drv, err := modbus.New(&modbus.Map{Connection: conn}, modbus.Options{})
	if err != nil {
		return nil, 0, err
	}
	if err := drv.Connect(ctx); err != nil {
		drv.Close()
		return nil, 0, fmt.Errorf("connect to %s: %w", m.address, err)
	}
	return drv, table, nil
}

func runModbusRead(ctx context.Context, e *env, args []string) error {
	fs := newFlags("modbus read", "--address URL --register N [flags]", e.stderr)
	var mf modbusFlags
	mf.register(fs)
	reg := fs.Uint("register", 0, "first register (0-based, as on the wire)")
	count := fs.Uint("count", 0, "registers to read (default: what --type needs)")
	types := fs.String("type", "uint16", "comma-separated types to decode the registers as: int16, uint16, int32, uint32, int64, uint64, float32, float64, string")
	wordOrder := fs.String("word-order", "big", "word order of multi-register values: big (high word first) or little")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *reg > 65535 {
		return usagef("--register %d: want 0 to 65535", *reg)
	}
	var values []modbus.Value
	need := uint(1)
	for _, name := range strings.Split(*types, ",") {
		t, err := modbus.ParseType(strings.TrimSpace(name))
		if err != nil {
			return usagef("--type: %v", err)
		}
		v := modbus.Value{Name: name, Type: t, Scale: 1, Bit: -1}
		if *wordOrder == "little" {
			v.WordOrder = modbus.Little
		} else if *wordOrder != "big" {
			return usagef("--word-order %q: want big or little", *wordOrder)
		}
		if t == modbus.String {
			v.Length = uint16(max(*count, 1))
		}
		need = max(need, uint(v.Count()))
		values = append(values, v)
	}
	if *count == 0 {
		*count = need
	}
	drv, table, err := mf.open(ctx)
	if err != nil {
		return err
	}
	defer drv.Close()
	words, err := drv.ReadRegisters(ctx, uint8(mf.unit), table, uint16(*reg), uint16(*count))
	if err != nil {
		return fmt.Errorf("read %d %s registers from %d: %w", *count, table, *reg, err)
	}
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "register\thex\tdecimal")
	for i, w := range words {
		fmt.Fprintf(tw, "%d\t0x%04x\t%d\n", int(*reg)+i, w, w)
	}
	tw.Flush()
	for _, v := range values {
		if int(v.Count()) > len(words) {
			fmt.Fprintf(e.stdout, "%-8s needs %d registers; read more with --count\n", v.Type, v.Count())
			continue
		}
		out, ok, err := v.Decode(words[:v.Count()])
		switch {
		case err != nil:
			fmt.Fprintf(e.stdout, "%-8s %v\n", v.Type, err)
		case !ok:
			fmt.Fprintf(e.stdout, "%-8s (not a number)\n", v.Type)
		default:
			fmt.Fprintf(e.stdout, "%-8s %v\n", v.Type, out)
		}
	}
	return nil
}

func runModbusScan(ctx context.Context, e *env, args []string) error {
	fs := newFlags("modbus scan", "--address URL [--from N --to N] [flags]", e.stderr)
	var mf modbusFlags
	mf.register(fs)
	from := fs.Uint("from", 0, "first register to probe")
	to := fs.Uint("to", 999, "last register to probe")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *from > *to || *to > 65535 {
		return usagef("want 0 <= --from <= --to <= 65535")
	}
	drv, table, err := mf.open(ctx)
	if err != nil {
		return err
	}
	defer drv.Close()
	fmt.Fprintf(e.stderr, "probing %s registers %d-%d of unit %d at %s, one at a time\n", table, *from, *to, mf.unit, mf.address)
	// One register per request: a block read fails as a whole when any
	// register in it is missing, which hides the ones that exist.
	start, found := -1, 0
	flush := func(end uint) {
		if start >= 0 {
			fmt.Fprintf(e.stdout, "%d-%d answer (%d registers)\n", start, end, int(end)-start+1)
			start = -1
		}
	}
	for r := *from; r <= *to; r++ {
		_, err := drv.ReadRegisters(ctx, uint8(mf.unit), table, uint16(r), 1)
		switch {
		case err == nil:
			if start < 0 {
				start = int(r)
			}
			found++
		case modbus.IsException(err):
			flush(r - 1)
		case ctx.Err() != nil:
			return nil
		default:
			flush(r - 1)
			return fmt.Errorf("register %d: %w (is the device still there?)", r, err)
		}
	}
	flush(*to)
	fmt.Fprintf(e.stderr, "%d of %d registers answer\n", found, *to-*from+1)
	return nil
}

func runSim(ctx context.Context, e *env, args []string) error {
	return dispatch(ctx, e, "sim", []subcommand{
		{"modbus", "a simulated Modbus TCP device", runSimModbus},
		{"fleet", "many simulated inverters at once, each on its own connection, to load a hub", runSimFleet},
	}, args)
}

func runSimModbus(ctx context.Context, e *env, args []string) error {
	fs := newFlags("sim modbus", "[--listen ADDR] [--profile NAME]", e.stderr)
	listen := fs.String("listen", modbussim.DefaultListen, "where the simulated Modbus TCP device listens")
	profile := fs.String("profile", "inverter", "simulated device: "+strings.Join(modbussim.Profiles(), ", "))
	printMap := fs.Bool("print-map", false, "print the profile's register map (YAML for edk run --config) and exit")
	printManifest := fs.Bool("print-manifest", false, "print the profile's blueprint manifest (for edk run --manifest) and exit")
	var lf logFlags
	lf.register(fs, "info")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *printMap || *printManifest {
		registerMap, manifest, err := modbussim.ProfileFiles(*profile)
		if err != nil {
			return usagef("--profile: %v", err)
		}
		if *printMap && *printManifest {
			return usagef("give --print-map or --print-manifest, not both")
		}
		if *printMap {
			// the map points at the simulated device that --listen starts
			registerMap = bytes.Replace(registerMap, []byte("tcp://"+modbussim.DefaultListen), []byte("tcp://"+*listen), 1)
			_, err = e.stdout.Write(registerMap)
		} else {
			_, err = e.stdout.Write(manifest)
		}
		return err
	}
	logger, err := lf.logger(e)
	if err != nil {
		return err
	}
	srv, err := modbussim.Listen(modbussim.Config{Listen: *listen, Profile: *profile, Logger: logger})
	if err != nil {
		return fmt.Errorf("start the simulated device: %w", err)
	}
	self := selfCommand()
	listenFlag := "" // the map printed for this device, wherever it listens
	if addr := strings.TrimPrefix(srv.URL(), "tcp://"); addr != modbussim.DefaultListen {
		listenFlag = " --listen " + addr
	}
	fmt.Fprintf(e.stdout, "simulated Modbus %[1]s listening on %[2]s (unit id 3 for the inverter profile); Ctrl-C to stop\n"+
		"its register map and manifest: %[3]s sim modbus --profile %[1]s%[4]s --print-map > %[1]s.yaml (and --print-manifest > manifest.yml)\n"+
		"try: %[3]s modbus read --address %[2]s --unit 3 --table input --register 30775 --type int32\n",
		*profile, srv.URL(), self, listenFlag)
	if err := srv.Serve(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
