package mesh

import (
	"errors"
	"io"

	"github.com/quic-go/quic-go"
)

// readBufSize is a stream reader's buffer. Frames up to this size are
// handed to the Handler straight from it, without a copy.
const readBufSize = 32 << 10

// readStream reads one of the peer's lanes and hands each frame to the
// Handler, in order, on this goroutine.
func (m *Mesh) readStream(p *peer, s *quic.ReceiveStream) {
	defer m.wg.Done()
	fr := newFrameReader(s, readBufSize, m.cfg.MaxFrameSize)
	lane, err := readStreamHeader(fr.br)
	if err != nil {
		m.streamFailed(p, s, -1, err)
		return
	}
	handler := m.cfg.Handler
	for {
		f, err := fr.next()
		if err != nil {
			m.streamFailed(p, s, lane, err)
			return
		}
		m.metrics.framesReceived.Inc()
		m.metrics.bytesReceived.Add(float64(len(f)))
		if handler == nil {
			m.metrics.framesDropped.WithLabelValues(dropNoReader).Inc()
			continue
		}
		handler(p.id, f)
	}
}

// streamFailed ends a stream: a malformed one is cancelled and counted,
// anything else (the stream or connection closed) is routine.
func (m *Mesh) streamFailed(p *peer, s *quic.ReceiveStream, lane int, err error) {
	switch {
	case errors.Is(err, ErrBadFrame):
		m.metrics.badFrames.Inc()
		m.log.Warn().Err(err).Str("peer", string(p.id)).Int("lane", lane).Msg("peer stream malformed")
		s.CancelRead(codeBadFrame)
	case errors.Is(err, io.EOF):
	default:
		m.log.Debug().Err(err).Str("peer", string(p.id)).Int("lane", lane).Msg("peer stream ended")
	}
}
