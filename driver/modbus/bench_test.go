package modbus_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edk-go/edk/driver/modbus"
)

// BenchmarkPoll reads a group of 60 values (120 registers: 40 uint16, 20
// int32 and 10 float32 in a row) from the in-process server, with and
// without merged reads, and reports registers read per second.
func BenchmarkPoll(b *testing.B) {
	s := startSim(b, "")
	s.SetRegisters(modbus.Input, 0, make([]uint16, 120)...)
	var y strings.Builder
	y.WriteString("modbus: {address: ADDR}\ntelemetry:\n")
	reg := 0
	for i := range 70 {
		typ := "uint16"
		switch {
		case i >= 60:
			typ = "float32"
		case i >= 40:
			typ = "int32"
		}
		fmt.Fprintf(&y, "  v%d: {register: %d, table: input, type: %s}\n", i, reg, typ)
		if typ == "uint16" {
			reg++
		} else {
			reg += 2
		}
	}
	for _, merge := range []bool{true, false} {
		name := "merged"
		if !merge {
			name = "one_request_per_value"
		}
		b.Run(name, func(b *testing.B) {
			d := newDriver(b, s, y.String(), modbus.Options{NoMerge: !merge})
			ctx := context.Background()
			if err := d.Connect(ctx); err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			for b.Loop() {
				if _, err := d.Poll(ctx, time.Second); err != nil {
					b.Fatal(err)
				}
			}
			st := d.Stats()
			el := time.Since(start).Seconds()
			b.ReportMetric(float64(st.Registers)/el, "registers/s")
			b.ReportMetric(float64(st.Requests)/float64(b.N), "requests/poll")
		})
	}
}
