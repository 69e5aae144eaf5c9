package edge

import (
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/arena-mesh/arena/protocol"
	"github.com/arena-mesh/arena/router"
)

// mqttKeyProperty is the MQTT 5 user property of a PUBLISH that carries
// the Arena idempotency key.
const mqttKeyProperty = "key"

// handlePublish checks an MQTT PUBLISH and hands it to the router inline,
// like a WebSocket pub (see session.handlePub): PUBACK (QoS 1) or PUBREC
// (QoS 2) is queued by the router's done callback once the message is
// durable; QoS 0 gets nothing. A publish over the user's rate waits for
// the user's bucket instead of being refused (MQTT 3.1.1 has no way to
// say "later"): the reader stops reading, which slows the client down
// through TCP.
func (s *mqttSession) handlePublish(pk *packets.Packet) {
	qos, id := pk.FixedHeader.Qos, pk.PacketID
	if code := pk.PublishValidate(0); code != packets.CodeSuccess {
		s.fail(max(code.Code, mqttProtocolError), code.Reason, true)
		return
	}
	if pk.FixedHeader.Retain && s.version == mqttVersion5 {
		// CONNACK said Retain Available: 0 ([MQTT-3.3.1-11] in MQTT 5).
		// MQTT 3.1.1 clients cannot be told, so their retain flag is
		// ignored.
		s.fail(mqttRetainNotSupported, "retained messages are not supported", true)
		return
	}
	if qos == 2 {
		s.mu.Lock()
		_, dup := s.awaitRel[id]
		s.mu.Unlock()
		if dup {
			// A resent QoS 2 PUBLISH: it was published once already.
			s.sendAck(qos, id, mqttSuccess, "", queueWait)
			return
		}
	}
	req, reason, err := s.publishRequest(pk)
	if err != nil {
		s.refusePublish(qos, id, reason, err)
		return
	}
	if !s.throttle() {
		return
	}
	if qos > 0 && !s.waitSpace() {
		return
	}
	select {
	case s.pubSem <- struct{}{}:
	case <-s.done:
		return
	}
	if qos == 2 && !s.awaitRelease(id) {
		<-s.pubSem
		return
	}
	err = s.srv.cfg.Router.PublishAsync(s.ctx, req, func(ack router.Ack, err error) {
		s.published(qos, id, ack, err)
	})
	if err != nil {
		if s.ctx.Err() != nil {
			<-s.pubSem
			return // the session is gone; nobody to tell
		}
		s.published(qos, id, router.Ack{}, err)
	}
}

// publishRequest maps a PUBLISH to a router request and applies the
// checks of every publish but the rate: topic, payload, key, permission,
// size. The reason is the MQTT 5 code of a failure.
func (s *mqttSession) publishRequest(pk *packets.Packet) (router.PublishRequest, byte, error) {
	room, reason, err := mqttTopicRoom(pk.TopicName)
	if err != nil {
		return router.PublishRequest{}, reason, err
	}
	data, err := mqttPayloadData(pk.Payload)
	if err != nil {
		return router.PublishRequest{}, mqttPayloadInvalid, err
	}
	var key string
	for _, u := range pk.Properties.User {
		if u.Key == mqttKeyProperty {
			key = u.Val
		}
	}
	if err := protocol.CheckKey(key); err != nil {
		return router.PublishRequest{}, mqttImplementation, err
	}
	if !s.principal.CanPublish(room) {
		return router.PublishRequest{}, mqttNotAuthorized, protocol.Errorf(protocol.CodeForbidden, "no permission to publish to %s", room)
	}
	if err := protocol.DataTooLarge(data, s.srv.cfg.MaxDataBytes); err != nil {
		return router.PublishRequest{}, mqttQuotaExceeded, err
	}
	return router.PublishRequest{Room: room, From: s.principal.User, Key: key, Data: data}, mqttSuccess, nil
}

