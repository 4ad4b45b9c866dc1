package luarun

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/edk-go/edk/blueprint"
)

// LoadConfigFile reads a configuration file, group → parameter → value in
// YAML or JSON (which YAML reads too), checked against the manifest's
// configuration section (see CheckConfig). A file that does not exist is
// an empty configuration: the device starts unconfigured, as a fresh one
// does on Enapter's side, until the file is written.
func LoadConfigFile(m *blueprint.Manifest, path string) (map[string]map[string]any, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]map[string]any{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("configuration file: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("configuration file %s: %w", path, err)
	}
	cfg, err := CheckConfig(m, raw)
	if err != nil {
		return nil, fmt.Errorf("configuration file %s: %w", path, err)
	}
	return cfg, nil
}

// CheckConfig turns decoded configuration (group → parameter → value)
// into runtime values: every group and parameter declared by the
// manifest, every value of its parameter's type (integer → int64, float
// → float64); a null value leaves the parameter unset. All problems are
// reported at once.
func CheckConfig(m *blueprint.Manifest, raw map[string]any) (map[string]map[string]any, error) {
	out := map[string]map[string]any{}
	var problems []string
	groups := map[string]*blueprint.ConfigurationBucket{}
	var names []string
	for _, b := range m.Configuration {
		groups[b.Name] = b
		names = append(names, b.Name)
	}
	for _, g := range slices.Sorted(maps.Keys(raw)) {
		b, ok := groups[g]
		if !ok {
			problems = append(problems, fmt.Sprintf("unknown group %q (the manifest declares: %s)", g, list(names)))
			continue
		}
		params, ok := raw[g].(map[string]any)
		if !ok {
			if raw[g] != nil {
				problems = append(problems, fmt.Sprintf("group %s: want parameter: value pairs, not %v", g, raw[g]))
			}
			continue
		}
		vals := map[string]any{}
		for _, p := range slices.Sorted(maps.Keys(params)) {
			var arg *blueprint.Argument
			var declared []string
			for _, a := range b.Parameters {
				declared = append(declared, a.Name)
				if a.Name == p {
					arg = a
				}
			}
			if arg == nil {
				problems = append(problems, fmt.Sprintf("%s.%s: unknown parameter (group %s declares: %s)", g, p, g, list(declared)))
				continue
			}
			if params[p] == nil {
				continue
			}
			v, err := configValue(arg.Type, params[p])
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s.%s: %v", g, p, err))
				continue
			}
			vals[p] = v
		}
		out[g] = vals
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return out, nil
}

func configValue(t blueprint.Type, v any) (any, error) {
	switch t {
	case blueprint.TypeInteger:
		switch x := v.(type) {
		case int:
			return int64(x), nil
		case int64:
			return x, nil
		case float64:
			if x == math.Trunc(x) && !math.IsInf(x, 0) {
				return int64(x), nil
			}
		}
		return nil, fmt.Errorf("must be an integer, not %s", describe(v))
	case blueprint.TypeFloat:
		switch x := v.(type) {
		case int:
			return float64(x), nil
		case int64:
			return float64(x), nil
		case float64:
			return x, nil
		}
		return nil, fmt.Errorf("must be a number, not %s", describe(v))
	case blueprint.TypeBoolean:
		if b, ok := v.(bool); ok {
			return b, nil
		}
		return nil, fmt.Errorf("must be true or false, not %s", describe(v))
	case blueprint.TypeString:
		if s, ok := v.(string); ok {
			return s, nil
		}
		return nil, fmt.Errorf("must be a string, not %s (quote it)", describe(v))
	}
	return v, nil
}

func describe(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("the string %q", s)
	}
	return fmt.Sprintf("%v", v)
}

func list(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// WatchConfigFile re-reads a configuration file when it changes (its
// size or modification time, polled every interval) or when reload
// delivers (SIGHUP), until ctx is done. Each valid configuration that
// differs from the last one goes to apply; a file that does not parse or
// breaks the manifest is logged as an error and the values in use are
// kept. current is the configuration the script started with.
//
// A change found by polling is read once the file has stayed the same for
// one more interval, so a file written in place (truncated, then filled)
// is not read half-written.
func WatchConfigFile(ctx context.Context, path string, m *blueprint.Manifest, current map[string]map[string]any,
	interval time.Duration, reload <-chan os.Signal, log *slog.Logger, apply func(map[string]map[string]any)) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	type stamp struct {
		mod    time.Time
		size   int64
		exists bool
	}
	var last stamp
	known, pending, existed := false, false, false
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		forced := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-reload:
			forced = true
		}
		var now stamp
		if st, err := os.Stat(path); err == nil {
			now = stamp{st.ModTime(), st.Size(), true}
		}
		if !forced {
			if !known || now != last {
				// a change, or the first look (the file may have changed
				// since the script read it): read it once it holds still
				pending = true
				last, known = now, true
				existed = existed || now.exists
				continue
			}
			if !pending {
				continue
			}
		}
		last, known, pending = now, true, false
		if !now.exists {
			if forced || existed {
				log.Error("configuration file is not there; keeping the values in use", "file", path)
			}
			continue
		}
		existed = true
		cfg, err := LoadConfigFile(m, path)
		if err != nil {
			log.Error("configuration not applied; keeping the values in use", "err", err)
			continue
		}
		if reflect.DeepEqual(cfg, current) {
			continue
		}
		current = cfg
		apply(cfg)
	}
}
