package fleet

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// status turns the counters into the live line: rates are over the time
// since the previous line.
type status struct {
	f      *fleet
	at     time.Time
	sent   uint64
	acked  uint64
	cmds   uint64
	hinted bool
	closed uint64
}

func newStatus(f *fleet) *status { return &status{f: f, at: time.Now()} }

func (s *status) line() string {
	f := s.f
	now := time.Now()
	dt := now.Sub(s.at).Seconds()
	t := f.totals()
	sent := f.sent.Load() + t.responses
	cmds := f.cmdOK.Load() + f.cmdFailed.Load()
	p := percentiles(f.rtt.takeWindow())
	conn := int(f.connected.Load())
	n := len(f.members)
	f.mostMu.Lock()
	elapsed := now.Sub(f.startedAt)
	f.mostMu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%6s  connected %d/%d  sent %.0f/s  acked %.0f/s", elapsed.Round(time.Second), conn, n,
		float64(sent-s.sent)/dt, float64(t.acked-s.acked)/dt)
	if f.cfg.Commands > 0 {
		fmt.Fprintf(&b, "  commands %.0f/s p50 %s p99 %s", float64(cmds-s.cmds)/dt, ms(p.P50), ms(p.P99))
	}
	if f.cfg.ReadProbes > 0 {
		r := percentiles(f.readLag.takeWindow())
		fmt.Fprintf(&b, "  read lag p50 %s p99 %s", ms(r.P50), ms(r.P99))
	}
	errs := f.log.errors.Load() + f.cmdErrors.Load()
	fmt.Fprintf(&b, "  errors %d", errs)
	if rss := currentRSS(); rss > 0 {
		fmt.Fprintf(&b, "  rss %s", mib(rss))
	}
	s.at, s.sent, s.acked, s.cmds = now, sent, t.acked, cmds

	// Events worth their own line: the caps hint once, and how long a
	// fleet that lost connections took to be whole again.
	var events []string
	// A hub over its caps closes every connection past them at once; a
	// few closed by a hub that is stopping are not that.
	closed := f.log.closed.Load()
	if !s.hinted && closed-s.closed >= closedForHint(n) && conn < n {
		s.hinted = true
		events = append(events, "hint: "+capsHint(n))
	}
	s.closed = closed
	events = append(events, f.takeEvents()...)
	if len(events) > 0 {
		f.endLine()
		for _, e := range events {
			fmt.Fprintln(f.cfg.Status, e)
		}
	}
	return b.String()
}

// statusLine writes one status: in place on a terminal, else as a line.
func (f *fleet) statusLine(s string) {
	f.lineMu.Lock()
	defer f.lineMu.Unlock()
	if f.cfg.Live {
		fmt.Fprintf(f.cfg.Status, "\r%s\x1b[K", s)
		return
	}
	fmt.Fprintln(f.cfg.Status, s)
}

// endLine ends a live line so that what follows starts on its own.
func (f *fleet) endLine() {
	if f.cfg.Live {
		f.lineMu.Lock()
		fmt.Fprintln(f.cfg.Status)
		f.lineMu.Unlock()
	}
}

func ms(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + "ms"
}

func mib(b int64) string { return fmt.Sprintf("%.0fMiB", float64(b)/(1<<20)) }

func rate(n uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func printSummary(w io.Writer, s Summary) {
	fmt.Fprintf(w, "fleet summary: %d devices for %s\n", s.Devices, s.Duration.Round(100*time.Millisecond))
	if s.ProvisionTime > 0 {
		fmt.Fprintf(w, "  provisioned:  %d in %s (%.0f/s)\n", s.Provisioned, s.ProvisionTime.Round(time.Millisecond), rate(uint64(s.Provisioned), s.ProvisionTime))
	}
	all := "never all connected"
	if s.AllConnectedAfter > 0 {
		all = "all connected after " + s.AllConnectedAfter.Round(10*time.Millisecond).String()
	}
	fmt.Fprintf(w, "  connections:  %d connected at the end, most %d; %s; %d reconnects\n", s.Connected, s.MostConnected, all, s.Reconnects)
	for _, r := range s.Recoveries {
		fmt.Fprintf(w, "                all connected again %s after the first was lost\n", r.Round(10*time.Millisecond))
	}
	fmt.Fprintf(w, "  messages:     %d sent (%.0f/s), %d acknowledged (%.0f/s), %d publish failures, %d dropped\n",
		s.Sent, rate(s.Sent, s.Duration), s.Acknowledged, rate(s.Acknowledged, s.Duration), s.PublishFailures, s.Dropped)
	fmt.Fprintf(w, "                sent: %d telemetry (%d acknowledged, %d failed), %d properties, %d command responses\n",
		s.Telemetry, s.TelemetryAcknowledged, s.TelemetryFailed, s.Properties, s.Responses)
	if s.CommandsSent > 0 || s.CommandsSkipped > 0 {
		fmt.Fprintf(w, "  commands:     %d sent, %d succeeded, %d failed, %d skipped (too many waiting); round trip p50 %s p99 %s max %s\n",
			s.CommandsSent, s.CommandsSucceeded, s.CommandsFailed, s.CommandsSkipped, ms(s.CommandRTT.P50), ms(s.CommandRTT.P99), ms(s.CommandRTT.Max))
	}
	if s.ReadProbes > 0 {
		fmt.Fprintf(w, "  read lag:     %d probes, from acknowledged to served by the API p50 %s p99 %s max %s; %d not readable within %s, %d failed\n",
			s.ReadProbes, ms(s.ReadLag.P50), ms(s.ReadLag.P99), ms(s.ReadLag.Max), s.ReadsNotReadable, readProbeLimit, s.ReadErrors)
	}
	fmt.Fprintf(w, "  errors:       %d", s.Errors)
	if s.LastError != "" {
		fmt.Fprintf(w, " (last: %s)", s.LastError)
	}
	fmt.Fprintln(w)
	if s.ClosedAtConnect >= closedForHint(s.Devices) && s.MostConnected < s.Devices {
		fmt.Fprintf(w, "  hint:         %s\n", capsHint(s.Devices))
	}
	if s.PeakRSS > 0 {
		fmt.Fprintf(w, "  memory:       peak RSS %s (%.1f KiB per device)\n", mib(s.PeakRSS), float64(s.PeakRSS)/1024/float64(max(s.Devices, 1)))
	}
}

// currentRSS and peakRSS read VmRSS and VmHWM of this process (Linux); 0
// elsewhere.
func currentRSS() int64 { return procStatus("VmRSS:") }
func peakRSS() int64    { return procStatus("VmHWM:") }

func procStatus(key string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, key) {
			continue
		}
		fields := strings.Fields(line[len(key):])
		if len(fields) == 0 {
			return 0
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}
