package edge

import "time"

// WritersRunning returns how many of srv's WebSocket sessions have a
// writer goroutine (for tests: an idle session's writer retires).
func WritersRunning(srv *Server) int {
	srv.mu.Lock()
	sessions := make([]*session, 0, len(srv.sessions))
	for s := range srv.sessions {
		sessions = append(sessions, s)
	}
	srv.mu.Unlock()
	n := 0
	for _, s := range sessions {
		s.mu.Lock()
		if s.writerOn {
			n++
		}
		s.mu.Unlock()
	}
	return n
}

// SetReaderLinger makes srv's idle readers park after d without data
// instead of the default (call it before any client connects).
func SetReaderLinger(srv *Server, d time.Duration) { srv.lingerOverride.Store(int64(d)) }

// ReadersPark reports whether idle readers park on this platform.
const ReadersPark = parkSupported
