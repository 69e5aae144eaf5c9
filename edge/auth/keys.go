package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// The JWT algorithms Arena verifies.
const (
	AlgHS256 = "HS256" // HMAC-SHA256 with Config.Secret
	AlgRS256 = "RS256" // RSA PKCS#1 v1.5 with SHA-256, RSA key of at least minRSABits
	AlgES256 = "ES256" // ECDSA on P-256 with SHA-256
	AlgEdDSA = "EdDSA" // Ed25519
)

// minRSABits is the smallest RSA modulus accepted (NIST: 2048 bits).
const minRSABits = 2048

// KeyConfig is one accepted asymmetric verification key.
type KeyConfig struct {
	Alg string // RS256, ES256 or EdDSA: the only algorithm this key verifies
	PEM string // the public key: PEM "PUBLIC KEY" (PKIX), "RSA PUBLIC KEY" (PKCS#1) or "CERTIFICATE"
	// KID, when set, restricts the key to tokens whose header "kid" equals
	// it; empty: the key is tried for every token of its Alg.
	KID string
}

// verifyKey is a parsed KeyConfig.
type verifyKey struct {
	kid string
	key crypto.PublicKey
}

// parsePublicKey parses pemText as a public key usable for alg and checks
// that its type and size fit alg, so a key is never used for another
// algorithm (no RSA key as an HMAC secret, no P-384 key for ES256).
func parsePublicKey(alg, pemText string) (crypto.PublicKey, error) {
	switch alg {
	case AlgRS256, AlgES256, AlgEdDSA:
	default:
		return nil, fmt.Errorf("algorithm %q is not supported for public keys (use RS256, ES256 or EdDSA)", alg)
	}
	// Config files indent block scalars; leading space would hide the
	// BEGIN line from pem.Decode.
	block, rest := pem.Decode([]byte(strings.TrimSpace(pemText)))
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, errors.New("more than one PEM block; give exactly one public key")
	}
	var pub crypto.PublicKey
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		cert, err = x509.ParseCertificate(block.Bytes)
		if err == nil {
			pub = cert.PublicKey
		}
	default:
		if strings.Contains(block.Type, "PRIVATE") {
			return nil, fmt.Errorf("PEM block is a %s: configure the PUBLIC key, never the private one", block.Type)
		}
		return nil, fmt.Errorf("PEM block type %q is not a public key", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", block.Type, err)
	}
	switch alg {
	case AlgRS256:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("RS256 needs an RSA key, got %s", keyKind(pub))
		}
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key has %d bits; at least %d are required", k.N.BitLen(), minRSABits)
		}
		return k, nil
	case AlgES256:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("ES256 needs an ECDSA P-256 key, got %s", keyKind(pub))
		}
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ES256 needs an ECDSA P-256 key, got curve %s", k.Curve.Params().Name)
		}
		return k, nil
	case AlgEdDSA:
		k, ok := pub.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("EdDSA needs an Ed25519 key, got %s", keyKind(pub))
		}
		return k, nil
	default:
		return nil, fmt.Errorf("algorithm %q is not supported for public keys (use RS256, ES256 or EdDSA)", alg)
	}
}

// keyKind names a public key's type for error messages.
func keyKind(k crypto.PublicKey) string {
	switch k := k.(type) {
	case *rsa.PublicKey:
		return "an RSA key"
	case *ecdsa.PublicKey:
		return "an ECDSA " + k.Curve.Params().Name + " key"
	case ed25519.PublicKey:
		return "an Ed25519 key"
	default:
		return fmt.Sprintf("a %T", k)
	}
}

// keyfunc picks the verification key for a token by its algorithm (and
// kid, for asymmetric keys). The parser has already refused algorithms
// outside a.algs, so the switch only sees configured ones; each returns a
// key of the type its algorithm expects, which rules out algorithm
// confusion (an RSA public key is never handed to HMAC).
func (a *Authenticator) keyfunc(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if alg == AlgHS256 {
		if len(a.secret) == 0 {
			return nil, errNoKey
		}
		return a.secret, nil
	}
	keys := a.keys[alg]
	kid, _ := t.Header["kid"].(string)
	var found []jwt.VerificationKey
	for _, k := range keys {
		if k.kid == "" || k.kid == kid {
			found = append(found, k.key)
		}
	}
	switch len(found) {
	case 0:
		return nil, errNoKey
	case 1:
		return found[0], nil
	default:
		return jwt.VerificationKeySet{Keys: found}, nil
	}
}

// errNoKey: no configured key fits the token's algorithm and kid.
var errNoKey = errors.New("no key for this token")

// Check reports whether k is usable, as New checks it: a PEM public key
// whose type fits Alg. Configuration loaders use it to name the bad entry.
func (k KeyConfig) Check() error {
	_, err := parsePublicKey(k.Alg, k.PEM)
	return err
}
