package modbussim

import (
	"math"
	"time"

	mb "github.com/simonvetter/modbus"

	"github.com/edk-go/edk/driver/modbus"
)

// Registers of the inverter profile; inverter.yaml beside this file is its
// register map (ProfileFiles hands it out).
const (
	InverterSerial      = 30057 // input, uint32
	InverterModel       = 30100 // input, string of 8 registers
	InverterStatus      = 30201 // input, uint32: 307 ok, 303 off, 35 fault
	InverterEvents      = 30211 // input, uint16 bits: 0 grid fault
	InverterEnergy      = 30517 // input, uint64 Wh today
	InverterPower       = 30775 // input, int32 W
	InverterVoltage     = 30783 // input, uint32 0.01 V
	InverterFrequency   = 30803 // input, uint32 0.01 Hz
	InverterSoC         = 30845 // input, uint32 0.1 %
	InverterTemperature = 30953 // input, int16 0.1 °C
	InverterPowerLimit  = 40016 // holding, uint16 % (0..100), writable
	InverterCosPhi      = 40020 // holding, float32, writable
	InverterEnabled     = 0     // coil, writable
	InverterFaultSwitch = 10    // coil, writable: simulates a grid fault
	InverterRatedPower  = 5000  // W
)

type inverter struct {
	start, last time.Time
	energy      float64 // Wh
}

func newInverter(s *Server, now time.Time) *inverter {
	inv := &inverter{start: now, last: now}
	put32 := func(addr uint16, v uint32) { s.set(modbus.Input, addr, uint16(v>>16), uint16(v)) }
	put32(InverterSerial, 2100012345)
	model := []byte("EDK-SIM-5000\x00\x00\x00\x00")
	for i := range 8 {
		s.set(modbus.Input, InverterModel+uint16(i), uint16(model[2*i])<<8|uint16(model[2*i+1]))
	}
	s.set(modbus.Holding, InverterPowerLimit, 100)
	c := math.Float32bits(1)
	s.set(modbus.Holding, InverterCosPhi, uint16(c>>16), uint16(c))
	s.set(modbus.Coil, InverterEnabled, 1)
	s.set(modbus.Coil, InverterFaultSwitch, 0)
	inv.update(s, now)
	return inv
}

// update recomputes the measured values from the setpoints and the clock.
func (inv *inverter) update(s *Server, now time.Time) {
	t := now.Sub(inv.start).Seconds()
	enabled := s.words[bitKey{modbus.Coil, InverterEnabled}] != 0
	fault := s.words[bitKey{modbus.Coil, InverterFaultSwitch}] != 0
	limit := float64(s.words[bitKey{modbus.Holding, InverterPowerLimit}])
	power := 0.0
	if enabled && !fault {
		power = InverterRatedPower * limit / 100 * (0.85 + 0.15*math.Sin(2*math.Pi*t/60))
	}
	if dt := now.Sub(inv.last).Hours(); dt > 0 {
		inv.energy += power * dt
	}
	inv.last = now
	status, events := uint32(307), uint16(0)
	switch {
	case fault:
		status, events = 35, 1
	case !enabled:
		status = 303
	}
	put32 := func(addr uint16, v uint32) { s.set(modbus.Input, addr, uint16(v>>16), uint16(v)) }
	put32(InverterStatus, status)
	s.set(modbus.Input, InverterEvents, events)
	e := uint64(inv.energy)
	s.set(modbus.Input, InverterEnergy, uint16(e>>48), uint16(e>>32), uint16(e>>16), uint16(e))
	put32(InverterPower, uint32(int32(math.Round(power))))
	put32(InverterVoltage, uint32(23000+150*math.Sin(t/7)))
	put32(InverterFrequency, uint32(5000+3*math.Sin(t/13)))
	put32(InverterSoC, uint32(500+300*math.Sin(2*math.Pi*t/600)))
	s.set(modbus.Input, InverterTemperature, uint16(int16(250+power/InverterRatedPower*300)))
}

func (inv *inverter) write(s *Server, t modbus.Table, addr uint16, v uint16) error {
	if t == modbus.Holding && addr == InverterPowerLimit && v > 100 {
		return mb.ErrIllegalDataValue
	}
	return nil
}
