package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestBadTokens feeds every kind of bad credential to an Authenticator
// that accepts HS256 only, and checks each is refused with a clear
// unauthorized error that does not quote it.
func TestBadTokens(t *testing.T) {
	k := keys(t)
	a := newAuth(t, Config{Secret: testSecret})
	hs := func(c jwt.MapClaims) string { return signWith(t, jwt.SigningMethodHS256, testSecret, c, nil) }
	valid := hs(validClaims())
	parts := strings.Split(valid, ".")
	payload := func(c jwt.MapClaims) string { return mustJSON(t, c) }
	// hsRaw signs a raw JSON payload with the right secret, for claim sets
	// MapClaims cannot express.
	hsRaw := func(p string) string {
		h := `{"alg":"HS256","typ":"JWT"}`
		tok := craft(h, p, nil)
		signing := tok[:strings.LastIndexByte(tok, '.')]
		mac := hmac.New(sha256.New, testSecret)
		mac.Write([]byte(signing))
		return craft(h, p, mac.Sum(nil))
	}

	tests := []struct {
		name string
		cred string
		want string // part of the message
	}{
		{"alg none", craft(`{"alg":"none","typ":"JWT"}`, payload(validClaims()), nil), `algorithm "none" is not accepted`},
		{"alg none with signature", craft(`{"alg":"none"}`, payload(validClaims()), []byte("sig")), `"none" is not accepted`},
		{"alg None", craft(`{"alg":"None"}`, payload(validClaims()), nil), "not accepted"},
		{"alg missing", craft(`{"typ":"JWT"}`, payload(validClaims()), []byte("x")), "not accepted"},
		{"alg not a string", craft(`{"alg":5}`, payload(validClaims()), []byte("x")), "not accepted"},
		{"HS256 wrong secret", signWith(t, jwt.SigningMethodHS256, []byte("another-secret-entirely-32-bytes"), validClaims(), nil), "signature is invalid"},
		{"HS512 with the right secret", signWith(t, jwt.SigningMethodHS512, testSecret, validClaims(), nil), `"HS512" is not accepted`},
		{"RS256 when only HS256 configured", signWith(t, jwt.SigningMethodRS256, k.rsa, validClaims(), nil), `"RS256" is not accepted`},
		{"ES256 when only HS256 configured", signWith(t, jwt.SigningMethodES256, k.ec, validClaims(), nil), `"ES256" is not accepted`},
		{"EdDSA when only HS256 configured", signWith(t, jwt.SigningMethodEdDSA, k.ed, validClaims(), nil), `"EdDSA" is not accepted`},
		{"tampered payload", parts[0] + "." + strings.Split(hs(with(func(c jwt.MapClaims) { c["sub"] = "mallory" })), ".")[1] + "." + parts[2], "signature is invalid"},
		{"signature cut", parts[0] + "." + parts[1] + ".", "signature is invalid"},
		{"expired", hs(with(func(c jwt.MapClaims) { c["exp"] = testNow.Add(-time.Minute).Unix() })), "expired"},
		{"expired beyond leeway", hs(with(func(c jwt.MapClaims) { c["exp"] = testNow.Add(-DefaultLeeway - time.Second).Unix() })), "expired"},
		{"nbf in the future", hs(with(func(c jwt.MapClaims) { c["nbf"] = testNow.Add(time.Hour).Unix() })), "not valid yet"},
		{"nbf beyond leeway", hs(with(func(c jwt.MapClaims) { c["nbf"] = testNow.Add(DefaultLeeway + time.Second).Unix() })), "not valid yet"},
		{"missing sub", hs(with(func(c jwt.MapClaims) { delete(c, "sub") })), "no sub"},
		{"empty sub", hs(with(func(c jwt.MapClaims) { c["sub"] = "" })), "no sub"},
		{"sub too long", hs(with(func(c jwt.MapClaims) { c["sub"] = strings.Repeat("u", maxUserLen+1) })), "sub is longer"},
		{"missing exp", hs(with(func(c jwt.MapClaims) { delete(c, "exp") })), "no exp"},
		{"sub is a number", hs(with(func(c jwt.MapClaims) { c["sub"] = 42 })), `claim "sub" has the wrong type`},
		{"exp is a word", hs(with(func(c jwt.MapClaims) { c["exp"] = "tomorrow" })), "malformed"},
		{"nbf is a bool", hs(with(func(c jwt.MapClaims) { c["nbf"] = true })), "malformed"},
		{"arena is a string", hs(with(func(c jwt.MapClaims) { c["arena"] = "chat:*" })), `claim "arena" has the wrong type`},
		{"arena.pub is a string", hs(with(func(c jwt.MapClaims) { c["arena"] = map[string]any{"pub": "chat:*"} })), `claim "arena.pub" has the wrong type`},
		{"arena.sub has a number", hs(with(func(c jwt.MapClaims) { c["arena"] = map[string]any{"sub": []any{"a", 1}} })), "wrong type"},
		{"arena.pub has a bad pattern", hs(with(func(c jwt.MapClaims) { c["arena"] = map[string]any{"pub": []string{"a*b"}} })), "arena.pub"},
		{"arena.sub has a bad placeholder", hs(with(func(c jwt.MapClaims) { c["arena"] = map[string]any{"sub": []string{"dm:{usr}"}} })), "arena.sub"},
		{"claims not an object", hsRaw(`["sub","alice"]`), "malformed"},
		{"claims not JSON", hsRaw(`sub=alice`), "malformed"},
		{"empty", "", "no token"},
		{"spaces", "   ", "no token"},
		{"bearer only", "Bearer ", "no token"},
		{"one word", "garbage", "neither a valid JWT nor a known API key"},
		{"three dots", "a.b.c.d", "neither"},
		{"two dots only", "..", "malformed"},
		{"three junk parts", "abc.def.ghi", "malformed"},
		{"header not base64", "!!!." + parts[1] + "." + parts[2], "malformed"},
		{"payload not base64", parts[0] + ".%%%." + parts[2], "malformed"},
		{"padded base64", parts[0] + "=." + parts[1] + "." + parts[2], "malformed"},
		{"header not JSON", craft("{alg", payload(validClaims()), []byte("x")), "malformed"},
		{"huge", strings.Repeat("a", MaxCredentialLen+1), "longer than"},
		{"huge JWT", parts[0] + "." + strings.Repeat("A", MaxCredentialLen) + "." + parts[2], "longer than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := a.Authenticate(tc.cred)
			checkUnauthorized(t, p, err, tc.cred, tc.want)
			p, err = a.Authenticate("Bearer " + tc.cred)
			if err == nil {
				t.Fatalf("accepted with Bearer prefix as %q", p.User)
			}
		})
	}
}

