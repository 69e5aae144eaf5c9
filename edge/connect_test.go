package edge_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/arena-mesh/arena/edge"
	"github.com/arena-mesh/arena/edge/auth"
	"github.com/arena-mesh/arena/edge/edgetest"
	"github.com/arena-mesh/arena/protocol"
)

func TestConnectHeaderToken(t *testing.T) {
	n := edgetest.Start(t)
	c := dialWS(t, n, n.AllToken("alice"))
	if got := c.conn.Subprotocol(); got != protocol.Subprotocol {
		t.Errorf("subprotocol %q, want %q", got, protocol.Subprotocol)
	}
	r := c.mustCall(protocol.Frame{Op: protocol.OpConnect}, protocol.OpConnected)
	if r.User != "alice" || r.Node != "test" || r.Region != "local" || r.Session == "" {
		t.Errorf("connected = %+v", r)
	}
	if exp := time.UnixMilli(r.Expires); exp.Before(time.Now().Add(50*time.Minute)) || exp.After(time.Now().Add(61*time.Minute)) {
		t.Errorf("expires %v, want about an hour from now", exp)
	}
	c.ping()
}

func TestConnectFrameToken(t *testing.T) {
	n := edgetest.Start(t)
	c := dialWS(t, n, "")
	r := c.mustCall(protocol.Frame{Op: protocol.OpConnect, Token: n.AllToken("bob"), Name: "test/1"}, protocol.OpConnected)
	if r.User != "bob" {
		t.Errorf("user %q, want bob", r.User)
	}
	c.ping()
}

func TestConnectWithoutSubprotocol(t *testing.T) {
	n := edgetest.Start(t)
	ctx := t.Context()
	conn, _, err := websocket.Dial(ctx, n.WSURL, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + n.AllToken("carol")}},
	})
	if err != nil {
		t.Fatalf("dial without subprotocol: %v", err)
	}
	c := &wsClient{t: t, conn: conn}
	t.Cleanup(func() { _ = conn.CloseNow() })
	c.mustCall(protocol.Frame{Op: protocol.OpConnect}, protocol.OpConnected)
}

func TestFramesBeforeConnect(t *testing.T) {
	n := edgetest.Start(t)
	c := dialWS(t, n, n.AllToken("alice"))
	r := c.call(protocol.Frame{Op: protocol.OpSub, Room: "a"})
	if r.Op != protocol.OpError || r.Code != protocol.CodeBadRequest {
		t.Fatalf("sub before connect: %+v, want bad_request", r)
	}
	c.mustCall(protocol.Frame{Op: protocol.OpConnect}, protocol.OpConnected)
	r = c.call(protocol.Frame{Op: protocol.OpConnect})
	if r.Op != protocol.OpError || r.Code != protocol.CodeBadRequest {
		t.Fatalf("second connect: %+v, want bad_request", r)
	}
	c.ping()
}

func TestConnectTimeout(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithConfig(func(c *edge.Config) { c.ConnectTimeout = 100 * time.Millisecond }))
	c := dialWS(t, n, n.AllToken("alice"))
	c.expectClose(websocket.StatusPolicyViolation)
}

