package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/edk-go/edk/commconfig"
)

// errHelpShown ends a command whose -h was asked for.
var errHelpShown = errors.New("help shown")

// newFlags returns a flag set that reports its errors as usage errors and
// prints its help to w.
func newFlags(name, usage string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("edk "+name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		fmt.Fprintf(w, "Usage: edk %s %s\n\nFlags:\n", name, usage)
		printDefaults(fs, w)
	}
	return fs
}

// printDefaults writes the flag list to w. parseFlags silences the set's
// own output (errors are reported as usage errors instead), so a Usage
// function must not rely on it.
func printDefaults(fs *flag.FlagSet, w io.Writer) {
	out := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(out)
}

// parseFlags parses args, turning flag errors into usage errors that say
// what to do. Flags may come after positional arguments, as in
// 'edk exec set_power --hardware-id x'; after "--" everything is positional.
// fs.Args() holds the positional arguments afterwards.
func parseFlags(fs *flag.FlagSet, args []string) error {
	// The flag package calls Usage on every error; the whole flag list
	// would bury the one line that says what was wrong.
	usage := fs.Usage
	fs.Usage = func() {}
	defer func() { fs.Usage = usage }()
	fs.SetOutput(io.Discard)
	var positional []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(nil)
			usage()
			return errHelpShown
		}
		if err != nil {
			return &usageError{msg: explainFlagError(fs, err)}
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	// A parse of "--" alone leaves the positional arguments as fs.Args().
	return fs.Parse(append([]string{"--"}, positional...))
}

// explainFlagError rewrites the flag package's terse errors: a mistyped
// flag gets the closest real one, a duration without a unit gets one.
func explainFlagError(fs *flag.FlagSet, err error) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		name = strings.TrimLeft(name, "-")
		var names []string
		fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		return fmt.Sprintf("unknown flag --%s.%s", name, didYouMean(name, names, func(s string) string { return "--" + s }))
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		return fmt.Sprintf("--%s needs a value, as in --%s=VALUE", strings.TrimLeft(name, "-"), strings.TrimLeft(name, "-"))
	}
	// invalid value "5" for flag -duration: parse error
	var value, name string
	if _, scanErr := fmt.Sscanf(msg, "invalid value %q for flag %s", &value, &name); scanErr == nil {
		name = strings.TrimSuffix(strings.TrimLeft(name, "-"), ":")
		if f := fs.Lookup(name); f != nil && isDurationFlag(f) {
			if _, numErr := strconv.ParseFloat(value, 64); numErr == nil {
				return fmt.Sprintf("--%s %s: a duration needs a unit, as in %ss, %sm or 500ms", name, value, value, value)
			}
			return fmt.Sprintf("--%s %q: want a duration such as 5s, 2m, 1h30m or 500ms", name, value)
		}
		if _, detail, ok := strings.Cut(msg, ": "); ok {
			return fmt.Sprintf("--%s %q: %s", name, value, detail)
		}
	}
	return msg
}

// isDurationFlag tells a time.Duration flag by its getter, since the flag
// package's duration type is unexported.
func isDurationFlag(f *flag.Flag) bool {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return false
	}
	_, ok = g.Get().(time.Duration)
	return ok
}

// logFlags are the logging flags every long-running command has.
type logFlags struct {
	level, format string
}

func (l *logFlags) register(fs *flag.FlagSet, defaultLevel string) {
	fs.StringVar(&l.level, "log-level", defaultLevel, "log level: debug, info, warning or error (default from ENAPTER_LOG_LEVEL)")
	fs.StringVar(&l.format, "log-format", "text", "log format: text or json")
}