// TestAlgorithmConfusion checks that an RSA public key is never usable as
// an HMAC secret, whether or not HS256 is configured too.
func TestAlgorithmConfusion(t *testing.T) {
	k := keys(t)
	forged := signWith(t, jwt.SigningMethodHS256, []byte(k.rsaPEM), validClaims(), nil)
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"RS256 only", Config{PublicKeys: []KeyConfig{{Alg: AlgRS256, PEM: k.rsaPEM}}}, `"HS256" is not accepted`},
		{"RS256 and a secret", Config{Secret: testSecret, PublicKeys: []KeyConfig{{Alg: AlgRS256, PEM: k.rsaPEM}}}, "signature is invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAuth(t, tc.cfg)
			p, err := a.Authenticate(forged)
			checkUnauthorized(t, p, err, forged, tc.want)
		})
	}
}

// TestValidTokens checks the happy path of every algorithm and the claims
// a principal is made of.
func TestValidTokens(t *testing.T) {
	k := keys(t)
	a := newAuth(t, Config{
		Secret: testSecret,
		PublicKeys: []KeyConfig{
			{Alg: AlgRS256, PEM: k.rsaPEM},
			{Alg: AlgES256, PEM: k.ecPEM},
			{Alg: AlgEdDSA, PEM: k.edPEM},
		},
	})
	signed, err := Sign(testSecret, "alice", []string{"dm:{user}:*"}, []string{"chat:*"}, time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cred string
	}{
		{"Sign", signed},
		{"HS256", signWith(t, jwt.SigningMethodHS256, testSecret, validClaims(), nil)},
		{"RS256", signWith(t, jwt.SigningMethodRS256, k.rsa, validClaims(), nil)},
		{"ES256", signWith(t, jwt.SigningMethodES256, k.ec, validClaims(), nil)},
		{"EdDSA", signWith(t, jwt.SigningMethodEdDSA, k.ed, validClaims(), nil)},
		{"Bearer prefix", "Bearer " + signed},
		{"lowercase bearer", "bearer " + signed},
		{"exp within leeway", signWith(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["exp"] = testNow.Add(-time.Second).Unix() }), nil)},
		{"nbf within leeway", signWith(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["nbf"] = testNow.Add(time.Second).Unix() }), nil)},
		{"nbf past", signWith(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["nbf"] = testNow.Add(-time.Hour).Unix() }), nil)},
		{"unknown claims ignored", signWith(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["iss"] = "me"; c["x"] = []int{1} }), nil)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := a.Authenticate(tc.cred)
			if err != nil {
				t.Fatal(err)
			}
			if p.User != "alice" || p.Admin {
				t.Fatalf("principal %+v, want alice, not admin", p)
			}
			if want := testNow.Add(time.Hour); !p.Expires.Equal(want) && tc.name != "exp within leeway" {
				t.Fatalf("expires %v, want %v", p.Expires, want)
			}
		})
	}

	t.Run("Sign claims", func(t *testing.T) {
		p, err := a.Authenticate(signed)
		if err != nil {
			t.Fatal(err)
		}
		checks := []struct {
			got, want bool
			what      string
		}{
			{p.CanPublish("dm:alice:bob"), true, "publish dm:alice:bob"},
			{p.CanPublish("dm:bob:alice"), false, "publish dm:bob:alice"},
			{p.CanPublish("chat:lobby"), false, "publish chat:lobby"},
			{p.CanSubscribe("chat:lobby"), true, "subscribe chat:lobby"},
			{p.CanSubscribe("dm:alice:bob"), false, "subscribe dm:alice:bob"},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
			}
		}
	})
	t.Run("no arena claim grants nothing", func(t *testing.T) {
		p, err := a.Authenticate(signWith(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { delete(c, "arena") }), nil))
		if err != nil {
			t.Fatal(err)
		}
		if p.CanPublish("a") || p.CanSubscribe("a") {
			t.Fatal("a token without arena claim has permissions")
		}
	})
}

