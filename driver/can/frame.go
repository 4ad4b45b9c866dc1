package can

import (
	"context"
	"errors"
	"fmt"
)

// Identifier and payload limits of classic CAN.
const (
	MaxStandardID = 0x7FF      // 11-bit identifier
	MaxExtendedID = 0x1FFFFFFF // 29-bit identifier
	MaxDataLen    = 8
)

// ErrClosed is returned by a Bus that was closed.
var ErrClosed = errors.New("can: bus closed")

// Frame is one classic CAN data frame (or a remote frame, when received).
type Frame struct {
	ID       uint32
	Extended bool // a 29-bit identifier
	Remote   bool // a remote transmission request: no data, Len bytes asked for
	Len      uint8
	Data     []byte // Len bytes unless Remote
}

// NewFrame makes a data frame, extended when id does not fit 11 bits.
func NewFrame(id uint32, data []byte) (Frame, error) {
	f := Frame{ID: id, Extended: id > MaxStandardID, Len: uint8(min(len(data), MaxDataLen+1)), Data: data}
	return f, f.Validate()
}

// Validate reports an identifier or payload that classic CAN cannot carry.
func (f Frame) Validate() error {
	switch {
	case f.Extended && f.ID > MaxExtendedID:
		return fmt.Errorf("can: id 0x%X does not fit 29 bits (max 0x%X)", f.ID, MaxExtendedID)
	case !f.Extended && f.ID > MaxStandardID:
		return fmt.Errorf("can: id 0x%X does not fit 11 bits (max 0x%X; use an extended frame)", f.ID, MaxStandardID)
	case len(f.Data) > MaxDataLen || f.Len > MaxDataLen:
		return fmt.Errorf("can: %d data bytes, classic CAN carries at most %d", max(len(f.Data), int(f.Len)), MaxDataLen)
	case !f.Remote && int(f.Len) != len(f.Data):
		return fmt.Errorf("can: length %d but %d data bytes", f.Len, len(f.Data))
	}
	return nil
}

func (f Frame) String() string {
	kind := ""
	if f.Remote {
		kind = " remote"
	}
	if f.Extended {
		return fmt.Sprintf("%08X [%d]%s % X", f.ID, f.Len, kind, f.Data)
	}
	return fmt.Sprintf("%03X [%d]%s % X", f.ID, f.Len, kind, f.Data)
}

// Bus is an open CAN bus. Send and Receive may be called from different
// goroutines at the same time; Close ends both.
type Bus interface {
	// Send transmits one frame; ctx bounds the wait for the adapter.
	Send(ctx context.Context, f Frame) error
	// Receive waits for the next frame until ctx is done or the bus
	// fails or is closed (ErrClosed).
	Receive(ctx context.Context) (Frame, error)
	Close() error
}
