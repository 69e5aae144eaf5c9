package client

import (
	"errors"

	"github.com/arena-mesh/arena/protocol"
)

// Errors returned by the client. Server-side failures are *protocol.Error
// values carrying a protocol.Code (forbidden, too_large, rate_limited, ...);
// use errors.As to read them, or Code.
var (
	// ErrClosed is returned by calls on a closed Client, and by calls that
	// were waiting when it was closed. When the client closed itself
	// because it could not go on (say the server no longer accepts its
	// token), the error wraps that cause too.
	ErrClosed = errors.New("client: closed")
	// ErrAlreadySubscribed is returned by Subscribe for a room the client
	// is already subscribed to: a client holds one subscription per room.
	ErrAlreadySubscribed = errors.New("client: already subscribed to this room")
)

// errConnLost fails the calls in flight on a connection that ended; they
// are sent again on the next one. It never reaches the caller.
var errConnLost = errors.New("client: connection lost")

// Code returns the protocol error code carried by err, or "" if err is
// not (and does not wrap) a *protocol.Error.
func Code(err error) protocol.Code {
	var e *protocol.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// retryable reports whether a server error means "try the same request
// again later": the room's home is unreachable now, or the node failed
// in a way a retry may not hit.
func retryable(e *protocol.Error) bool {
	return e.Code == protocol.CodeUnavailable
}
