#!/usr/bin/env python3
"""A small Modbus RTU server for driver/modbus's rtu_test.go (pymodbus 3.0).

usage: python3 rtu_server.py DEVICE BAUD PARITY STOP_BITS

Serves every unit id on DEVICE (one end of a socat pty pair) with fixed
values, addressed 0-based as on the wire (zero_mode), and prints "ready" once
the port is open. Anything outside the blocks below is "illegal data
address". The values must match the expectations in rtu_test.go.
"""

import asyncio
import logging
import struct
import sys

from pymodbus.datastore import (
    ModbusSequentialDataBlock,
    ModbusServerContext,
    ModbusSlaveContext,
)
from pymodbus.framer.rtu_framer import ModbusRtuFramer
from pymodbus.server.async_io import ModbusSerialServer


def words(fmt, *vals):
    """Pack values big-endian and split them into 16-bit registers."""
    b = struct.pack(">" + fmt, *vals)
    return list(struct.unpack(">%dH" % (len(b) // 2), b))


def holding():
    hr = [0] * 20
    hr[0] = 1234                                     # uint16
    hr[1] = words("h", -5)[0]                        # int16
    hr[2:4] = words("i", -123456)                    # int32, high word first
    hr[4:6] = list(reversed(words("i", -123456)))    # int32, low word first
    hr[6:8] = words("f", 230.5)                      # float32
    # 10: writable uint16 setpoint (0), 12..13: writable int32 low word first
    return hr


def inputs():
    ir = [0] * 10
    ir[0:2] = words("I", 70000)                      # uint32
    ir[2:4] = words("f", -12.25)                     # float32
    ir[4:8] = words("Q", 1 << 40 | 7)                # uint64
    ir[8:10] = words("I", 123456789)                 # uint32 (a property)
    return ir


async def main():
    device, baud, parity, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    store = ModbusSlaveContext(
        hr=ModbusSequentialDataBlock(0, holding()),
        ir=ModbusSequentialDataBlock(0, inputs()),
        co=ModbusSequentialDataBlock(0, [True, False, False, False, False, False, False, False]),
        di=ModbusSequentialDataBlock(0, [False, True, False, False]),
        zero_mode=True,
    )
    server = ModbusSerialServer(
        ModbusServerContext(slaves=store, single=True),
        framer=ModbusRtuFramer,
        port=device, baudrate=baud, parity=parity, stopbits=stop, bytesize=8,
    )
    await server.start()
    if server.transport is None:  # pymodbus 3.0 logs some open failures instead of raising
        print("cannot open " + device, file=sys.stderr, flush=True)
        sys.exit(1)
    # requests sent while no server was listening wait in the pty: drop them,
    # as a freshly powered device would never see them
    server.transport.serial.reset_input_buffer()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