// TestKeyIDs checks that a key with a KID only verifies tokens naming it,
// and a key without one verifies any token of its algorithm.
func TestKeyIDs(t *testing.T) {
	k := keys(t)
	a := newAuth(t, Config{PublicKeys: []KeyConfig{
		{Alg: AlgEdDSA, PEM: k.edPEM, KID: "one"},
		{Alg: AlgEdDSA, PEM: k.ed2PEM, KID: "two"},
	}})
	both := newAuth(t, Config{PublicKeys: []KeyConfig{
		{Alg: AlgEdDSA, PEM: k.edPEM},
		{Alg: AlgEdDSA, PEM: k.ed2PEM},
	}})
	tests := []struct {
		name string
		a    *Authenticator
		key  any
		kid  any // nil: no kid header
		want string
	}{
		{"kid one", a, k.ed, "one", ""},
		{"kid two", a, k.ed2, "two", ""},
		{"kid two signed by one", a, k.ed, "two", "signature is invalid"},
		{"unknown kid", a, k.ed, "three", "no configured EdDSA key matches"},
		{"no kid", a, k.ed, nil, "no configured EdDSA key matches"},
		{"kid not a string", a, k.ed, 1, "no configured EdDSA key matches"},
		{"key set first", both, k.ed, nil, ""},
		{"key set second", both, k.ed2, "whatever", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]any{}
			if tc.kid != nil {
				h["kid"] = tc.kid
			}
			tok := signWith(t, jwt.SigningMethodEdDSA, tc.key, validClaims(), h)
			p, err := tc.a.Authenticate(tok)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			checkUnauthorized(t, p, err, tok, tc.want)
		})
	}
}