// refusePublish answers a publish that failed its checks. MQTT 5 QoS 1
// and 2 get a PUBACK or PUBREC with reason; where MQTT has no negative
// acknowledgement (QoS 0, and every MQTT 3.1.1 publish) the connection
// is closed ([MQTT-3.3.5-2]), with a DISCONNECT carrying the reason for
// MQTT 5.
func (s *mqttSession) refusePublish(qos byte, id uint16, reason byte, err error) {
	e := protocol.AsError(err)
	s.srv.m.published(false, e)
	s.srv.m.errorSent(e.Code)
	switch {
	case s.version == mqttVersion5 && qos > 0:
		s.sendAck(qos, id, reason, e.Message, queueWait)
	case s.version == mqttVersion5:
		s.fail(reason, e.Message, true)
	default:
		s.fail(mqttNoDisconnect, "", true)
	}
}

// published is the router's done callback of a publish: it queues the
// PUBACK or PUBREC without waiting (its room was reserved by waitSpace),
// then frees the in-flight slot. A QoS 0 publish that failed is dropped
// (at most once); a QoS 1 or 2 failure is a negative acknowledgement for
// MQTT 5, and closes an MQTT 3.1.1 connection, whose client publishes
// again when it reconnects.
func (s *mqttSession) published(qos byte, id uint16, ack router.Ack, err error) {
	err = s.srv.publishOutcome(err)
	s.srv.m.published(ack.Dup, err)
	switch {
	case qos == 0:
		if err != nil {
			s.srv.mqtt.m.dropped.Inc()
		}
	case err == nil:
		s.sendAck(qos, id, mqttSuccess, "", queueNoWait)
	default:
		if qos == 2 {
			s.mu.Lock()
			delete(s.awaitRel, id)
			s.mu.Unlock()
		}
		e := protocol.AsError(err)
		s.srv.m.errorSent(e.Code)
		if s.version == mqttVersion5 {
			s.sendAck(qos, id, mqttPublishReason(err), e.Message, queueNoWait)
		} else {
			s.fail(mqttNoDisconnect, "", true)
		}
	}
	<-s.pubSem
}

// sendAck queues the PUBACK (QoS 1) or PUBREC (QoS 2) of packet id.
func (s *mqttSession) sendAck(qos byte, id uint16, reason byte, text string, mode queueMode) {
	typ := packets.Puback
	if qos == 2 {
		typ = packets.Pubrec
	}
	pk := &packets.Packet{FixedHeader: packets.FixedHeader{Type: typ}, PacketID: id, ReasonCode: reason}
	pk.Properties.ReasonString = text
	s.sendMode(pk, mode)
}

// throttle waits until the user's rate limit allows one more publish.
// false means the session closed meanwhile.
func (s *mqttSession) throttle() bool {
	for counted := false; ; counted = true {
		ok, retry := s.srv.limiters.allow(s.principal.User, s.srv.now())
		if ok {
			return true
		}
		if !counted {
			s.srv.mqtt.m.throttled.Inc()
		}
		t := time.NewTimer(retry)
		select {
		case <-t.C:
		case <-s.done:
			t.Stop()
			return false
		}
	}
}

// awaitRelease records QoS 2 packet id as published and waiting for
// PUBREL. More than Receive Maximum of them close the connection.
func (s *mqttSession) awaitRelease(id uint16) bool {
	s.mu.Lock()
	full := len(s.awaitRel) >= s.srv.cfg.MaxInFlight
	if !full {
		s.awaitRel[id] = struct{}{}
	}
	s.mu.Unlock()
	if full {
		s.fail(mqttReceiveMaxExceeded, "too many QoS 2 publishes waiting for PUBREL", true)
	}
	return !full
}

// handlePubrel completes the QoS 2 flow of packet id with PUBCOMP.
func (s *mqttSession) handlePubrel(pk *packets.Packet) {
	s.mu.Lock()
	_, ok := s.awaitRel[pk.PacketID]
	delete(s.awaitRel, pk.PacketID)
	s.mu.Unlock()
	reason := mqttSuccess
	if !ok && s.version == mqttVersion5 {
		reason = mqttIDNotFound
	}
	s.send(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubcomp}, PacketID: pk.PacketID, ReasonCode: reason})
}

