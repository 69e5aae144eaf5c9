package edge_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/arena-mesh/arena/edge/edgetest"
)

// The MQTT tests drive the listener with the real mosquitto_pub and
// mosquitto_sub clients (Debian package mosquitto-clients), and with a
// raw client built on the same packet library as the server where a test
// needs to see packets the command-line clients hide.

// mosquitto returns the path of a mosquitto command-line client. A
// missing client fails the test: it is a dependency of the test suite
// (make installs it), not an optional extra.
func mosquitto(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: the MQTT tests need the mosquitto command-line clients; "+
			"install them with: apt-get install -y mosquitto-clients", name)
	}
	return path
}

// mqttArgs are the connection arguments of a mosquitto client for node n
// with protocol version ("mqttv311" or "mqttv5") and password (the token;
// "" for none).
func mqttArgs(t testing.TB, n *edgetest.Node, version, password string) []string {
	t.Helper()
	host, port, err := net.SplitHostPort(n.MQTTAddr)
	if err != nil {
		t.Fatalf("node has no MQTT listener (start it with edgetest.WithMQTT): %v", err)
	}
	args := []string{"-h", host, "-p", port, "-V", version}
	if password != "" {
		args = append(args, "-u", "ignored", "-P", password)
	}
	return args
}

// mqttPubResult is what a mosquitto_pub run printed and how it exited.
type mqttPubResult struct {
	out  string // stdout and stderr, with -d debug lines
	exit int
}

// mosquittoPub runs mosquitto_pub -d with args (after the connection
// arguments) and stdin, and waits for it.
func mosquittoPub(t testing.TB, n *edgetest.Node, version, password, stdin string, args ...string) mqttPubResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), readTimeout)
	defer cancel()
	all := append(mqttArgs(t, n, version, password), "-d")
	cmd := exec.CommandContext(ctx, mosquitto(t, "mosquitto_pub"), append(all, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	res := mqttPubResult{out: string(out)}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("mosquitto_pub %v did not finish: %s", args, out)
	case errors.As(err, &ee):
		res.exit = ee.ExitCode()
	case err != nil:
		t.Fatalf("mosquitto_pub %v: %v", args, err)
	}
	return res
}

// mqttMsg is a message printed by mosquitto_sub.
type mqttMsg struct {
	qos     int
	topic   string
	payload string
}

// mqttSubProc is a running mosquitto_sub.
type mqttSubProc struct {
	t       testing.TB
	granted []int // SUBACK codes, one per topic
	msgs    chan mqttMsg
	ended   chan struct{} // closed when stdout ends (the process exits)
	stop    chan struct{} // closed at cleanup: scan stops handing out messages

	mu  sync.Mutex
	out bytes.Buffer // everything printed, for failure messages
}

// startMosquittoSub runs mosquitto_sub -d on topics at qos and returns
// once the server's SUBACK arrived (the subscription is live). It stops
// at the end of the test.
func startMosquittoSub(t testing.TB, n *edgetest.Node, version, password string, qos int, topics ...string) *mqttSubProc {
	t.Helper()
	args := append(mqttArgs(t, n, version, password), "-d", "-q", strconv.Itoa(qos), "-F", "MSG %q %t %p")
	for _, topic := range topics {
		args = append(args, "-t", topic)
	}
	// stdbuf makes mosquitto_sub's stdout line-buffered: its SUBACK debug
	// line would otherwise sit in a pipe buffer.
	bin := mosquitto(t, "mosquitto_sub")
	stdbuf, err := exec.LookPath("stdbuf")
	if err != nil {
		t.Fatalf("stdbuf (coreutils) not found: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, stdbuf, append([]string{"-oL", bin}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start mosquitto_sub: %v", err)
	}
	p := &mqttSubProc{t: t, msgs: make(chan mqttMsg, 64), ended: make(chan struct{}), stop: make(chan struct{})}
	subacked := make(chan []int, 1)
	go p.scan(stdout, subacked)
	t.Cleanup(func() {
		close(p.stop)
		cancel()
		_ = cmd.Wait()
		<-p.ended
	})
	select {
	case p.granted = <-subacked:
		return p
	case <-p.ended:
		t.Fatalf("mosquitto_sub %v ended before its SUBACK:\n%s", topics, p.output())
	case <-time.After(readTimeout):
		t.Fatalf("mosquitto_sub %v got no SUBACK:\n%s", topics, p.output())
	}
	return nil
}

