//go:build linux

package edge

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// idleWatch holds the sockets of parked readers: WebSocket sessions that
// had no data for readerLinger, whose reader goroutine has exited (see
// session.parkReader). An idle connection then costs no goroutine, and so
// no stack: about half of what it cost with its reader waiting.
//
// The sockets are registered, one-shot, in an epoll instance of the
// watch's own, and that epoll instance is itself registered with Go's
// poller (os.NewFile on a non-blocking descriptor): one goroutine, parked
// in the runtime like any socket reader, waits for all of them, and holds
// no thread while it waits. When a parked socket becomes readable (data,
// the peer's FIN or an error), the watch starts a new reader for its
// session (session.wakeReader).
//
// A socket's registration goes away with its descriptor, and is only ever
// changed through its syscall.RawConn's Control (which keeps the
// descriptor open meanwhile), so a reused descriptor number is never
// touched. Events name sessions by a number of the watch's, never by a
// pointer.
type idleWatch struct {
	startOnce sync.Once
	startErr  error
	log       *zerolog.Logger
	epoll     *os.File // the epoll instance, on Go's poller; nil until started
	epfd      int      // its descriptor (os.File.Fd would make it blocking)
	done      chan struct{}

	mu     sync.Mutex // guards the fields below
	byID   map[uint64]*session
	nextID uint64
	closed bool
}

// parkSupported: the watch works on this platform.
const parkSupported = true

// start creates the epoll instance and the watch's goroutine, on the first
// park.
func (w *idleWatch) start() error {
	w.startOnce.Do(func() {
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			w.startErr = fmt.Errorf("epoll_create1: %w", err)
			return
		}
		// Non-blocking, so that os.NewFile puts it on Go's poller; it is
		// only ever waited on with a zero timeout.
		if err := unix.SetNonblock(fd, true); err != nil {
			_ = unix.Close(fd)
			w.startErr = fmt.Errorf("idle watch: set non-blocking: %w", err)
			return
		}
		f := os.NewFile(uintptr(fd), "idle-watch")
		raw, err := f.SyscallConn()
		if err != nil {
			_ = f.Close()
			w.startErr = fmt.Errorf("idle watch: %w", err)
			return
		}
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			_ = f.Close()
			w.startErr = errors.New("idle watch closed")
			return
		}
		w.epoll, w.epfd = f, fd
		w.done = make(chan struct{})
		w.byID = make(map[uint64]*session)
		w.mu.Unlock()
		go w.run(raw)
	})
	return w.startErr
}

// park registers s's socket, one-shot, for readability. The caller has
// marked s's reader parked.
func (w *idleWatch) park(s *session) error {
	if err := w.start(); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("idle watch closed")
	}
	if s.parkID == 0 {
		w.nextID++
		s.parkID = w.nextID
		w.byID[s.parkID] = s
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT}
	ev.Fd, ev.Pad = int32(uint32(s.parkID)), int32(uint32(s.parkID>>32))
	op := unix.EPOLL_CTL_ADD
	if s.lean.watched {
		op = unix.EPOLL_CTL_MOD // re-arm
	}
	var ctlErr error
	err := s.lean.raw.Control(func(fd uintptr) {
		ctlErr = unix.EpollCtl(w.epfd, op, int(fd), &ev)
	})
	if err == nil {
		err = ctlErr
	}
	if err != nil {
		return fmt.Errorf("idle watch: epoll_ctl: %w", err)
	}
	s.lean.watched = true
	return nil
}

// forget drops s, whose reader has ended: its socket is closed, which
// removed its registration.
func (w *idleWatch) forget(s *session) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s.parkID != 0 && w.byID != nil {
		delete(w.byID, s.parkID)
	}
}

// run waits for parked sockets to become readable and wakes their
// sessions, until close.
func (w *idleWatch) run(raw syscall.RawConn) {
	defer close(w.done)
	events := make([]unix.EpollEvent, 128)
	var n int
	var waitErr error
	ready := func(fd uintptr) bool {
		n, waitErr = unix.EpollWait(int(fd), events, 0)
		if errors.Is(waitErr, unix.EINTR) {
			n, waitErr = 0, nil
			return true // try again at once
		}
		return n > 0 || waitErr != nil
	}
	wake := make([]*session, 0, len(events))
	for {
		if err := raw.Read(ready); err != nil {
			return // closed
		}
		if waitErr != nil {
			// Not expected of a valid epoll descriptor.
			w.abandon(waitErr)
			return
		}
		w.mu.Lock()
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if s := w.byID[id]; s != nil {
				wake = append(wake, s)
			}
		}
		w.mu.Unlock()
		for i, s := range wake {
			s.wakeReader()
			wake[i] = nil
		}
		wake = wake[:0]
	}
}

// abandon gives up watching after err: every parked session gets its
// reader back, and no session parks again.
func (w *idleWatch) abandon(err error) {
	w.log.Error().Err(err).Msg("idle watch failed; idle connections keep their readers from now on")
	w.mu.Lock()
	w.closed = true
	parked := make([]*session, 0, len(w.byID))
	for _, s := range w.byID {
		parked = append(parked, s)
	}
	w.mu.Unlock()
	for _, s := range parked {
		s.wakeReader()
	}
}

// close stops the watch. Every session has ended by then (Server.Close).
func (w *idleWatch) close() {
	w.mu.Lock()
	w.closed = true
	f, done := w.epoll, w.done
	w.mu.Unlock()
	if f == nil {
		return
	}
	_ = f.Close()
	<-done
}
