package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/arena-mesh/arena/protocol"
)

// testNow is the fixed clock of every test.
var testNow = time.Unix(1_700_000_000, 0)

var testSecret = []byte("a-test-secret-of-32-bytes-length")

// testKeys are generated once per test binary: RSA generation is slow.
type testKeys struct {
	rsa     *rsa.PrivateKey
	rsaPEM  string
	ec      *ecdsa.PrivateKey
	ecPEM   string
	ed      ed25519.PrivateKey
	edPEM   string
	ec384   string // a P-384 public key PEM
	rsa1024 string // a too-small RSA public key PEM
	ed2     ed25519.PrivateKey
	ed2PEM  string
}

var genKeys = sync.OnceValues(func() (*testKeys, error) {
	k := &testKeys{}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		return nil, err
	}
	if _, k.ed2, err = ed25519.GenerateKey(rand.Reader); err != nil {
		return nil, err
	}
	ec384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	rsaSmall, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		return nil, err
	}
	for _, p := range []struct {
		dst *string
		key crypto.PublicKey
	}{
		{&k.rsaPEM, &k.rsa.PublicKey},
		{&k.ecPEM, &k.ec.PublicKey},
		{&k.edPEM, k.ed.Public()},
		{&k.ed2PEM, k.ed2.Public()},
		{&k.ec384, &ec384.PublicKey},
		{&k.rsa1024, &rsaSmall.PublicKey},
	} {
		der, err := x509.MarshalPKIXPublicKey(p.key)
		if err != nil {
			return nil, err
		}
		*p.dst = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}
	return k, nil
})

func keys(t testing.TB) *testKeys {
	t.Helper()
	k, err := genKeys()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newAuth builds an Authenticator on the test clock.
func newAuth(t testing.TB, cfg Config) *Authenticator {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return testNow }
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// validClaims is a claim set that passes every check at testNow.
func validClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"sub":   "alice",
		"exp":   testNow.Add(time.Hour).Unix(),
		"iat":   testNow.Unix(),
		"arena": map[string]any{"pub": []string{"chat:*"}, "sub": []string{"*"}},
	}
}

// with returns validClaims changed by f.
func with(f func(c jwt.MapClaims)) jwt.MapClaims {
	c := validClaims()
	f(c)
	return c
}

// signWith signs claims with method and key; header entries are added.
func signWith(t testing.TB, method jwt.SigningMethod, key any, c jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// craft assembles a token by hand from raw JSON header and payload and a
// raw signature, for tokens no library would sign.
func craft(header, payload string, sig []byte) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString(sig)
}

// mustJSON encodes v.
func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkUnauthorized asserts err is an unauthorized *protocol.Error whose
// message contains want and does not quote cred.
func checkUnauthorized(t testing.TB, p *Principal, err error, cred, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted (user %q), want unauthorized", p.User)
	}
	if p != nil {
		t.Fatalf("error %v came with a principal", err)
	}
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeUnauthorized {
		t.Fatalf("error %#v is not an unauthorized *protocol.Error", err)
	}
	if !strings.Contains(pe.Message, want) {
		t.Fatalf("message %q does not say %q", pe.Message, want)
	}
	if len(cred) >= 8 && strings.Contains(pe.Message, cred) {
		t.Fatalf("message %q quotes the credential", pe.Message)
	}
	if i := strings.LastIndexByte(cred, '.'); i >= 0 && len(cred)-i > 8 && strings.Contains(pe.Message, cred[i+1:]) {
		t.Fatalf("message %q quotes the signature", pe.Message)
	}
}
