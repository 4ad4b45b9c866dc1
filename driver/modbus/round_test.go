package modbus

import "testing"

func TestScaledValuesHaveNoBinaryNoise(t *testing.T) {
	for _, tt := range []struct {
		name   string
		scale  float64
		offset float64
		words  []uint16
		want   float64
	}{
		{"hundredths", 0.01, 0, []uint16{0, 23042}, 230.42},
		{"tenths", 0.1, 0, []uint16{0, 509}, 50.9},
		{"offset", 0.1, -40.05, []uint16{0, 1000}, 59.95},
		{"integral scale", 10, 0, []uint16{0, 7}, 70},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := Value{Name: "x", Type: Uint32, Scale: tt.scale, Offset: tt.offset, Bit: -1}
			got, ok, err := v.Decode(tt.words)
			if err != nil || !ok || got != tt.want {
				t.Fatalf("Decode = %v, %v, %v; want %v", got, ok, err, tt.want)
			}
		})
	}
}
