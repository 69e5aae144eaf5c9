//go:build unix

package edge

import (
	"errors"
	"syscall"
)

// leanSockets: leanConn works here.
const leanSockets = true

// errWouldBlock is what rawRead returns when nothing is ready to read.
var errWouldBlock error = syscall.EAGAIN

// rawRead reads from the non-blocking socket fd once.
func rawRead(fd uintptr, p []byte) (int, error) {
	for {
		n, err := syscall.Read(int(fd), p)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if errors.Is(err, syscall.EAGAIN) {
			return 0, errWouldBlock
		}
		return n, err
	}
}
