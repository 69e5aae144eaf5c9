// Package protocol is Arena's client wire format, version 1: the frames,
// error codes, close codes and positions of PROTOCOL.md, and their JSON
// codec. It does no I/O and imports no other Arena package, so the server
// (edge), the Go SDK (client) and the load harness (bench) all speak
// exactly the same bytes.
//
// A WebSocket text message carries one or more frames, each a JSON object,
// separated by '\n'. Client frames are decoded into the union type Frame
// and checked by DecodeClient, which reports problems as *Error values that
// carry the protocol's error code. Server frames have one type each
// (Connected, Subscribed, Ack, ...) so that required fields are always
// present on the wire; the hot-path msg frame has a hand-written appender,
// AppendMsg, because it is encoded once per message and shared by every
// subscriber.
//
// Everything here is safe for concurrent use: there is no shared state.
//
// Example, a server reading a batch:
//
//	for line := range protocol.Lines(wsMessage) {
//		f, err := protocol.DecodeClient(line)
//		if err != nil {
//			reply(protocol.ErrorFrame(idOf(f), err))
//			continue
//		}
//		handle(f)
//	}
package protocol