// TestNewErrors checks that unusable configurations are refused with a
// message naming the problem.
func TestNewErrors(t *testing.T) {
	k := keys(t)
	privDER := "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
	goodKey := APIKey{Name: "svc", Key: "0123456789abcdef"}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"nothing", Config{}, "no way to authenticate"},
		{"negative leeway", Config{Secret: testSecret, Leeway: -time.Second}, "negative"},
		{"unknown alg", Config{PublicKeys: []KeyConfig{{Alg: "HS512", PEM: k.rsaPEM}}}, "not supported"},
		{"none alg", Config{PublicKeys: []KeyConfig{{Alg: "none", PEM: k.rsaPEM}}}, "not supported"},
		{"HS256 as public key", Config{PublicKeys: []KeyConfig{{Alg: AlgHS256, PEM: k.rsaPEM}}}, "not supported"},
		{"no PEM", Config{PublicKeys: []KeyConfig{{Alg: AlgRS256, PEM: "hello"}}}, "no PEM block"},
		{"two PEM blocks", Config{PublicKeys: []KeyConfig{{Alg: AlgRS256, PEM: k.rsaPEM + k.rsaPEM}}}, "more than one"},
		{"private key", Config{PublicKeys: []KeyConfig{{Alg: AlgRS256, PEM: privDER}}}, "PUBLIC key"},
		{"bad DER", Config{PublicKeys: []KeyConfig{{Alg: AlgRS256, PEM: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}}}, "parse PUBLIC KEY"},
		{"EC key for RS256", Config{PublicKeys: []KeyConfig{{Alg: AlgRS256, PEM: k.ecPEM}}}, "needs an RSA key"},
		{"RSA key for ES256", Config{PublicKeys: []KeyConfig{{Alg: AlgES256, PEM: k.rsaPEM}}}, "needs an ECDSA P-256 key"},
		{"P-384 key for ES256", Config{PublicKeys: []KeyConfig{{Alg: AlgES256, PEM: k.ec384}}}, "P-384"},
		{"Ed25519 key for ES256", Config{PublicKeys: []KeyConfig{{Alg: AlgES256, PEM: k.edPEM}}}, "needs an ECDSA"},
		{"RSA key for EdDSA", Config{PublicKeys: []KeyConfig{{Alg: AlgEdDSA, PEM: k.rsaPEM}}}, "needs an Ed25519 key"},
		{"small RSA key", Config{PublicKeys: []KeyConfig{{Alg: AlgRS256, PEM: k.rsa1024}}}, "1024 bits"},
		{"api key without name", Config{APIKeys: []APIKey{{Key: "0123456789abcdef"}}}, "name is empty"},
		{"api key short", Config{APIKeys: []APIKey{{Name: "svc", Key: "short"}}}, "shorter than 16"},
		{"api key with dot", Config{APIKeys: []APIKey{{Name: "svc", Key: "0123456789.abcdef"}}}, "contains '.'"},
		{"api key with space", Config{APIKeys: []APIKey{{Name: "svc", Key: "0123456789 abcdef"}}}, "whitespace"},
		{"api key name twice", Config{APIKeys: []APIKey{goodKey, {Name: "svc", Key: "fedcba9876543210"}}}, "used twice"},
		{"api key twice", Config{APIKeys: []APIKey{goodKey, {Name: "other", Key: goodKey.Key}}}, "configured twice"},
		{"api key bad pattern", Config{APIKeys: []APIKey{{Name: "svc", Key: goodKey.Key, Pub: []string{"*a"}}}}, "pub"},
		{"api key too many patterns", Config{APIKeys: []APIKey{{Name: "svc", Key: goodKey.Key, Sub: make([]string, maxPatterns+1)}}}, "more than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := New(tc.cfg)
			if err == nil {
				t.Fatalf("New accepted %+v", a)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
	if _, err := New(Config{}); !errors.Is(err, ErrNoAuth) {
		t.Fatalf("empty config: %v, want ErrNoAuth", err)
	}
}

// TestPublicKeyFormats checks the PEM forms a key may be given in: PKIX,
// PKCS#1 and a certificate.
func TestPublicKeyFormats(t *testing.T) {
	k := keys(t)
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)}))
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: testNow, NotAfter: testNow.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.rsa.PublicKey, k.rsa)
	if err != nil {
		t.Fatal(err)
	}
	cert := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	tok := signWith(t, jwt.SigningMethodRS256, k.rsa, validClaims(), nil)
	for name, p := range map[string]string{"PKIX": k.rsaPEM, "PKCS1": pkcs1, "certificate": cert, "surrounding space": "\n  " + k.rsaPEM + "\n\n"} {
		t.Run(name, func(t *testing.T) {
			a := newAuth(t, Config{PublicKeys: []KeyConfig{{Alg: AlgRS256, PEM: p}}})
			if _, err := a.Authenticate(tok); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestAPIKeys checks API key principals.
func TestAPIKeys(t *testing.T) {
	a := newAuth(t, Config{APIKeys: []APIKey{
		{Name: "backend", Key: "backend-key-0123456789", Pub: []string{"chat:*", "bot:{user}"}, Sub: []string{"*"}},
		{Name: "ops", Key: "ops-key-0123456789abc", Admin: true},
	}})
	t.Run("backend", func(t *testing.T) {
		for _, cred := range []string{"backend-key-0123456789", "Bearer backend-key-0123456789", " BEARER  backend-key-0123456789 "} {
			p, err := a.Authenticate(cred)
			if err != nil {
				t.Fatalf("%q: %v", cred, err)
			}
			if p.User != "backend" || p.Admin || !p.Expires.IsZero() {
				t.Fatalf("principal %+v", p)
			}
			if !p.CanPublish("chat:x") || !p.CanPublish("bot:backend") || p.CanPublish("bot:other") || !p.CanSubscribe("anything") {
				t.Fatal("wrong permissions")
			}
		}
	})
	t.Run("ops", func(t *testing.T) {
		p, err := a.Authenticate("ops-key-0123456789abc")
		if err != nil {
			t.Fatal(err)
		}
		if p.User != "ops" || !p.Admin || p.CanPublish("chat:x") || p.CanSubscribe("chat:x") {
			t.Fatalf("principal %+v", p)
		}
	})
	for _, cred := range []string{"backend-key-012345678", "backend-key-01234567890", "ops-key-0123456789abd", "BACKEND-KEY-0123456789"} {
		t.Run("wrong "+cred, func(t *testing.T) {
			p, err := a.Authenticate(cred)
			checkUnauthorized(t, p, err, cred, "neither a valid JWT nor a known API key")
		})
	}
	t.Run("JWT without JWT keys", func(t *testing.T) {
		tok := signWith(t, jwt.SigningMethodHS256, testSecret, validClaims(), nil)
		p, err := a.Authenticate(tok)
		checkUnauthorized(t, p, err, tok, "accepts no JWTs")
	})
	t.Run("principals are distinct", func(t *testing.T) {
		p1, _ := a.Authenticate("ops-key-0123456789abc")
		p2, _ := a.Authenticate("ops-key-0123456789abc")
		if p1 == p2 {
			t.Fatal("the same *Principal returned twice: a caller could change another's")
		}
	})
}

// TestDev checks dev mode: anonymous full access without a credential,
// and verification of a credential that is given.
func TestDev(t *testing.T) {
	withSecret := newAuth(t, Config{Dev: true, Secret: testSecret})
	noKeys := newAuth(t, Config{Dev: true})
	t.Run("anonymous", func(t *testing.T) {
		p1, err := noKeys.Authenticate("")
		if err != nil {
			t.Fatal(err)
		}
		p2, err := noKeys.Authenticate("Bearer ")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(p1.User, "anonymous-") || len(p1.User) <= len("anonymous-") || p1.User == p2.User {
			t.Fatalf("dev users %q and %q", p1.User, p2.User)
		}
		if !p1.CanPublish("any:room") || !p1.CanSubscribe("x") || !p1.Admin || !p1.Expires.IsZero() {
			t.Fatalf("dev principal %+v lacks permissions", p1)
		}
	})
	t.Run("token still verified", func(t *testing.T) {
		tok, err := Sign(testSecret, "bob", []string{"x"}, nil, time.Hour, testNow)
		if err != nil {
			t.Fatal(err)
		}
		p, err := withSecret.Authenticate(tok)
		if err != nil {
			t.Fatal(err)
		}
		if p.User != "bob" || !p.CanPublish("x") || p.CanPublish("y") || p.Admin {
			t.Fatalf("principal %+v", p)
		}
		bad := signWith(t, jwt.SigningMethodHS256, []byte("wrong-secret-wrong-secret-wrong!"), validClaims(), nil)
		p, err = withSecret.Authenticate(bad)
		checkUnauthorized(t, p, err, bad, "signature is invalid")
		p, err = noKeys.Authenticate(tok)
		checkUnauthorized(t, p, err, tok, "accepts no JWTs")
		p, err = noKeys.Authenticate("some-api-key-string")
		checkUnauthorized(t, p, err, "some-api-key-string", "neither")
	})
	t.Run("not dev", func(t *testing.T) {
		a := newAuth(t, Config{Secret: testSecret})
		p, err := a.Authenticate("")
		checkUnauthorized(t, p, err, "", "no token")
	})
}

// TestLeeway checks a configured leeway replaces the default.
func TestLeeway(t *testing.T) {
	a := newAuth(t, Config{Secret: testSecret, Leeway: time.Minute})
	tok := signWith(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["exp"] = testNow.Add(-30 * time.Second).Unix() }), nil)
	if _, err := a.Authenticate(tok); err != nil {
		t.Fatalf("exp 30s ago with 1m leeway: %v", err)
	}
	tok = signWith(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["exp"] = testNow.Add(-2 * time.Minute).Unix() }), nil)
	p, err := a.Authenticate(tok)
	checkUnauthorized(t, p, err, tok, "expired")
}

