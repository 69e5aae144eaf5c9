package bench

import (
	"errors"
	"io"
	"net"
	"testing"
)

// TestDialerSourceAndCut dials from a chosen loopback source address and
// cuts the connection: the server sees the address, then the end.
func TestDialerSourceAndCut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	d := &Dialer{LocalIP: sourceIP(6, 16)}
	c, err := d.DialContext(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv := <-accepted
	defer srv.Close()
	if got := srv.RemoteAddr().(*net.TCPAddr).IP.String(); got != "127.0.0.7" {
		t.Fatalf("server sees the client at %s, want 127.0.0.7", got)
	}
	if d.Open() != 1 {
		t.Fatalf("Open = %d, want 1", d.Open())
	}
	if n := d.Cut(); n != 1 {
		t.Fatalf("Cut closed %d connections, want 1", n)
	}
	if _, err := srv.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("server read after the cut: %v, want EOF", err)
	}
	if d.Open() != 0 || d.Cut() != 0 {
		t.Fatal("a cut connection is still tracked")
	}
}

func TestStartNodeReportsEarlyExit(t *testing.T) {
	_, err := StartNode(t.Context(), NodeConfig{Bin: "/bin/false"})
	if !errors.Is(err, errNodeExited) {
		t.Fatalf("err = %v, want errNodeExited", err)
	}
}
