package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/causeway-mesh/causeway/gateway/match"
)

// The TLS transport socket, as Envoy names it.
const tlsTransportSocket = "envoy.transport_sockets.tls"

// tlsSpec is what a TLS context's CommonTlsContext says: where the
// certificate comes from and how the peer is verified. Certificate
// handling is crypto/tls's and crypto/x509's, SPIFFE verification
// go-spiffe's; only the mapping from xDS is here.
//
// Secrets named by SDS (tls_certificate_sds_secret_configs,
// validation_context_sds_secret_config) are resolved from the proxy's
// SDS store at every handshake, whatever sds_config says (ADS or an
// api_config_source): the proxy has one SDS source. A context naming a
// secret that has not arrived is accepted, as Envoy's warming does, and
// its handshakes fail (closed) until the secret is there.
type tlsSpec struct {
	secrets *Secrets
	certs   []tls.Certificate // inline
	sdsCert string            // the certificate's SDS name, when by SDS
	// roots verifies peers by crypto/x509 (an inline trusted_ca);
	// sdsRoots by go-spiffe's X509-SVID verification against the named
	// bundle secret. At most one is set.
	roots    *x509.CertPool
	sdsRoots string
	sans     []sanMatcher
}

// sanMatcher is one match_typed_subject_alt_names entry.
type sanMatcher struct {
	uri bool // else DNS
	s   match.String
}

func (t *tlsSpec) verifies() bool { return t.roots != nil || t.sdsRoots != "" }

