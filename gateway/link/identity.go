/*
Copyright 2026 The Causeway Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package link

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/internal/pki"
)

// ErrNotGateway is returned (wrapped) when a peer's SPIFFE ID is valid but
// does not name an east-west gateway.
var ErrNotGateway = errors.New("peer is not a gateway")

// GatewayID is the SPIFFE ID of cluster's east-west gateway in td:
// spiffe://<td>/cluster/<cluster>/gateway.
func GatewayID(td spiffeid.TrustDomain, cluster string) (spiffeid.ID, error) {
	id, err := spiffeid.FromSegments(td, "cluster", cluster, "gateway")
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("gateway ID of cluster %q: %w", cluster, err)
	}
	return id, nil
}

// GatewayCluster returns the cluster named by a gateway ID
// (spiffe://<td>/cluster/<name>/gateway), or ErrNotGateway for any other
// ID, such as a workload's.
func GatewayCluster(id spiffeid.ID) (string, error) {
	segs := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
	if len(segs) != 3 || segs[0] != "cluster" || segs[1] == "" || segs[2] != "gateway" {
		return "", fmt.Errorf("%w: %s is not spiffe://<td>/cluster/<name>/gateway", ErrNotGateway, id)
	}
	return segs[1], nil
}

// ExpectID returns a peer check that accepts only want, for
// DialerConfig.ExpectPeer and ListenerConfig.AuthorizePeer.
func ExpectID(want spiffeid.ID) func(spiffeid.ID) error {
	return func(got spiffeid.ID) error {
		if got != want {
			return fmt.Errorf("peer is %s, want %s", got, want)
		}
		return nil
	}
}

// verifyPeer returns a tls.Config.VerifyConnection that authenticates the
// peer's X509-SVID against bundle with pki.Verify (go-spiffe), insists on
// the extended key usage its role needs (go-spiffe accepts any), requires
// a gateway ID and then asks authorize. It runs on every handshake,
// resumed or not.
func verifyPeer(bundle *pki.Bundle, usage x509.ExtKeyUsage, authorize func(spiffeid.ID) error) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("verify link peer: no certificate")
		}
		id, err := pki.Verify(cs.PeerCertificates, bundle)
		if err != nil {
			return fmt.Errorf("verify link peer: %w", err)
		}
		if eku := cs.PeerCertificates[0].ExtKeyUsage; !slices.Contains(eku, usage) && !slices.Contains(eku, x509.ExtKeyUsageAny) {
			return fmt.Errorf("verify link peer %s: certificate lacks extended key usage %d", id, usage)
		}
		if _, err := GatewayCluster(id); err != nil {
			return fmt.Errorf("verify link peer: %w", err)
		}
		if authorize != nil {
			if err := authorize(id); err != nil {
				return fmt.Errorf("authorize link peer %s: %w", id, err)
			}
		}
		return nil
	}
}

// peerID is the SPIFFE ID of a connection whose handshake passed
// verifyPeer.
func peerID(cs tls.ConnectionState) spiffeid.ID {
	if len(cs.PeerCertificates) == 0 || len(cs.PeerCertificates[0].URIs) != 1 {
		return spiffeid.ID{}
	}
	id, err := spiffeid.FromURI(cs.PeerCertificates[0].URIs[0])
	if err != nil {
		return spiffeid.ID{}
	}
	return id
}

// serverTLS is the TLS configuration of both listeners: TLS 1.3 only, a
// client certificate required and verified by verifyPeer, no session
// tickets (so no resumption and no 0-RTT).
func serverTLS(cert func() (*tls.Certificate, error), bundle *pki.Bundle, authorize func(spiffeid.ID) error, alpn ...string) *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		NextProtos:             alpn,
		GetCertificate:         func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert() },
		ClientAuth:             tls.RequireAnyClientCert,
		VerifyConnection:       verifyPeer(bundle, x509.ExtKeyUsageClientAuth, authorize),
		SessionTicketsDisabled: true,
	}
}

// clientTLS is the dialer's TLS configuration. SPIFFE IDs are URI SANs,
// not host names, so crypto/tls's host-name verification is switched off
// and VerifyConnection does the whole verification with go-spiffe.
func clientTLS(cert func() (*tls.Certificate, error), bundle *pki.Bundle, expect func(spiffeid.ID) error, alpn string) *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		NextProtos:           []string{alpn},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert() },
		InsecureSkipVerify:   true, //nolint:gosec // verified by VerifyConnection with go-spiffe (pki.Verify)
		VerifyConnection:     verifyPeer(bundle, x509.ExtKeyUsageServerAuth, expect),
	}
}
