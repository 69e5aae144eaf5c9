package mesh

import "errors"

// Sentinel errors, for errors.Is. The mesh imports no Arena package, so
// peer-input errors are sentinels here; the router maps them to client
// codes where a client is affected.
var (
	// ErrClosed is returned by calls on a Mesh after Close.
	ErrClosed = errors.New("mesh: closed")
	// ErrUnknownPeer is returned by Send when the destination is not a
	// live member (never joined, left, was declared dead while the send
	// waited, or is the local node).
	ErrUnknownPeer = errors.New("mesh: unknown peer")
	// ErrFrameTooLarge is returned by Send for a frame over MaxFrameSize.
	ErrFrameTooLarge = errors.New("mesh: frame too large")
	// ErrBadFrame is wrapped by every stream-envelope decoding failure.
	ErrBadFrame = errors.New("mesh: malformed peer frame")
	// ErrBadMeta is wrapped by every node-metadata decoding failure.
	ErrBadMeta = errors.New("mesh: malformed node metadata")
)
