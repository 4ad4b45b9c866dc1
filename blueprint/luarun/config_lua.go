//go:build lua

package luarun

import (
	"reflect"
	"sort"

	"github.com/edk-go/edk/mqttapi"
)

// SetConfiguration replaces the script's configuration (group → parameter
// → value, as CheckConfig returns it). On the script's goroutine, each
// group whose values changed calls its configuration.after_write handlers
// with the group's new values, after configuration.read sees them. It
// never blocks: only the latest configuration is kept. cfg is the
// runtime's from then on.
func (r *Runtime) SetConfiguration(cfg map[string]map[string]any) {
	select {
	case <-r.configs:
	default:
	}
	select {
	case r.configs <- cfg:
	default:
	}
}

func (r *Runtime) configurationChanged(cfg map[string]map[string]any) {
	var changed []string
	for _, b := range r.bp.Manifest.Configuration {
		if !sameGroup(r.opts.Config[b.Name], cfg[b.Name]) {
			changed = append(changed, b.Name)
		}
	}
	r.opts.Config = cfg
	if len(changed) == 0 {
		return
	}
	sort.Strings(changed)
	r.log.Info("configuration changed", "groups", changed)
	for _, g := range changed {
		for _, ref := range r.afterCfg[g] {
			r.s.SetTop(0)
			r.s.PushRef(ref)
			if err := r.s.Push(r.configValues(g)); err != nil {
				r.s.PushNil()
			}
			if err := r.s.Call(1, 0, r.opts.CallTimeout); err != nil {
				r.log.Error("configuration.after_write handler failed", "group", g, "err", err)
				r.scriptLog(mqttapi.SeverityError, "configuration.after_write('"+g+"') failed: "+err.Error(), false)
			}
		}
	}
	r.s.SetTop(0)
}

func sameGroup(a, b map[string]any) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}
