//go:build !linux

package edge

import (
	"errors"

	"github.com/rs/zerolog"
)

// idleWatch parks idle readers on Linux only (it needs epoll); elsewhere
// an idle connection keeps its reader goroutine.
type idleWatch struct {
	log *zerolog.Logger
}

const parkSupported = false

func (w *idleWatch) park(*session) error { return errors.ErrUnsupported }
func (w *idleWatch) forget(*session)     {}
func (w *idleWatch) close()              {}