// handleSubscribe subscribes to the room of each filter and answers
// SUBACK with a code per filter: the granted QoS (at most 1: messages are
// delivered at QoS 0 or 1), or why the filter was refused. Subscribing to
// a topic again only changes its QoS.
func (s *mqttSession) handleSubscribe(pk *packets.Packet) {
	if code := pk.SubscribeValidate(); code != packets.CodeSuccess {
		s.fail(max(code.Code, mqttProtocolError), code.Reason, true)
		return
	}
	codes := make([]byte, len(pk.Filters))
	var added []*mqttSub
	for i, f := range pk.Filters {
		var st *mqttSub
		codes[i], st = s.subscribe(f.Filter, min(f.Qos, 1))
		if st != nil {
			added = append(added, st)
		}
	}
	s.send(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Suback}, PacketID: pk.PacketID, ReasonCodes: codes})
	// Only now may the writer pull: the SUBACK is queued, and the writer
	// takes queued packets before it pulls.
	for _, st := range added {
		s.markReady(st)
	}
}

// subscribe subscribes to the room of one filter. It returns the SUBACK
// code, and the new subscription (nil if refused or already there).
func (s *mqttSession) subscribe(filter string, qos byte) (byte, *mqttSub) {
	room, reason, err := mqttFilterRoom(filter)
	if err != nil {
		s.srv.m.errorSent(protocol.CodeBadRequest)
		return s.subFailure(reason), nil
	}
	if !s.principal.CanSubscribe(room) {
		s.srv.m.errorSent(protocol.CodeForbidden)
		return s.subFailure(mqttNotAuthorized), nil
	}
	if st := s.subs[room]; st != nil {
		st.qos.Store(uint32(qos))
		return qos, nil
	}
	st := &mqttSub{sess: s, room: room}
	st.qos.Store(uint32(qos))
	res, err := s.srv.cfg.Router.Subscribe(s.ctx, router.SubscribeRequest{Room: room, Sink: st})
	if err != nil {
		s.srv.m.errorSent(protocol.AsError(s.srv.routerError(err)).Code)
		return s.subFailure(mqttUnspecified), nil
	}
	st.sub = res.Sub
	s.subs[room] = st
	return qos, st
}

// subFailure is the SUBACK failure code for MQTT 5 reason; MQTT 3.1.1 has
// only 0x80.
func (s *mqttSession) subFailure(reason byte) byte {
	if s.version == mqttVersion5 {
		return reason
	}
	return mqtt3SubackFailure
}

// handleUnsubscribe ends the subscriptions of the filters and answers
// UNSUBACK (with a code per filter for MQTT 5).
func (s *mqttSession) handleUnsubscribe(pk *packets.Packet) {
	if code := pk.UnsubscribeValidate(); code != packets.CodeSuccess {
		s.fail(max(code.Code, mqttProtocolError), code.Reason, true)
		return
	}
	codes := make([]byte, len(pk.Filters))
	for i, f := range pk.Filters {
		room, reason, err := mqttFilterRoom(f.Filter)
		st := s.subs[room]
		switch {
		case err != nil && reason == mqttFilterInvalid:
			codes[i] = reason
		case st == nil:
			// Wildcard and shared filters included: they were never
			// subscribed.
			codes[i] = mqttNoSubscriptionExists
		default:
			delete(s.subs, room)
			st.close()
			codes[i] = mqttSuccess
		}
	}
	s.send(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsuback}, PacketID: pk.PacketID, ReasonCodes: codes})
}

// publishOutcome is the client-facing error of a publish's outcome (nil
// for success).
func (s *Server) publishOutcome(err error) error {
	if err == nil {
		return nil
	}
	return s.routerError(err)
}
