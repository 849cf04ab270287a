package hbone

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// alpnH2 is the only application protocol either side offers: HBONE is
// HTTP/2 and nothing else.
const alpnH2 = "h2"

// verifyPeer verifies the certificate chain a peer presented in a TLS
// handshake as an X509-SVID against bundle and returns its SPIFFE ID.
// go-spiffe's x509svid.Verify does the work: path validation by
// crypto/x509 and the X509-SVID leaf rules (exactly one URI SAN, a SPIFFE
// ID, CA=false). The leaf's trust domain selects the bundle, so a peer of
// a trust domain that bundle has no authorities for is refused.
func verifyPeer(bundle x509bundle.Source, cs tls.ConnectionState) (spiffeid.ID, error) {
	if len(cs.PeerCertificates) == 0 {
		return spiffeid.ID{}, errors.New("peer presented no certificate")
	}
	id, _, err := x509svid.Verify(cs.PeerCertificates, bundle)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("verify peer X509-SVID: %w", err)
	}
	return id, nil
}

// baseTLSConfig is what both ends share: TLS 1.3 only, ALPN h2.
//
// Session resumption is on (a resumed handshake skips the certificates'
// transfer and both CertificateVerify signatures and their checks; see
// BenchmarkHandshake), and safe because verification is bound to each
// connection: VerifyConnection runs on resumed connections too, and
// verifies the chain the session carries against the bundle as it is
// now, so a ticket issued before a root left the bundle, or before the
// peer's certificate expired, lets nobody in (crypto/tls also refuses
// to resume a session whose peer certificate expired). A client whose
// resumption fails drops its ticket, and its next connection makes a
// full handshake.
func baseTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{alpnH2},
	}
}

// clientSessionCacheSize bounds the tickets a Client keeps: one per
// proxy address is used at a time.
const clientSessionCacheSize = 1024