// TestSign checks Sign's refusals and its claims.
func TestSign(t *testing.T) {
	tests := []struct {
		name     string
		secret   []byte
		user     string
		pub, sub []string
		ttl      time.Duration
		want     string
	}{
		{"no secret", nil, "u", nil, nil, time.Hour, "secret is empty"},
		{"no user", testSecret, "", nil, nil, time.Hour, "user is empty"},
		{"zero ttl", testSecret, "u", nil, nil, 0, "not positive"},
		{"bad pub", testSecret, "u", []string{"a b"}, nil, time.Hour, "pub"},
		{"bad sub", testSecret, "u", nil, []string{"**"}, time.Hour, "sub"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Sign(tc.secret, tc.user, tc.pub, tc.sub, tc.ttl, testNow)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("claims", func(t *testing.T) {
		tok, err := Sign(testSecret, "carol", nil, []string{"a"}, time.Minute, testNow)
		if err != nil {
			t.Fatal(err)
		}
		var c jwt.MapClaims
		if _, _, err := jwt.NewParser().ParseUnverified(tok, &c); err != nil {
			t.Fatal(err)
		}
		got := mustJSON(t, c)
		want := `{"arena":{"pub":[],"sub":["a"]},"exp":1700000060,"iat":1700000000,"sub":"carol"}`
		if got != want {
			t.Fatalf("claims %s, want %s", got, want)
		}
	})
}
