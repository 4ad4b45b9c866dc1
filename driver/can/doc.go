// Package can talks to a classic CAN bus (11- and 29-bit identifiers, up
// to 8 data bytes) through one of two backends behind the Bus interface:
//
//   - SocketCAN (OpenSocketCAN): a raw AF_CAN socket on a Linux network
//     interface such as can0, in pure Go through golang.org/x/sys/unix.
//     The interface is set up outside edk (ip link set can0 type can
//     bitrate 500000 && ip link set can0 up).
//   - slcan (OpenSLCAN): the LAWICEL serial-line protocol that many USB-CAN
//     adapters (CANable, USBtin, CANUSB clones) speak on a serial device
//     such as /dev/ttyACM0; edk sets the bitrate and opens the channel.
//
// CAN FD, remote-frame sending and error frames are not covered: the
// Enapter Lua API this package serves sends and receives data frames.
package can
