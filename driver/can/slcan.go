package can

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/goburrow/serial"
)

// Defaults of SLCANConfig.
const (
	// DefaultSLCANBaud is the serial line speed; USB CDC adapters
	// (CANable, USBtin) ignore it, UART ones need theirs.
	DefaultSLCANBaud = 115200
	// DefaultAnswerTimeout bounds the wait for the adapter's answer to
	// one command.
	DefaultAnswerTimeout = 500 * time.Millisecond
)

// slcanPoll bounds one blocking serial read, so the reader sees Close.
const slcanPoll = 20 * time.Millisecond

// slcanMaxLine is longer than any LAWICEL line (T + 8 id + 1 len + 16
// data + 4 timestamp), so a longer one is noise.
const slcanMaxLine = 64

// ErrRefused is the adapter's BEL answer: the channel is not open, the
// bus is off, its buffer is full or it did not understand the command.
var ErrRefused = errors.New("adapter refused the command (BEL)")

var slcanBitrates = map[int]byte{
	10000: '0', 20000: '1', 50000: '2', 100000: '3', 125000: '4',
	250000: '5', 500000: '6', 800000: '7', 1000000: '8',
}

// CheckSLCANBitrate reports a bitrate that LAWICEL's S0..S8 cannot set.
func CheckSLCANBitrate(bitrate int) error {
	if _, ok := slcanBitrates[bitrate]; !ok {
		return fmt.Errorf("slcan bitrate %d: want one of 10000, 20000, 50000, 100000, 125000, 250000, 500000, 800000, 1000000", bitrate)
	}
	return nil
}

// SLCANConfig configures OpenSLCAN.
type SLCANConfig struct {
	Device  string // serial device, e.g. /dev/ttyACM0
	Bitrate int    // CAN bitrate in bit/s (S0..S8: 10k … 1M)
	// Baud is the serial line speed (0: DefaultSLCANBaud).
	Baud int
	// AnswerTimeout bounds the wait for an answer (0:
	// DefaultAnswerTimeout). An adapter that never answers (some CANable
	// firmware) is noticed at the first command, then not waited for.
	AnswerTimeout time.Duration
	Logger        *slog.Logger // nil: silent
}

const (
	answersUnknown int32 = iota
	answersYes
	answersNever
)

// SLCAN is a CAN bus behind a LAWICEL (slcan) serial adapter. One
// goroutine, started by OpenSLCAN and stopped by Close, reads the serial
// line: frames go to Receive, answers to the command waiting for them.
type SLCAN struct {
	cfg     SLCANConfig
	log     *slog.Logger
	port    serial.Port
	frames  chan Frame
	answers chan error
	cmd     sync.Mutex // one command in flight, so answers pair up
	answer  atomic.Int32
	ignored atomic.Int64

	stop      chan struct{}
	done      chan struct{} // the reader has returned; readErr is set
	readErr   error
	closed    atomic.Bool
	closeOnce sync.Once
}

var _ Bus = (*SLCAN)(nil)

