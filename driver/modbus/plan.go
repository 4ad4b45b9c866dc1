package modbus

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Read is one planned read request.
type Read struct {
	Unit   uint8
	Table  Table
	Start  uint16
	Count  uint16   // registers, or bits in a bit table
	Values []string // the values it covers ("alert:x" for an alert's bit)
	values []*Value
}

func (r Read) String() string {
	return fmt.Sprintf("unit %d %s %d..%d (%d) → %s", r.Unit, r.Table, r.Start, int(r.Start)+int(r.Count)-1, r.Count, strings.Join(r.Values, ", "))
}

// Group is the reads of one poll interval.
type Group struct {
	Poll  time.Duration // 0 for properties
	Reads []Read
}

// Plan is every read the driver makes: one group per telemetry poll
// interval (sorted by interval), and the property reads.
type Plan struct {
	Telemetry  []Group
	Properties Group
}

// Requests is the number of read requests of one round of every group.
func (p Plan) Requests() int {
	n := len(p.Properties.Reads)
	for _, g := range p.Telemetry {
		n += len(g.Reads)
	}
	return n
}

func (p Plan) String() string {
	var b strings.Builder
	for _, g := range p.Telemetry {
		fmt.Fprintf(&b, "telemetry every %s: %d request(s)\n", g.Poll, len(g.Reads))
		for _, r := range g.Reads {
			fmt.Fprintf(&b, "  %s\n", r)
		}
	}
	if len(p.Properties.Reads) > 0 {
		fmt.Fprintf(&b, "properties: %d request(s)\n", len(p.Properties.Reads))
		for _, r := range p.Properties.Reads {
			fmt.Fprintf(&b, "  %s\n", r)
		}
	}
	return b.String()
}

// PlanReads groups the map's values by poll interval and merges
// neighbouring values of the same unit and table into one request, within
// Connection.MaxRegisters (MaxBits for coils and discrete inputs), across at
// most Connection.MaxGap unmapped registers, and never across a declared gap.
// With merge false every value is read by its own request.
func PlanReads(m *Map, merge bool) Plan {
	byPoll := map[time.Duration][]*Value{}
	for i := range m.Telemetry {
		v := &m.Telemetry[i]
		byPoll[v.Poll] = append(byPoll[v.Poll], v)
	}
	for _, a := range m.Alerts {
		if a.Source != nil {
			byPoll[a.Source.Poll] = append(byPoll[a.Source.Poll], a.Source)
		}
	}
	var p Plan
	polls := make([]time.Duration, 0, len(byPoll))
	for d := range byPoll {
		polls = append(polls, d)
	}
	slices.Sort(polls)
	for _, d := range polls {
		p.Telemetry = append(p.Telemetry, Group{Poll: d, Reads: planGroup(m, byPoll[d], merge)})
	}
	props := make([]*Value, len(m.Properties))
	for i := range m.Properties {
		props[i] = &m.Properties[i]
	}
	p.Properties = Group{Reads: planGroup(m, props, merge)}
	return p
}

func planGroup(m *Map, vals []*Value, merge bool) []Read {
	vals = slices.Clone(vals)
	slices.SortStableFunc(vals, func(a, b *Value) int {
		if a.Unit != b.Unit {
			return int(a.Unit) - int(b.Unit)
		}
		if a.Table != b.Table {
			return int(a.Table) - int(b.Table)
		}
		if a.Register != b.Register {
			return int(a.Register) - int(b.Register)
		}
		return a.End() - b.End()
	})
	c := m.Connection
	var reads []Read
	for _, v := range vals {
		if merge && len(reads) > 0 {
			r := &reads[len(reads)-1]
			end := int(r.Start) + int(r.Count) - 1
			limit := int(c.MaxRegisters)
			gap := int(c.MaxGap)
			if v.Table.IsBits() {
				limit, gap = int(c.MaxBits), int(c.MaxGap)*16
			}
			newEnd := max(end, v.End())
			if r.Unit == v.Unit && r.Table == v.Table && int(v.Register) <= end+1+gap &&
				newEnd-int(r.Start)+1 <= limit && !crossesGap(m.Gaps, v.Unit, v.Table, int(r.Start), newEnd) {
				r.Count = uint16(newEnd - int(r.Start) + 1)
				r.values = append(r.values, v)
				r.Values = append(r.Values, v.Name)
				continue
			}
		}
		reads = append(reads, Read{Unit: v.Unit, Table: v.Table, Start: v.Register, Count: v.Count(), Values: []string{v.Name}, values: []*Value{v}})
	}
	return reads
}

func crossesGap(gaps []Gap, unit uint8, t Table, from, to int) bool {
	for _, g := range gaps {
		if g.Unit == unit && g.Table == t && from <= int(g.To) && to >= int(g.From) {
			return true
		}
	}
	return false
}