// scan reads mosquitto_sub's output: the "Subscribed (mid: 1): 1, 128"
// debug line gives the SUBACK codes; "MSG qos topic payload" lines are
// messages.
func (p *mqttSubProc) scan(r io.Reader, subacked chan<- []int) {
	defer close(p.ended)
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		p.out.WriteString(line + "\n")
		p.mu.Unlock()
		if rest, ok := strings.CutPrefix(line, "Subscribed (mid: "); ok {
			_, codes, _ := strings.Cut(rest, "): ")
			var granted []int
			for c := range strings.SplitSeq(codes, ", ") {
				v, _ := strconv.Atoi(c)
				granted = append(granted, v)
			}
			select {
			case subacked <- granted:
			default: // a second SUBACK (after a reconnect): the first counts
			}
			continue
		}
		if rest, ok := strings.CutPrefix(line, "MSG "); ok {
			f := strings.SplitN(rest, " ", 3)
			if len(f) == 3 {
				qos, _ := strconv.Atoi(f[0])
				select {
				case p.msgs <- mqttMsg{qos: qos, topic: f[1], payload: f[2]}:
				case <-p.stop:
				}
			}
		}
	}
}

func (p *mqttSubProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// next returns the next message mosquitto_sub printed.
func (p *mqttSubProc) next() mqttMsg {
	p.t.Helper()
	select {
	case m := <-p.msgs:
		return m
	case <-time.After(readTimeout):
		p.t.Fatalf("mosquitto_sub printed no message:\n%s", p.output())
	}
	return mqttMsg{}
}

// rawMQTT is a bare MQTT client for tests that look at single packets.
type rawMQTT struct {
	t       testing.TB
	conn    net.Conn
	br      *bufio.Reader
	version byte
}

// dialRaw opens a TCP connection to n's MQTT listener; it sends nothing.
func dialRaw(t testing.TB, n *edgetest.Node, version byte) *rawMQTT {
	t.Helper()
	conn, err := net.DialTimeout("tcp", n.MQTTAddr, readTimeout)
	if err != nil {
		t.Fatalf("dial mqtt: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &rawMQTT{t: t, conn: conn, br: bufio.NewReader(conn), version: version}
}

// connectRaw dials n and completes CONNECT with password (the token; ""
// for none) and client id; edit changes the CONNECT packet first.
func connectRaw(t testing.TB, n *edgetest.Node, version byte, clientID, password string, edit func(*packets.Packet)) *rawMQTT {
	t.Helper()
	c := dialRaw(t, n, version)
	pk := connectPacket(version, clientID, password)
	if edit != nil {
		edit(pk)
	}
	c.send(pk)
	ack := c.read()
	if ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != 0 {
		t.Fatalf("connect: got %s reason 0x%02x, want CONNACK 0", packets.PacketNames[ack.FixedHeader.Type], ack.ReasonCode)
	}
	return c
}

// connectPacket is a CONNECT with a clean session and a 60 s keep-alive.
func connectPacket(version byte, clientID, password string) *packets.Packet {
	name := []byte("MQTT")
	pk := &packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: version,
		Connect: packets.ConnectParams{
			ProtocolName:     name,
			ClientIdentifier: clientID,
			Clean:            true,
			Keepalive:        60,
		},
	}
	if password != "" {
		pk.Connect.UsernameFlag, pk.Connect.Username = true, []byte("ignored")
		pk.Connect.PasswordFlag, pk.Connect.Password = true, []byte(password)
	}
	return pk
}

// send encodes and writes pk in the client's protocol version.
func (c *rawMQTT) send(pk *packets.Packet) {
	c.t.Helper()
	pk.ProtocolVersion = c.version
	var b bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&b)
	case packets.Publish:
		err = pk.PublishEncode(&b)
	case packets.Puback:
		err = pk.PubackEncode(&b)
	case packets.Pubrel:
		err = pk.PubrelEncode(&b)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&b)
	case packets.Unsubscribe:
		err = pk.UnsubscribeEncode(&b)
	case packets.Pingreq:
		err = pk.PingreqEncode(&b)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&b)
	default:
		c.t.Fatalf("rawMQTT cannot send packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		c.t.Fatalf("encode %s: %v", packets.PacketNames[pk.FixedHeader.Type], err)
	}
	c.write(b.Bytes())
}

