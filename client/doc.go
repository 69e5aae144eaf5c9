// Package client is the Go SDK of Arena: a connection to an edge that
// publishes with idempotency keys and subscribes with automatic resume.
//
// Dial connects (and authenticates with Options.Token). Subscribe returns a
// Subscription whose channel C delivers the room's messages in order.
// Publish returns once the message is durable; PublishAsync queues it and
// reports the outcome to a callback, for many publishes in flight from
// one goroutine. When the connection drops
// (a network failure, a node draining with a reconnect frame, the server
// cutting a client that reads too slowly), the client reconnects with
// backoff, trying the edges the server suggested first, and subscribes
// again from each subscription's last position: the messages missed
// meanwhile are delivered, none twice (they are deduplicated by epoch and
// seq). A publish in flight is sent again with the same key, so it takes
// effect once. If a position is no longer retained, the subscription
// delivers an EventReset before going on. A message's Data is what the
// server sent: the server accepts only valid JSON at publish, and the
// client does not parse it again.
//
// # Concurrency
//
// A Client is safe for concurrent use. Each connection has one reader and
// one writer goroutine; frames sent while the writer is busy, or by
// goroutines ready to run when it wakes, are batched into one WebSocket
// message ('\n'-separated). Replies are matched to
// requests by frame id, so calls from many goroutines proceed in parallel.
// Events are delivered without ever blocking the reader: when a
// subscription's channel is full, that room's messages are fetched again
// once it has room (see SubscribeOptions.Buffer). Callbacks in Options,
// and PublishAsync's unless it retried, run on the reader goroutine and
// must not block. Close stops every
// goroutine; calls then return ErrClosed.
//
// # Errors
//
// Refusals by the server are *protocol.Error values (errors.As, or Code):
// CodeUnauthorized from Dial for a bad token, CodeForbidden from Subscribe
// or Publish without the permission, CodeTooLarge, CodeRateLimited with
// RetryMS. Calls retry by themselves on a lost connection and on
// CodeUnavailable until their context ends.
//
// # Example
//
//	c, err := client.Dial(ctx, "ws://127.0.0.1:8080", client.Options{Token: token})
//	if err != nil {
//		return err
//	}
//	defer c.Close()
//	sub, err := c.Subscribe(ctx, "chat:lobby", client.SubscribeOptions{})
//	if err != nil {
//		return err
//	}
//	if _, err := c.Publish(ctx, "chat:lobby", json.RawMessage(`{"text":"hi"}`), client.PublishOptions{}); err != nil {
//		return err
//	}
//	ev := <-sub.C()
//	fmt.Printf("%d: %s\n", ev.Msg.Seq, ev.Msg.Data)
package client
