package edge

import (
	"bytes"
	"errors"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/arena-mesh/arena/router"
)

// mqttSub is one subscription of an MQTT session and the router.Sink of
// its router subscription: Notify marks it dirty and wakes the writer,
// which pulls the messages itself (nothing is queued per subscriber).
type mqttSub struct {
	sess *mqttSession
	room string
	sub  *router.Subscription // set before ready

	// qos is the granted QoS (0 or 1); a later SUBSCRIBE of the same
	// topic changes it.
	qos atomic.Uint32
	// queued is true while the subscription is in sess.dirty or
	// sess.blocked (written under sess.mu; read without it as a fast path
	// in Notify).
	queued atomic.Bool
	closed atomic.Bool
	ready  bool // guarded by sess.mu: its SUBACK is queued
}

// Notify implements router.Sink: it runs on the publish path and only
// flags the subscription and wakes the writer.
func (st *mqttSub) Notify(*router.Subscription) {
	if st.queued.Load() || st.closed.Load() {
		return
	}
	s := st.sess
	s.mu.Lock()
	wake := st.ready && !st.queued.Load() && !s.closing
	if wake {
		st.queued.Store(true)
		s.dirty = append(s.dirty, st)
	}
	s.mu.Unlock()
	if wake {
		s.wakeWriter()
	}
}

// close unsubscribes; the writer skips it from now on.
func (st *mqttSub) close() {
	if st.closed.Swap(true) {
		return
	}
	if st.sub != nil {
		st.sub.Close()
	}
}

// markReady lets the writer pull st (its SUBACK is queued) and queues it
// once, in case messages arrived before it was ready.
func (s *mqttSession) markReady(st *mqttSub) {
	s.mu.Lock()
	st.ready = true
	if !st.queued.Load() && !s.closing {
		st.queued.Store(true)
		s.dirty = append(s.dirty, st)
	}
	s.mu.Unlock()
	s.wakeWriter()
}

// requeue puts subscriptions that still have messages back on the dirty
// list.
func (s *mqttSession) requeue(sts []*mqttSub) {
	s.mu.Lock()
	for _, st := range sts {
		if !st.queued.Load() && !st.closed.Load() {
			st.queued.Store(true)
			s.dirty = append(s.dirty, st)
		}
	}
	s.mu.Unlock()
	s.wakeWriter()
}

func (s *mqttSession) wakeWriter() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// send queues a control packet, waiting while the queue is full (the
// reader: back-pressure on the client).
func (s *mqttSession) send(pk *packets.Packet) { s.sendMode(pk, queueWait) }

// sendMode encodes pk for the session's protocol version and queues it.
func (s *mqttSession) sendMode(pk *packets.Packet, mode queueMode) {
	pk.ProtocolVersion = s.version
	pk.Mods.DisallowProblemInfo = !s.problemInfo
	pk.Mods.MaxSize = uint32(s.maxOut)
	var b bytes.Buffer
	if err := appendMQTTPacket(&b, pk); err != nil {
		s.log.Error().Err(err).Msg("encode mqtt packet")
		return
	}
	s.enqueue(b.Bytes(), mode)
}

// enqueue appends an encoded packet to the control queue, with the
// semantics of session.enqueue: a queueWait caller waits while
// SendQueue packets are queued; packets queued once the session is
// closing are dropped, except queueForced ones.
func (s *mqttSession) enqueue(pkt []byte, mode queueMode) {
	s.mu.Lock()
	for mode == queueWait && !s.closing && s.ctrlCount >= s.srv.cfg.SendQueue {
		s.space.Wait()
	}
	if s.closing && mode != queueForced {
		s.mu.Unlock()
		return
	}
	s.ctrl = append(s.ctrl, pkt...)
	s.ctrlCount++
	s.mu.Unlock()
	s.wakeWriter()
}

// waitSpace waits until the control queue has room for one more packet
// and reports false if the session is closing. The reader calls it
// before a QoS 1 or 2 publish, whose acknowledgement is later queued
// without waiting.
func (s *mqttSession) waitSpace() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for !s.closing && s.ctrlCount >= s.srv.cfg.SendQueue {
		s.space.Wait()
	}
	return !s.closing
}

// takeWork swaps out the queued control packets and the dirty
// subscriptions, like session.takeWork: a subscription becomes ready only
// after its SUBACK is queued, so a batch never carries a PUBLISH of a
// subscription before its SUBACK.
func (s *mqttSession) takeWork(ctrl []byte, dirty []*mqttSub) ([]byte, []*mqttSub) {
	s.mu.Lock()
	ctrl, s.ctrl = s.ctrl, ctrl[:0]
	n := s.ctrlCount
	s.ctrlCount = 0
	dirty, s.dirty = s.dirty, dirty[:0]
	for _, st := range dirty {
		st.queued.Store(false)
	}
	if n >= s.srv.cfg.SendQueue {
		s.space.Broadcast()
	}
	s.mu.Unlock()
	s.srv.mqtt.m.packetsOut.Add(float64(n))
	return ctrl, dirty
}

// freeIDs returns how many more QoS 1 PUBLISHes may be unacknowledged;
// when none, st waits on the blocked list until a PUBACK frees one.
func (s *mqttSession) freeIDs(st *mqttSub) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	free := s.outWindow - len(s.inflight)
	if free <= 0 {
		st.queued.Store(true)
		s.blocked = append(s.blocked, st)
		return 0
	}
	return free
}

// takeID allocates a packet id for an outbound QoS 1 PUBLISH.
func (s *mqttSession) takeID() uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		s.nextID++
		if s.nextID == 0 {
			continue
		}
		if _, used := s.inflight[s.nextID]; !used {
			s.inflight[s.nextID] = struct{}{}
			return s.nextID
		}
	}
}