func compileCommonTLS(common *tlsv3.CommonTlsContext, secrets *Secrets) (*tlsSpec, error) {
	t := &tlsSpec{secrets: secrets}
	if common.GetTlsCertificateProviderInstance() != nil || common.GetTlsCertificateCertificateProviderInstance() != nil || //nolint:staticcheck // deprecated provider fields must be refused too
		common.GetTlsCertificateCertificateProvider() != nil || common.GetCustomTlsCertificateSelector() != nil || common.GetCustomHandshaker() != nil { //nolint:staticcheck // deprecated provider fields must be refused too
		return nil, errors.New("tls: certificate providers, selectors and handshakers are not supported; give certificates inline, as files or by SDS")
	}
	for i, c := range common.GetTlsCertificates() {
		cert, err := loadKeyPair(c)
		if err != nil {
			return nil, fmt.Errorf("tls: certificate %d: %w", i, err)
		}
		t.certs = append(t.certs, cert)
	}
	switch sds := common.GetTlsCertificateSdsSecretConfigs(); {
	case len(sds) > 1:
		return nil, errors.New("tls: one certificate by SDS is supported")
	case len(sds) == 1 && len(t.certs) > 0:
		return nil, errors.New("tls: certificates inline and by SDS at once")
	case len(sds) == 1:
		if err := checkSDS(sds[0], secrets); err != nil {
			return nil, err
		}
		t.sdsCert = sds[0].GetName()
	}
	var vc *tlsv3.CertificateValidationContext
	switch v := common.GetValidationContextType().(type) {
	case nil:
	case *tlsv3.CommonTlsContext_ValidationContext:
		vc = v.ValidationContext
	case *tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig:
		if err := checkSDS(v.ValidationContextSdsSecretConfig, secrets); err != nil {
			return nil, err
		}
		t.sdsRoots = v.ValidationContextSdsSecretConfig.GetName()
	case *tlsv3.CommonTlsContext_CombinedValidationContext:
		vc = v.CombinedValidationContext.GetDefaultValidationContext()
		if sds := v.CombinedValidationContext.GetValidationContextSdsSecretConfig(); sds != nil {
			if err := checkSDS(sds, secrets); err != nil {
				return nil, err
			}
			t.sdsRoots = sds.GetName()
		}
	default:
		return nil, fmt.Errorf("tls: validation context %T is not supported", v)
	}
	if vc != nil {
		if err := t.compileValidation(vc); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// checkSDS checks an SdsSecretConfig: a name, and an SDS source in this
// proxy to resolve it from.
func checkSDS(c *tlsv3.SdsSecretConfig, secrets *Secrets) error {
	if c.GetName() == "" {
		return errors.New("tls: an SDS secret config needs a name")
	}
	if secrets == nil {
		return fmt.Errorf("tls: secret %q by SDS, but this proxy has no SDS source (start it with --sds-addr)", c.GetName())
	}
	return nil
}

// compileValidation takes an inline validation context (or the default
// one of a combined context): trusted roots and subject-alt-name
// matchers. Whatever would make verification do less than asked is
// refused.
func (t *tlsSpec) compileValidation(vc *tlsv3.CertificateValidationContext) error {
	if len(vc.GetVerifyCertificateHash()) > 0 || len(vc.GetVerifyCertificateSpki()) > 0 || len(vc.GetMatchSubjectAltNames()) > 0 || //nolint:staticcheck // the deprecated field must be refused too
		vc.GetCrl() != nil || vc.GetCustomValidatorConfig() != nil || vc.GetCaCertificateProviderInstance() != nil || vc.GetSystemRootCerts() != nil ||
		vc.GetAllowExpiredCertificate() || vc.GetTrustChainVerification() != tlsv3.CertificateValidationContext_VERIFY_TRUST_CHAIN {
		return errors.New("tls: hash and SPKI pinning, match_subject_alt_names, CRLs, custom validators, system roots, expired certificates and unverified chains are not supported (use trusted_ca or SDS with match_typed_subject_alt_names)")
	}
	for i, m := range vc.GetMatchTypedSubjectAltNames() {
		var sm sanMatcher
		switch m.GetSanType() {
		case tlsv3.SubjectAltNameMatcher_URI:
			sm.uri = true
		case tlsv3.SubjectAltNameMatcher_DNS:
		default:
			return fmt.Errorf("tls: match_typed_subject_alt_names[%d]: SAN type %s is not supported (URI and DNS are)", i, m.GetSanType())
		}
		s, err := match.CompileString(m.GetMatcher())
		if err != nil {
			return fmt.Errorf("tls: match_typed_subject_alt_names[%d]: %w", i, err)
		}
		sm.s = s
		t.sans = append(t.sans, sm)
	}
	if vc.GetTrustedCa() != nil {
		if t.sdsRoots != "" {
			return errors.New("tls: trusted_ca inline and by SDS at once")
		}
		caPEM, err := dataSource(vc.GetTrustedCa())
		if err != nil {
			return fmt.Errorf("trusted_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return errors.New("trusted_ca: no PEM certificate in it")
		}
		t.roots = pool
	}
	if len(t.sans) > 0 && !t.verifies() {
		return errors.New("tls: subject-alt-name matchers need trusted_ca or a validation context by SDS")
	}
	return nil
}

// certificate is the context's own certificate by SDS, as it is now.
func (t *tlsSpec) certificate() (*tls.Certificate, error) {
	return t.secrets.Certificate(t.sdsCert)
}

// verifySPIFFE verifies a peer's chain as an X509-SVID of the trust
// domain against the bundle secret as it is now (go-spiffe's
// x509svid.Verify: path validation by crypto/x509, exactly one URI SAN
// holding a SPIFFE ID), then the SAN matchers.
func (t *tlsSpec) verifySPIFFE(chain []*x509.Certificate) error {
	if len(chain) == 0 {
		return fmt.Errorf("%w: the peer sent no certificate", errPeerCertificate)
	}
	if _, _, err := x509svid.Verify(chain, t.secrets.bundleSource(t.sdsRoots)); err != nil {
		return fmt.Errorf("%w: verify X509-SVID: %w", errPeerCertificate, err)
	}
	return t.checkSANs(chain[0])
}

// errPeerCertificate wraps every refusal of a peer's certificate by the
// proxy's own verification.
var errPeerCertificate = errors.New("tls: peer certificate refused")

// checkSANs applies match_typed_subject_alt_names: with matchers, some
// SAN of a matcher's type must match it (Envoy's rule).
func (t *tlsSpec) checkSANs(leaf *x509.Certificate) error {
	if len(t.sans) == 0 {
		return nil
	}
	for _, m := range t.sans {
		if m.uri {
			for _, u := range leaf.URIs {
				if m.s.Match(u.String()) {
					return nil
				}
			}
			continue
		}
		for _, d := range leaf.DNSNames {
			if m.s.Match(d) {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: no subject alternative name matches", errPeerCertificate)
}

// compileDownstreamTLS turns a listener's TLS transport socket into a
// server config: certificates (inline, files or SDS), ALPN (h2 and
// http/1.1 by default on an HTTP chain, as Envoy's HTTP connection
// manager advertises) and, with a validation context, client
// certificates verified against it.
func compileDownstreamTLS(ts *corev3.TransportSocket, httpChain bool, secrets *Secrets) (*tls.Config, *tlsSpec, error) {
	msg, err := transportSocketConfig(ts)
	if err != nil {
		return nil, nil, err
	}
	ctx, ok := msg.(*tlsv3.DownstreamTlsContext)
	if !ok {
		return nil, nil, fmt.Errorf("transport socket %q: want a DownstreamTlsContext, got %T", ts.GetName(), msg)
	}
	t, err := compileCommonTLS(ctx.GetCommonTlsContext(), secrets)
	if err != nil {
		return nil, nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: t.certs}
	switch {
	case t.sdsCert != "":
		cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return t.certificate() }
	case len(t.certs) == 0:
		return nil, nil, errors.New("tls: a server needs a certificate")
	}
	cfg.NextProtos = slices.Clone(ctx.GetCommonTlsContext().GetAlpnProtocols())
	if len(cfg.NextProtos) == 0 && httpChain {
		cfg.NextProtos = []string{"h2", "http/1.1"}
	}
	require := ctx.GetRequireClientCertificate().GetValue()
	switch {
	case t.sdsRoots != "":
		// crypto/tls knows nothing of SPIFFE IDs: it asks for a
		// certificate and VerifyConnection verifies it. VerifyConnection
		// also runs on resumed sessions, so a session ticket issued
		// under an older bundle admits nobody the current one refuses.
		cfg.ClientAuth = tls.RequestClientCert
		if require {
			cfg.ClientAuth = tls.RequireAnyClientCert
		}
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil // not required, or refused by crypto/tls already
			}
			return t.verifySPIFFE(cs.PeerCertificates)
		}
	case t.roots != nil:
		cfg.ClientAuth, cfg.ClientCAs = tls.VerifyClientCertIfGiven, t.roots
		if require {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
		if len(t.sans) > 0 {
			cfg.VerifyConnection = func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return nil
				}
				return t.checkSANs(cs.PeerCertificates[0])
			}
		}
	case require:
		return nil, nil, errors.New("tls: require_client_certificate needs a validation context")
	}
	return cfg, t, nil
}

// compileUpstreamTLS turns a cluster's TLS transport socket into a client
// config. As in Envoy, a context without a validation context does not
// verify the endpoint's certificate.
func compileUpstreamTLS(ts *corev3.TransportSocket, secrets *Secrets) (*tls.Config, *tlsSpec, error) {
	msg, err := transportSocketConfig(ts)
	if err != nil {
		return nil, nil, err
	}
	ctx, ok := msg.(*tlsv3.UpstreamTlsContext)
	if !ok {
		return nil, nil, fmt.Errorf("transport socket %q: want an UpstreamTlsContext, got %T", ts.GetName(), msg)
	}
	t, err := compileCommonTLS(ctx.GetCommonTlsContext(), secrets)
	if err != nil {
		return nil, nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: ctx.GetSni(), NextProtos: slices.Clone(ctx.GetCommonTlsContext().GetAlpnProtocols()), Certificates: t.certs}
	if t.sdsCert != "" {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return t.certificate() }
	}
	// As in Envoy, trusted_ca verifies the chain, not a host name: SNI is
	// only sent (service meshes use names such as Istio's
	// outbound_.8080_._.svc..., and SPIFFE certificates carry URI SANs).
	// crypto/tls would check ServerName (or the IP) against DNS SANs, so
	// its own check is replaced by a chain verification.
	cfg.InsecureSkipVerify = true //nolint:gosec // replaced by VerifyConnection below, or configured without verification, as in Envoy
	switch {
	case t.sdsRoots != "":
		cfg.VerifyConnection = func(cs tls.ConnectionState) error { return t.verifySPIFFE(cs.PeerCertificates) }
	case t.roots != nil:
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("%w: the endpoint sent no certificate", errPeerCertificate)
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: t.roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				return fmt.Errorf("%w: %w", errPeerCertificate, err)
			}
			return t.checkSANs(cs.PeerCertificates[0])
		}
	}
	return cfg, t, nil
}

