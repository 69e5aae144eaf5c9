package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"

	"github.com/arena-mesh/arena/client"
	"github.com/arena-mesh/arena/protocol"
)

func loadPosition() *protocol.Position { return nil }

// ExampleDial connects, subscribes, publishes and reads the message back.
func ExampleDial() {
	ctx := context.Background()
	c, err := client.Dial(ctx, "ws://127.0.0.1:8080", client.Options{Token: os.Getenv("ARENA_TOKEN")})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	sub, err := c.Subscribe(ctx, "chat:lobby", client.SubscribeOptions{})
	if err != nil {
		log.Fatal(err)
	}
	ack, err := c.Publish(ctx, "chat:lobby", json.RawMessage(`{"text":"hello"}`), client.PublishOptions{})
	if err != nil {
		log.Fatal(err)
	}
	ev := <-sub.C()
	fmt.Println(ev.Msg.Seq == ack.Seq, string(ev.Msg.Data))
}

// ExampleClient_Subscribe resumes a subscription from a saved position
// and handles every kind of event.
func ExampleClient_Subscribe() {
	ctx := context.Background()
	c, err := client.Dial(ctx, "ws://127.0.0.1:8080", client.Options{Token: os.Getenv("ARENA_TOKEN")})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	saved := loadPosition() // say, from the last run; nil to start live
	sub, err := c.Subscribe(ctx, "chat:lobby", client.SubscribeOptions{Since: saved, Presence: true})
	if err != nil {
		log.Fatal(err)
	}
	for ev := range sub.C() {
		switch ev.Kind {
		case client.EventMsg:
			fmt.Printf("%s: %s\n", ev.Msg.From, ev.Msg.Data)
		case client.EventReset:
			fmt.Printf("messages between %v and %v are gone\n", ev.Notice.From, ev.Notice.To)
		case client.EventJoin, client.EventLeave:
			fmt.Println(ev.Notice.User, ev.Kind)
		}
	}
	if err := sub.Err(); err != nil {
		log.Fatal(err) // the server refused the subscription on a reconnection
	}
}
