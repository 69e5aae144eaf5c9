package mesh

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// Node metadata wire format, version 1: the bytes a node gossips about
// itself in memberlist's node Meta field (at most 512 bytes). Every peer's
// metadata is outside input and is decoded by decodeMeta.
//
//	byte 0     metaVersion (0x01); other values: ErrBadMeta
//	uvarint    load (encoding/binary uvarint), at most 2^32-1
//	uvarint    r, then r bytes: region, UTF-8, 1..maxRegionLen bytes
//	uvarint    u, then u bytes: client URL, UTF-8, 0..maxClientURLLen bytes
//	byte       flags, optional (absent: 0): bit 0 "waiting", the node has
//	           not finished its first join (Mesh.Joined) and serves no
//	           room; other bits are reserved, sent as 0 and ignored
//	...        anything after that is ignored, so a later minor version
//	           can append fields that version-1 readers skip
//
// The node ID is memberlist's node name and the mesh address is
// memberlist's node address and port, so neither is repeated here. The
// QUIC address is the mesh address by construction (one port for gossip
// and QUIC), which is why there is no separate field for it.
//
// Example: load 7, region "eu", no client URL, serving:
//
//	01 07 02 65 75 00 00
const (
	metaVersion     byte = 0x01
	maxRegionLen         = 64
	maxClientURLLen      = 400

	metaFlagWaiting byte = 1 << 0
)

// nodeMeta is what a node gossips about itself.
type nodeMeta struct {
	Load      uint32
	Region    string
	ClientURL string
	// Waiting is set until the node's first join is done (Mesh.Joined):
	// a node finishing its own first join knows by it whether the mesh
	// it found is already serving (see Config.BootstrapExpect). Builds
	// before the flag send none, which reads as false.
	Waiting bool
}

// appendMeta appends the encoding of m to b. The fields are validated by
// Config checks, so the result always fits memberlist's 512-byte limit.
func appendMeta(b []byte, m nodeMeta) []byte {
	b = append(b, metaVersion)
	b = binary.AppendUvarint(b, uint64(m.Load))
	b = binary.AppendUvarint(b, uint64(len(m.Region)))
	b = append(b, m.Region...)
	b = binary.AppendUvarint(b, uint64(len(m.ClientURL)))
	b = append(b, m.ClientURL...)
	var flags byte
	if m.Waiting {
		flags |= metaFlagWaiting
	}
	return append(b, flags)
}

// decodeMeta decodes gossiped metadata, rejecting anything malformed with
// an error wrapping ErrBadMeta. It never panics.
func decodeMeta(b []byte) (nodeMeta, error) {
	var m nodeMeta
	if len(b) == 0 {
		return m, fmt.Errorf("%w: empty", ErrBadMeta)
	}
	if b[0] != metaVersion {
		return m, fmt.Errorf("%w: version %d", ErrBadMeta, b[0])
	}
	b = b[1:]
	load, n := binary.Uvarint(b)
	if n <= 0 || load > 1<<32-1 {
		return m, fmt.Errorf("%w: bad load", ErrBadMeta)
	}
	m.Load = uint32(load)
	b = b[n:]
	var err error
	if m.Region, b, err = metaString(b, "region", 1, maxRegionLen); err != nil {
		return nodeMeta{}, err
	}
	if m.ClientURL, b, err = metaString(b, "client url", 0, maxClientURLLen); err != nil {
		return nodeMeta{}, err
	}
	if len(b) > 0 {
		m.Waiting = b[0]&metaFlagWaiting != 0
	}
	return m, nil
}

// metaString decodes one length-prefixed UTF-8 field and returns the rest.
func metaString(b []byte, field string, minLen, maxLen int) (string, []byte, error) {
	l, n := binary.Uvarint(b)
	if n <= 0 {
		return "", nil, fmt.Errorf("%w: bad %s length", ErrBadMeta, field)
	}
	b = b[n:]
	if l < uint64(minLen) || l > uint64(maxLen) || l > uint64(len(b)) {
		return "", nil, fmt.Errorf("%w: %s length %d", ErrBadMeta, field, l)
	}
	s := b[:l]
	if !utf8.Valid(s) {
		return "", nil, fmt.Errorf("%w: %s is not UTF-8", ErrBadMeta, field)
	}
	return string(s), b[l:], nil
}
