//go:build !unix

package edge

import "errors"

// leanSockets: leanConn needs unix read(2); elsewhere connections keep
// net/http's buffers.
const leanSockets = false

var errWouldBlock error = errors.New("would block")

func rawRead(uintptr, []byte) (int, error) { return 0, errors.ErrUnsupported }