func transportSocketConfig(ts *corev3.TransportSocket) (any, error) {
	if ts.GetName() != tlsTransportSocket && ts.GetName() != "tls" {
		return nil, fmt.Errorf("transport socket %q is not supported (only %s)", ts.GetName(), tlsTransportSocket)
	}
	if ts.GetTypedConfig() == nil {
		return nil, fmt.Errorf("transport socket %q: typed_config is required", ts.GetName())
	}
	msg, err := anypb.UnmarshalNew(ts.GetTypedConfig(), unmarshalOpts)
	if err != nil {
		return nil, fmt.Errorf("transport socket %q: %w", ts.GetName(), err)
	}
	return msg, nil
}

func loadKeyPair(c *tlsv3.TlsCertificate) (tls.Certificate, error) {
	certPEM, err := dataSource(c.GetCertificateChain())
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate_chain: %w", err)
	}
	keyPEM, err := dataSource(c.GetPrivateKey())
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("private_key: %w", err)
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

// maxDataFile bounds a DataSource file: certificates, keys and bundles
// are kilobytes.
const maxDataFile = 1 << 20

// readDataFile reads a DataSource file: a regular file of at most
// maxDataFile bytes (not a device or a pipe, which could block the
// configuration update or never end).
func readDataFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxDataFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxDataFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, maxDataFile)
	}
	return b, nil
}

// dataSource reads an Envoy DataSource: inline bytes or string, or a file.
func dataSource(d *corev3.DataSource) ([]byte, error) {
	switch s := d.GetSpecifier().(type) {
	case *corev3.DataSource_InlineBytes:
		return s.InlineBytes, nil
	case *corev3.DataSource_InlineString:
		return []byte(s.InlineString), nil
	case *corev3.DataSource_Filename:
		return readDataFile(s.Filename)
	case nil:
		return nil, errors.New("empty")
	default:
		return nil, fmt.Errorf("data source %T is not supported", s)
	}
}