// badTokens are credentials that must be refused.
func badTokens(t *testing.T, n *edgetest.Node) map[string]string {
	claims := jwt.MapClaims{
		"sub":   "mallory",
		"exp":   time.Now().Add(time.Hour).Unix(),
		"arena": map[string]any{"pub": []string{"*"}, "sub": []string{"*"}},
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	wrongKey, err := auth.Sign([]byte("not-the-secret-of-this-node-at-all"), "mallory", all, all, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// The right signature over claims with a forged header alg.
	good := n.AllToken("mallory")
	parts := strings.Split(good, ".")
	forged := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2]
	return map[string]string{
		"alg none":         none,
		"alg none forged":  forged,
		"wrong key":        wrongKey,
		"expired":          n.TokenTTL("mallory", all, all, -time.Hour),
		"garbage":          "not a token",
		"garbage dots":     "a.b.c",
		"random base64":    base64.RawURLEncoding.EncodeToString([]byte(rand.Text())),
		"tampered payload": parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"admin","exp":9999999999}`)) + "." + parts[2],
	}
}

func TestBadTokenInHeaderIs401(t *testing.T) {
	n := edgetest.Start(t)
	for name, tok := range badTokens(t, n) {
		t.Run(name, func(t *testing.T) {
			_, err := tryDial(t, n.WSURL, tok, nil)
			if err == nil {
				t.Fatal("dial succeeded with a bad token")
			}
			code, _, body := httpDo(t, http.MethodGet, n.URL+"/v1/ws", tok, "")
			if code != http.StatusUnauthorized || httpErrorCode(t, body) != protocol.CodeUnauthorized {
				t.Errorf("GET /v1/ws with bad token: %d %s, want 401 unauthorized", code, body)
			}
		})
	}
}

func TestBadTokenInConnectFrame(t *testing.T) {
	n := edgetest.Start(t)
	for name, tok := range badTokens(t, n) {
		t.Run(name, func(t *testing.T) {
			c := dialWS(t, n, "")
			r := c.call(protocol.Frame{Op: protocol.OpConnect, Token: tok})
			if r.Op != protocol.OpError || r.Code != protocol.CodeUnauthorized {
				t.Fatalf("connect with bad token: %+v, want error unauthorized", r)
			}
			c.expectClose(websocket.StatusCode(protocol.CloseUnauthorized))
		})
	}
	t.Run("no token", func(t *testing.T) {
		c := dialWS(t, n, "")
		r := c.call(protocol.Frame{Op: protocol.OpConnect})
		if r.Code != protocol.CodeUnauthorized {
			t.Fatalf("connect without token: %+v, want unauthorized", r)
		}
		c.expectClose(websocket.StatusCode(protocol.CloseUnauthorized))
	})
}

func TestDevModeNeedsNoToken(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithDev())
	c := dialWS(t, n, "")
	r := c.mustCall(protocol.Frame{Op: protocol.OpConnect}, protocol.OpConnected)
	if !strings.HasPrefix(r.User, "anonymous") {
		t.Errorf("dev user %q", r.User)
	}
	c.sub("any:room", nil)
	c.pub("any:room", "", `1`)
}

// TestTokenExpiry connects two clients whose tokens expire in a few
// seconds; one refreshes. The other is closed with 4001 (after an error
// frame); the refreshed one still answers after that.
func TestTokenExpiry(t *testing.T) {
	n := edgetest.Start(t)
	short := n.TokenTTL("alice", all, all, 3*time.Second)

	stale := connectWS(t, n, short)
	fresh := connectWS(t, n, short)
	r := fresh.mustCall(protocol.Frame{Op: protocol.OpRefresh, Token: n.AllToken("alice")}, protocol.OpRefreshed)
	if exp := time.UnixMilli(r.Expires); exp.Before(time.Now().Add(50 * time.Minute)) {
		t.Errorf("refreshed expires %v, want about an hour from now", exp)
	}

	seen := stale.expectClose(websocket.StatusCode(protocol.CloseUnauthorized))
	if len(seen) == 0 || seen[len(seen)-1].Code != protocol.CodeUnauthorized {
		t.Errorf("frames before the 4001 close: %+v, want an unauthorized error", seen)
	}
	fresh.ping()
}

func TestRefreshRules(t *testing.T) {
	n := edgetest.Start(t)
	c := connectWS(t, n, n.AllToken("alice"))
	tests := []struct {
		name  string
		token string
		code  protocol.Code
	}{
		{"other user", n.AllToken("bob"), protocol.CodeUnauthorized},
		{"expired", n.TokenTTL("alice", all, all, -time.Hour), protocol.CodeUnauthorized},
		{"garbage", "x.y.z", protocol.CodeUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.call(protocol.Frame{Op: protocol.OpRefresh, Token: tt.token})
			if r.Op != protocol.OpError || r.Code != tt.code {
				t.Fatalf("refresh: %+v, want error %s", r, tt.code)
			}
			c.ping() // a failed refresh leaves the connection as it was
		})
	}
	t.Run("narrower permissions apply", func(t *testing.T) {
		c.mustCall(protocol.Frame{Op: protocol.OpRefresh, Token: n.Token("alice", []string{"only"}, all)}, protocol.OpRefreshed)
		r := c.call(protocol.Frame{Op: protocol.OpPub, Room: "other", Data: json.RawMessage(`1`)})
		if r.Code != protocol.CodeForbidden {
			t.Fatalf("pub after narrowing refresh: %+v, want forbidden", r)
		}
	})
}

func TestOriginCheck(t *testing.T) {
	n := edgetest.Start(t, edgetest.WithConfig(func(c *edge.Config) { c.AllowedOrigins = []string{"*.example.com"} }))
	tok := n.AllToken("alice")
	t.Run("allowed pattern", func(t *testing.T) {
		c, err := tryDial(t, n.WSURL, tok, http.Header{"Origin": {"https://app.example.com"}})
		if err != nil {
			t.Fatal(err)
		}
		c.mustCall(protocol.Frame{Op: protocol.OpConnect}, protocol.OpConnected)
	})
	t.Run("same host", func(t *testing.T) {
		c, err := tryDial(t, n.WSURL, tok, http.Header{"Origin": {n.URL}})
		if err != nil {
			t.Fatal(err)
		}
		c.mustCall(protocol.Frame{Op: protocol.OpConnect}, protocol.OpConnected)
	})
	t.Run("other origin closes 1008", func(t *testing.T) {
		c, err := tryDial(t, n.WSURL, tok, http.Header{"Origin": {"https://evil.test"}})
		if err != nil {
			t.Fatal(err)
		}
		c.expectClose(websocket.StatusPolicyViolation)
	})
}
