package fleet

import (
	"slices"
	"sync"
	"time"
)

// maxSamples bounds the round-trip samples kept for the summary: at 1 000
// commands a second that is over 16 minutes; beyond it every second sample
// is thrown away (and every new one kept at half the rate), so the
// percentiles stay those of the whole run.
const maxSamples = 1 << 20

// latencies keeps command round-trip times: those since the last status
// line (window) and a sample of the whole run (all).
type latencies struct {
	mu     sync.Mutex
	window []time.Duration
	all    []time.Duration
	keep   int // keep one in keep of new samples in all
	seen   int
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.window = append(l.window, d)
	if l.keep == 0 {
		l.keep = 1
	}
	l.seen++
	if l.seen%l.keep != 0 {
		return
	}
	l.all = append(l.all, d)
	if len(l.all) >= maxSamples {
		half := l.all[:0]
		for i := 0; i < len(l.all); i += 2 {
			half = append(half, l.all[i])
		}
		l.all = half
		l.keep *= 2
	}
}

// takeWindow returns the samples since the last call and starts a new window.
func (l *latencies) takeWindow() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.window
	l.window = nil
	return w
}

func (l *latencies) whole() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.all)
}

// Percentiles of a set of round-trip times; zero when the set is empty.
type Percentiles struct {
	Count         int
	P50, P99, Max time.Duration
}

func percentiles(s []time.Duration) Percentiles {
	if len(s) == 0 {
		return Percentiles{}
	}
	slices.Sort(s)
	at := func(q float64) time.Duration {
		i := int(q*float64(len(s))+0.5) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return Percentiles{Count: len(s), P50: at(0.50), P99: at(0.99), Max: s[len(s)-1]}
}