// handlePuback frees the packet id of an acknowledged QoS 1 PUBLISH and
// lets blocked subscriptions go on. Acks of unknown ids are ignored.
func (s *mqttSession) handlePuback(id uint16) {
	s.mu.Lock()
	delete(s.inflight, id)
	wake := len(s.blocked) > 0 && !s.closing
	if wake {
		s.dirty = append(s.dirty, s.blocked...) // still flagged queued
		clear(s.blocked)
		s.blocked = s.blocked[:0]
	}
	s.mu.Unlock()
	if wake {
		s.wakeWriter()
	}
}

// writeLoop is the session's writer: it waits for work, then writes
// everything ready (control packets first, then PUBLISH packets of the
// messages pulled from dirty subscriptions) in one write of about
// batchBytes at most. On fail it closes the socket.
func (s *mqttSession) writeLoop() {
	defer close(s.writerDone)
	var (
		spare  []byte
		dirty  []*mqttSub
		pulled = make([]*router.Message, 0, pullMax)
		enc    bytes.Buffer
	)
	for {
		select {
		case <-s.wake:
		case <-s.done:
			s.closeSocket(spare)
			return
		}
		var buf []byte
		buf, dirty = s.takeWork(spare, dirty)
		for i, st := range dirty {
			if len(buf) >= batchBytes {
				s.requeue(dirty[i:])
				break
			}
			if st.closed.Load() {
				continue
			}
			limit := pullMax
			qos := byte(st.qos.Load())
			if qos > 0 {
				if limit = min(limit, s.freeIDs(st)); limit == 0 {
					continue
				}
			}
			var err error
			pulled, err = st.sub.Pull(pulled[:0], limit)
			if err != nil {
				if errors.Is(err, router.ErrTooSlow) {
					s.srv.m.slowCloses.Inc()
					s.fail(mqttQuotaExceeded, "too slow: fell behind the room's retention", false)
				} else if !st.closed.Load() {
					s.log.Warn().Err(err).Str("room", st.room).Msg("mqtt pull failed")
					s.fail(mqttUnspecified, "internal error", false)
				}
				break
			}
			for _, m := range pulled {
				enc.Reset()
				if !s.encodePublish(&enc, m, qos) {
					s.srv.mqtt.m.dropped.Inc()
					continue
				}
				buf = append(buf, enc.Bytes()...)
			}
			s.srv.m.deliveries.Add(float64(len(pulled)))
			s.srv.mqtt.m.packetsOut.Add(float64(len(pulled)))
			if len(pulled) == limit {
				s.requeue(dirty[i : i+1])
			}
			clear(pulled)
		}
		clear(dirty)
		if len(buf) > 0 && !s.write(buf) {
			return
		}
		spare = buf[:0]
		if cap(spare) > 4*batchBytes {
			spare = nil
		}
	}
}

// encodePublish appends the PUBLISH packet of m at qos to b. false means
// the packet exceeds the client's Maximum Packet Size and is not sent
// ([MQTT-3.1.2-25]).
func (s *mqttSession) encodePublish(b *bytes.Buffer, m *router.Message, qos byte) bool {
	payload := mqttDataPayload(m.Data)
	if s.maxOut > 0 && len(payload)+len(m.Room)+16 > s.maxOut {
		return false
	}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:       m.Room,
		Payload:         payload,
		ProtocolVersion: s.version,
	}
	if qos > 0 {
		pk.PacketID = s.takeID()
	}
	if s.version == mqttVersion5 {
		// Every payload Arena delivers is UTF-8: JSON, or a JSON string's
		// text.
		pk.Properties.PayloadFormat, pk.Properties.PayloadFormatFlag = 1, true
	}
	if err := pk.PublishEncode(b); err != nil {
		s.log.Error().Err(err).Msg("encode mqtt publish")
		return false
	}
	return true
}

// write writes buf within the write timeout. false means the socket is
// gone.
func (s *mqttSession) write(buf []byte) bool {
	_ = s.conn.SetWriteDeadline(time.Now().Add(s.srv.cfg.WriteTimeout))
	if _, err := s.conn.Write(buf); err != nil {
		s.log.Debug().Err(err).Msg("mqtt write failed")
		s.fail(mqttNoDisconnect, "", false)
		_ = s.conn.Close()
		return false
	}
	return true
}

// closeSocket writes the last control packets if the close asks for it,
// then (MQTT 5) a DISCONNECT with the close's reason, and closes the
// socket.
func (s *mqttSession) closeSocket(spare []byte) {
	s.mu.Lock()
	code, text, flush := s.closeCode, s.closeText, s.closeFlush
	version, problemInfo := s.version, s.problemInfo
	s.mu.Unlock()
	var buf []byte
	if flush {
		buf, _ = s.takeWork(spare, nil)
	}
	if version == mqttVersion5 && code != mqttNoDisconnect {
		pk := packets.Packet{
			FixedHeader:     packets.FixedHeader{Type: packets.Disconnect},
			ProtocolVersion: version,
			ReasonCode:      code,
			Mods:            packets.Mods{DisallowProblemInfo: !problemInfo},
		}
		pk.Properties.ReasonString = text
		var b bytes.Buffer
		if err := pk.DisconnectEncode(&b); err == nil {
			buf = append(buf, b.Bytes()...)
			s.srv.mqtt.m.packetsOut.Inc()
		}
	}
	if len(buf) > 0 {
		_ = s.conn.SetWriteDeadline(time.Now().Add(s.srv.cfg.WriteTimeout))
		_, _ = s.conn.Write(buf)
	}
	_ = s.conn.Close()
}