// OpenSLCAN opens the serial device, sets the bitrate and opens the CAN
// channel (C, Sn, O). ctx bounds the setup.
func OpenSLCAN(ctx context.Context, cfg SLCANConfig) (*SLCAN, error) {
	code, ok := slcanBitrates[cfg.Bitrate]
	if !ok {
		return nil, CheckSLCANBitrate(cfg.Bitrate)
	}
	if cfg.Baud <= 0 {
		cfg.Baud = DefaultSLCANBaud
	}
	if cfg.AnswerTimeout <= 0 {
		cfg.AnswerTimeout = DefaultAnswerTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	port, err := serial.Open(&serial.Config{Address: cfg.Device, BaudRate: cfg.Baud, DataBits: 8, StopBits: 1, Parity: "N", Timeout: slcanPoll})
	if err != nil {
		return nil, fmt.Errorf("slcan %s: open: %w", cfg.Device, err)
	}
	s := &SLCAN{
		cfg: cfg, log: log, port: port,
		frames: make(chan Frame, 1024), answers: make(chan error, 1),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	go s.read()
	// C first: the channel may still be open from an earlier run, and a
	// half-written command in the adapter's buffer ends here too; its
	// answer (BEL when already closed) does not matter.
	if err := s.command(ctx, "C"); err != nil && !errors.Is(err, ErrRefused) {
		s.Close()
		return nil, fmt.Errorf("slcan %s: %w", cfg.Device, err)
	}
	for _, c := range []string{"S" + string(code), "O"} {
		if err := s.command(ctx, c); err != nil {
			s.Close()
			return nil, fmt.Errorf("slcan %s: %s: %w", cfg.Device, c, err)
		}
	}
	return s, nil
}

// Send transmits a data frame and, if the adapter answers commands,
// waits for its answer.
func (s *SLCAN) Send(ctx context.Context, f Frame) error {
	if err := f.Validate(); err != nil {
		return err
	}
	if f.Remote {
		return errors.New("can: sending remote frames is not supported")
	}
	if err := s.command(ctx, encodeSLCANFrame(f)); err != nil {
		return fmt.Errorf("slcan %s: send %v: %w", s.cfg.Device, f, err)
	}
	return nil
}

// Receive returns the next frame; after the adapter is gone, the frames
// read before, then the read error.
func (s *SLCAN) Receive(ctx context.Context) (Frame, error) {
	select {
	case f := <-s.frames:
		return f, nil
	case <-s.done:
		select {
		case f := <-s.frames:
			return f, nil
		default:
			return Frame{}, s.err()
		}
	case <-ctx.Done():
		return Frame{}, ctx.Err()
	}
}

// IgnoredLines counts the adapter's lines that were neither a frame nor
// an answer (noise, status replies).
func (s *SLCAN) IgnoredLines() int64 { return s.ignored.Load() }

// Close closes the CAN channel (best effort) and the serial device.
func (s *SLCAN) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		select {
		case <-s.done:
		default:
			_, _ = s.port.Write([]byte("C\r"))
		}
		close(s.stop)
		<-s.done
		err = s.port.Close()
	})
	return err
}

func (s *SLCAN) err() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return fmt.Errorf("slcan %s: adapter gone: %w", s.cfg.Device, s.readErr)
}

// command writes one command line and waits for its answer, unless the
// adapter has shown that it never answers.
func (s *SLCAN) command(ctx context.Context, line string) error {
	s.cmd.Lock()
	defer s.cmd.Unlock()
	select {
	case <-s.answers: // a late answer to an earlier command
	default:
	}
	select {
	case <-s.done:
		return s.err()
	default:
	}
	if err := s.write(ctx, []byte(line+"\r")); err != nil {
		return err
	}
	if s.answer.Load() == answersNever {
		return nil
	}
	t := time.NewTimer(s.cfg.AnswerTimeout)
	defer t.Stop()
	select {
	case err := <-s.answers:
		s.answer.Store(answersYes)
		return err
	case <-t.C:
		if s.answer.CompareAndSwap(answersUnknown, answersNever) {
			s.log.Info("slcan adapter does not answer commands; its errors will not be seen", "device", s.cfg.Device)
			return nil
		}
		return fmt.Errorf("no answer from the adapter in %v", s.cfg.AnswerTimeout)
	case <-s.done:
		return s.err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// write writes all of b; the device is non-blocking, so a full output
// buffer is waited out until ctx ends.
func (s *SLCAN) write(ctx context.Context, b []byte) error {
	for len(b) > 0 {
		n, err := s.port.Write(b)
		if n > 0 {
			b = b[n:]
		}
		switch {
		case errors.Is(err, syscall.EAGAIN):
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Millisecond):
			}
		case err != nil:
			return fmt.Errorf("write: %w", err)
		}
	}
	return nil
}