// write writes raw bytes.
func (c *rawMQTT) write(b []byte) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(readTimeout))
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("write mqtt: %v", err)
	}
}

// tryRead reads and decodes the next packet from the server; io.EOF
// when the server closed the connection.
func (c *rawMQTT) tryRead() (*packets.Packet, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(readTimeout))
	hb, err := c.br.ReadByte()
	if err != nil {
		return nil, err
	}
	pk := &packets.Packet{ProtocolVersion: c.version}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return nil, err
	}
	n, _, err := packets.DecodeLength(c.br)
	if err != nil {
		return nil, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(c.br, body); err != nil {
		return nil, err
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Pubrec:
		err = pk.PubrecDecode(body)
	case packets.Pubcomp:
		err = pk.PubcompDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Unsuback:
		err = pk.UnsubackDecode(body)
	case packets.Pingresp:
		err = pk.PingrespDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	default:
		return nil, errors.New("unexpected packet type " + strconv.Itoa(int(pk.FixedHeader.Type)))
	}
	return pk, err
}

// read is tryRead that fails the test on error.
func (c *rawMQTT) read() *packets.Packet {
	c.t.Helper()
	pk, err := c.tryRead()
	if err != nil {
		c.t.Fatalf("read mqtt packet: %v", err)
	}
	return pk
}

// expect reads the next packet and fails unless it has type typ.
func (c *rawMQTT) expect(typ byte) *packets.Packet {
	c.t.Helper()
	pk := c.read()
	if pk.FixedHeader.Type != typ {
		c.t.Fatalf("got %s (reason 0x%02x %q), want %s", packets.PacketNames[pk.FixedHeader.Type],
			pk.ReasonCode, pk.Properties.ReasonString, packets.PacketNames[typ])
	}
	return pk
}

// expectClosed reads until the server closes the connection and returns
// the DISCONNECT it sent before, if any.
func (c *rawMQTT) expectClosed() *packets.Packet {
	c.t.Helper()
	var last *packets.Packet
	for {
		pk, err := c.tryRead()
		switch {
		case err == nil:
			if pk.FixedHeader.Type == packets.Disconnect {
				last = pk
			}
		case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), isReset(err):
			return last
		default:
			c.t.Fatalf("waiting for the server to close: %v", err)
		}
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// subscribe sends SUBSCRIBE for filters at qos and returns the SUBACK
// codes.
func (c *rawMQTT) subscribe(id uint16, qos byte, filters ...string) []byte {
	c.t.Helper()
	pk := &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: id}
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: qos})
	}
	c.send(pk)
	ack := c.expect(packets.Suback)
	if ack.PacketID != id {
		c.t.Fatalf("SUBACK for packet %d, want %d", ack.PacketID, id)
	}
	return ack.ReasonCodes
}

// publish sends PUBLISH of payload to topic at qos with packet id.
func (c *rawMQTT) publish(id uint16, qos byte, topic, payload string) {
	c.t.Helper()
	c.send(&packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		PacketID:    id,
		TopicName:   topic,
		Payload:     []byte(payload),
	})
}
