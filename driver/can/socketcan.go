package can

import (
	"encoding/binary"
	"fmt"
)

// struct can_frame of linux/can.h: a 32-bit id word with flags, the
// length, three bytes of padding and reserved fields, 8 data bytes; the id
// word is in host byte order.
const (
	canFrameSize = 16
	canEFFFlag   = 0x80000000 // extended (29-bit) id
	canRTRFlag   = 0x40000000 // remote transmission request
	canERRFlag   = 0x20000000 // error frame (only with an error mask set)
	canEFFMask   = 0x1FFFFFFF
	canSFFMask   = 0x7FF
)

func encodeCANFrame(f Frame) [canFrameSize]byte {
	var b [canFrameSize]byte
	id := f.ID
	if f.Extended {
		id = id&canEFFMask | canEFFFlag
	} else {
		id &= canSFFMask
	}
	if f.Remote {
		id |= canRTRFlag
	}
	binary.NativeEndian.PutUint32(b[0:4], id)
	b[4] = f.Len
	if !f.Remote {
		copy(b[8:], f.Data)
	}
	return b
}

func decodeCANFrame(b []byte) (Frame, error) {
	if len(b) != canFrameSize {
		return Frame{}, fmt.Errorf("can: %d-byte frame, want %d (CAN FD frames are not read)", len(b), canFrameSize)
	}
	id := binary.NativeEndian.Uint32(b[0:4])
	if id&canERRFlag != 0 {
		return Frame{}, fmt.Errorf("can: error frame 0x%08X", id)
	}
	f := Frame{Extended: id&canEFFFlag != 0, Remote: id&canRTRFlag != 0, Len: b[4]}
	if f.Extended {
		f.ID = id & canEFFMask
	} else {
		f.ID = id & canSFFMask
	}
	if f.Len > MaxDataLen {
		return Frame{}, fmt.Errorf("can: frame %X claims %d data bytes", f.ID, f.Len)
	}
	if !f.Remote {
		f.Data = append([]byte(nil), b[8:8+f.Len]...)
	}
	return f, nil
}