func (l *logFlags) logger(e *env) (*slog.Logger, error) {
	level, err := commconfig.LogLevel(func(string) string { return l.level })
	if err != nil {
		return nil, &usageError{msg: err.Error()}
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(l.format) {
	case "text":
		return slog.New(slog.NewTextHandler(e.stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(e.stderr, opts)), nil
	}
	return nil, usagef("--log-format %q: want text or json", l.format)
}

// configFlags choose where a communication config comes from.
type configFlags struct {
	file, blob string
}

func (c *configFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.file, "config-file", "", "read the communication config from this file (base64 blob or JSON)")
	fs.StringVar(&c.blob, "config-blob", "", "the communication config itself (base64); beware: visible in the process list")
}

// load reads the config from the flags, or else from the environment,
// as Enapter's Python SDK does.
func (c *configFlags) load(e *env) (*commconfig.Config, error) {
	var cfg *commconfig.Config
	var err error
	switch {
	case c.file != "" && c.blob != "":
		return nil, usagef("give --config-file or --config-blob, not both")
	case c.file != "":
		data, rerr := e.readFile(c.file)
		if rerr != nil {
			return nil, fmt.Errorf("read communication config: %w", rerr)
		}
		if cfg, err = commconfig.ParseAny(data); err != nil {
			return nil, fmt.Errorf("communication config in %s: %w", c.file, err)
		}
	case c.blob != "":
		if cfg, err = commconfig.Parse(c.blob); err != nil {
			return nil, fmt.Errorf("--config-blob: %w", err)
		}
	default:
		if cfg, err = commconfig.FromEnv(e.getenv); err != nil {
			if errors.Is(err, commconfig.ErrNotSet) {
				return nil, fmt.Errorf("no communication config: set %s, or pass --config-file or --config-blob", commconfig.EnvConfig)
			}
			return nil, err
		}
		return cfg, nil
	}
	if host := strings.TrimSpace(e.getenv(commconfig.EnvOverrideHost)); host != "" {
		cfg.Host = host
	}
	return cfg, nil
}

// brokerFlags say how a controller reaches the broker.
type brokerFlags struct {
	url, username, password string
	hardwareID, channelID   string
	caFile, certFile        string
	keyFile                 string
	insecure                bool
}

func (b *brokerFlags) register(fs *flag.FlagSet, channelDefault string) {
	fs.StringVar(&b.url, "broker", "tcp://127.0.0.1:1883", "MQTT broker URL (tcp://host:port or ssl://host:port)")
	fs.StringVar(&b.username, "username", "", "MQTT user name")
	fs.StringVar(&b.password, "password", "", "MQTT password (or set EDK_MQTT_PASSWORD)")
	fs.StringVar(&b.hardwareID, "hardware-id", "", "the device's hardware id (required)")
	fs.StringVar(&b.channelID, "channel-id", channelDefault, "the device's channel id")
	fs.StringVar(&b.caFile, "tls-ca", "", "for ssl:// brokers: PEM file of the CA that signed the broker's certificate (default: system roots)")
	fs.StringVar(&b.certFile, "tls-cert", "", "for ssl:// brokers: PEM file of a client certificate")
	fs.StringVar(&b.keyFile, "tls-key", "", "for ssl:// brokers: PEM file of the client certificate's key")
	fs.BoolVar(&b.insecure, "tls-skip-host-check", false, "for ssl:// brokers: check the certificate chain but not the host name (gateways reached by IP)")
}

// tlsConfig builds the controller's TLS configuration from the flags; nil
// when none is given.
func (b *brokerFlags) tlsConfig(e *env) (*tls.Config, error) {
	if b.caFile == "" && b.certFile == "" && b.keyFile == "" && !b.insecure {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if b.caFile != "" {
		pem, err := e.readFile(b.caFile)
		if err != nil {
			return nil, fmt.Errorf("read --tls-ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca %s: no PEM certificate in it", b.caFile)
		}
	}
	if (b.certFile == "") != (b.keyFile == "") {
		return nil, usagef("give --tls-cert and --tls-key together")
	}
	if b.certFile != "" {
		certPEM, err := e.readFile(b.certFile)
		if err != nil {
			return nil, fmt.Errorf("read --tls-cert: %w", err)
		}
		keyPEM, err := e.readFile(b.keyFile)
		if err != nil {
			return nil, fmt.Errorf("read --tls-key: %w", err)
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if b.insecure {
		roots := cfg.RootCAs
		cfg.InsecureSkipVerify = true // the chain is still verified below
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("broker sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
			return err
		}
	}
	return cfg, nil
}

// byteSize is a flag holding a size in bytes, written 5000, 512KiB, 64MiB,
// 1GiB (or KB, MB, GB, powers of 1000).
type byteSize int64

func (b *byteSize) String() string {
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if *b != 0 && int64(*b)%u.n == 0 {
			return strconv.FormatInt(int64(*b)/u.n, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(*b), 10)
}

func (b *byteSize) Set(s string) error {
	units := []struct {
		suffix string
		n      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if strings.HasSuffix(strings.ToUpper(num), strings.ToUpper(u.suffix)) {
			num, mult = strings.TrimSpace(num[:len(num)-len(u.suffix)]), u.n
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return fmt.Errorf("%q: want a positive size such as 5000, 512KiB, 64MiB or 1GiB", s)
	}
	*b = byteSize(n * mult)
	return nil
}
