package mesh

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Peer authentication. Every node derives the same cluster CA key from the
// cluster key (HKDF-SHA256, info caInfo, 32 bytes → ed25519 seed), builds
// the CA certificate from it, and at start issues itself a fresh leaf
// certificate (random ed25519 key, CommonName = node ID) signed by that CA.
// Both ends of a QUIC connection present their leaf and check the other's
// against the derived CA (mutual TLS), so only holders of the cluster key
// can connect; the dialer also checks that the leaf names the node it
// meant to reach. The leaf key never leaves the process, and the CA key is
// never stored: rotating the cluster key rotates the whole trust root.
const (
	caInfo         = "arena mesh ca v1"
	resetKeyInfo   = "arena mesh stateless reset v1"
	alpn           = "arena-mesh/1"
	leafValidity   = 10 * 365 * 24 * time.Hour
	leafClockSkew  = time.Hour
	tlsServerLabel = "server"
	tlsClientLabel = "client"
)

// errNotCluster is wrapped by every rejection of a peer certificate.
var errNotCluster = errors.New("peer certificate not issued by the cluster CA")

// clusterCA is the trust root derived from the cluster key.
type clusterCA struct {
	cert *x509.Certificate
	key  ed25519.PrivateKey
	pool *x509.CertPool
}

// deriveCA derives the cluster CA from the cluster key. The certificate is
// byte-for-byte the same on every node (fixed serial and validity,
// deterministic ed25519 signature), though only its key matters.
func deriveCA(clusterKey []byte) (*clusterCA, error) {
	seed, err := hkdf.Key(sha256.New, clusterKey, nil, caInfo, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("derive ca key: %w", err)
	}
	key := ed25519.NewKeyFromSeed(seed)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "arena mesh cluster ca"},
		NotBefore:             time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create ca certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse ca certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &clusterCA{cert: cert, key: key, pool: pool}, nil
}

// issue makes a leaf certificate for node id, signed by the CA.
func (ca *clusterCA) issue(id NodeID, now time.Time) (tls.Certificate, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate leaf key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("leaf serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: string(id)},
		NotBefore:    now.Add(-leafClockSkew),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("sign leaf: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("parse leaf: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}, nil
}

// verify checks a peer's certificate chain against the CA and returns the
// node ID it names. expect, when not empty, is the node the dialer meant
// to reach.
func (ca *clusterCA) verify(rawCerts [][]byte, expect NodeID, now time.Time) (NodeID, error) {
	if len(rawCerts) == 0 {
		return "", fmt.Errorf("%w: no certificate", errNotCluster)
	}
	leaf, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return "", fmt.Errorf("%w: %w", errNotCluster, err)
	}
	opts := x509.VerifyOptions{
		Roots:       ca.pool,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	if _, err := leaf.Verify(opts); err != nil {
		return "", fmt.Errorf("%w: %w", errNotCluster, err)
	}
	id := NodeID(leaf.Subject.CommonName)
	if id == "" {
		return "", fmt.Errorf("%w: no node id", errNotCluster)
	}
	if expect != "" && id != expect {
		return "", fmt.Errorf("%w: certificate names %q, dialed %q", errNotCluster, id, expect)
	}
	return id, nil
}

// tlsConfigs builds the QUIC server config and a constructor for per-dial
// client configs. Go's own chain verification is replaced by ca.verify on
// both sides (the server requests but does not require a certificate, the
// client skips name checks) so that every rejected handshake goes through
// one place and is counted in failed.
func tlsConfigs(ca *clusterCA, leaf tls.Certificate, failed func(side string)) (server *tls.Config, client func(expect NodeID) *tls.Config) {
	server = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{leaf},
		NextProtos:   []string{alpn},
		ClientAuth:   tls.RequestClientCert,
		// A resumed session skips VerifyPeerCertificate: every
		// handshake must be a full one.
		SessionTicketsDisabled: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if _, err := ca.verify(raw, "", time.Now()); err != nil {
				failed(tlsServerLabel)
				return err
			}
			return nil
		},
	}
	client = func(expect NodeID) *tls.Config {
		return &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{leaf},
			NextProtos:   []string{alpn},
			ServerName:   "arena-mesh",
			// Verification is not skipped: VerifyPeerCertificate checks
			// the chain against the cluster CA and the node ID instead of
			// a host name, which peers do not have certificates for.
			InsecureSkipVerify: true,
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
				if _, err := ca.verify(raw, expect, time.Now()); err != nil {
					failed(tlsClientLabel)
					return err
				}
				return nil
			},
		}
	}
	return server, client
}

// statelessResetKey derives the node's QUIC stateless reset key from the
// cluster key and node ID, so a restarted node can reset the connections
// its previous process had and peers redial at once instead of waiting
// for the idle timeout.
func statelessResetKey(clusterKey []byte, id NodeID) (*[32]byte, error) {
	k, err := hkdf.Key(sha256.New, clusterKey, []byte(id), resetKeyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("derive stateless reset key: %w", err)
	}
	return (*[32]byte)(k), nil
}