// read is the reader goroutine: it splits the line at \r and BEL.
func (s *SLCAN) read() {
	defer close(s.done)
	buf := make([]byte, 256)
	line := make([]byte, 0, slcanMaxLine)
	overlong := false
	for {
		select {
		case <-s.stop:
			s.readErr = ErrClosed
			return
		default:
		}
		n, err := s.port.Read(buf)
		n = max(n, 0)
		if err == nil && n == 0 {
			err = io.EOF // select said readable, read found nothing: hung up
		}
		for _, c := range buf[:n] {
			switch c {
			case '\r':
				if !overlong && !s.handle(line) {
					return
				}
				line, overlong = line[:0], false
			case '\a':
				s.deliverAnswer(ErrRefused)
				line, overlong = line[:0], false
			case '\n': // some adapters end lines with \r\n
			default:
				if len(line) == slcanMaxLine {
					if !overlong {
						s.ignore("overlong line", line)
					}
					overlong = true
					continue
				}
				line = append(line, c)
			}
		}
		if err != nil && !errors.Is(err, serial.ErrTimeout) {
			s.readErr = err
			return
		}
	}
}

// handle takes one line; false when the reader was told to stop while
// waiting to hand over a frame.
func (s *SLCAN) handle(line []byte) bool {
	if len(line) == 0 || string(line) == "z" || string(line) == "Z" {
		s.deliverAnswer(nil)
		return true
	}
	switch line[0] {
	case 't', 'T', 'r', 'R':
		f, err := parseSLCANFrame(line)
		if err != nil {
			s.ignore(err.Error(), line)
			return true
		}
		select {
		case s.frames <- f:
			return true
		case <-s.stop:
			s.readErr = ErrClosed
			return false
		}
	}
	s.ignore("not a frame or an answer", line)
	return true
}

func (s *SLCAN) deliverAnswer(err error) {
	select {
	case s.answers <- err:
	default:
	}
}

func (s *SLCAN) ignore(why string, line []byte) {
	s.ignored.Add(1)
	s.log.Debug("slcan line ignored", "device", s.cfg.Device, "why", why, "line", strconv.Quote(string(line)))
}

// encodeSLCANFrame is tIIILDD… or TIIIIIIIILDD… (without the \r).
func encodeSLCANFrame(f Frame) string {
	var b []byte
	if f.Extended {
		b = fmt.Appendf(b, "T%08X%d", f.ID, len(f.Data))
	} else {
		b = fmt.Appendf(b, "t%03X%d", f.ID, len(f.Data))
	}
	return string(fmt.Appendf(b, "%X", f.Data)) // LAWICEL writes upper case
}

// parseSLCANFrame reads t/T (data) and r/R (remote) lines, with or
// without the 4-digit timestamp an adapter adds after Z1.
func parseSLCANFrame(line []byte) (Frame, error) {
	if len(line) == 0 {
		return Frame{}, errors.New("empty line")
	}
	f := Frame{Extended: line[0] == 'T' || line[0] == 'R', Remote: line[0] == 'r' || line[0] == 'R'}
	idLen := 3
	if f.Extended {
		idLen = 8
	}
	if len(line) < 1+idLen+1 {
		return Frame{}, fmt.Errorf("frame line too short")
	}
	id, err := strconv.ParseUint(string(line[1:1+idLen]), 16, 32)
	if err != nil {
		return Frame{}, fmt.Errorf("frame id %q is not hex", line[1:1+idLen])
	}
	f.ID = uint32(id)
	dlc := line[1+idLen]
	if dlc < '0' || dlc > '8' {
		return Frame{}, fmt.Errorf("frame length %q is not 0..8", dlc)
	}
	f.Len = dlc - '0'
	rest := line[2+idLen:]
	dataLen := 2 * int(f.Len)
	if f.Remote {
		dataLen = 0
	}
	if len(rest) != dataLen && len(rest) != dataLen+4 {
		return Frame{}, fmt.Errorf("frame carries %d hex digits for length %d", len(rest), f.Len)
	}
	if !f.Remote {
		f.Data = make([]byte, f.Len)
		if _, err := hex.Decode(f.Data, rest[:dataLen]); err != nil {
			return Frame{}, fmt.Errorf("frame data %q is not hex", rest[:dataLen])
		}
	}
	if len(rest) > dataLen {
		if _, err := strconv.ParseUint(string(rest[dataLen:]), 16, 16); err != nil {
			return Frame{}, fmt.Errorf("frame timestamp %q is not hex", rest[dataLen:])
		}
	}
	if err := f.Validate(); err != nil {
		return Frame{}, err
	}
	return f, nil
}
