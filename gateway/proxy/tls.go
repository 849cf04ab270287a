package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// The TLS transport socket, as Envoy names it.
const tlsTransportSocket = "envoy.transport_sockets.tls"

// compileDownstreamTLS turns a listener's TLS transport socket into a
// server config: certificates, ALPN (h2 and http/1.1 by default on an HTTP
// chain, as Envoy's HTTP connection manager advertises) and, when a
// validation context is given, client certificates verified against it.
// Certificate handling is crypto/tls's and crypto/x509's; only the
// mapping from xDS is here.
func compileDownstreamTLS(ts *corev3.TransportSocket, httpChain bool) (*tls.Config, error) {
	msg, err := transportSocketConfig(ts)
	if err != nil {
		return nil, err
	}
	ctx, ok := msg.(*tlsv3.DownstreamTlsContext)
	if !ok {
		return nil, fmt.Errorf("transport socket %q: want a DownstreamTlsContext, got %T", ts.GetName(), msg)
	}
	common := ctx.GetCommonTlsContext()
	if len(common.GetTlsCertificateSdsSecretConfigs()) > 0 || common.GetTlsCertificateProviderInstance() != nil {
		return nil, errors.New("tls: certificates by SDS or provider are not supported yet; give them inline or as files")
	}
	if len(common.GetTlsCertificates()) == 0 {
		return nil, errors.New("tls: a server needs at least one certificate")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	for i, c := range common.GetTlsCertificates() {
		cert, err := loadKeyPair(c)
		if err != nil {
			return nil, fmt.Errorf("tls: certificate %d: %w", i, err)
		}
		cfg.Certificates = append(cfg.Certificates, cert)
	}
	cfg.NextProtos = slices.Clone(common.GetAlpnProtocols())
	if len(cfg.NextProtos) == 0 && httpChain {
		cfg.NextProtos = []string{"h2", "http/1.1"}
	}
	roots, err := validationRoots(common)
	if err != nil {
		return nil, err
	}
	switch {
	case roots != nil && ctx.GetRequireClientCertificate().GetValue():
		cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, roots
	case roots != nil:
		cfg.ClientAuth, cfg.ClientCAs = tls.VerifyClientCertIfGiven, roots
	case ctx.GetRequireClientCertificate().GetValue():
		return nil, errors.New("tls: require_client_certificate needs a validation context with trusted_ca")
	}
	return cfg, nil
}

// compileUpstreamTLS turns a cluster's TLS transport socket into a client
// config. As in Envoy, a context without a validation context does not
// verify the endpoint's certificate.
func compileUpstreamTLS(ts *corev3.TransportSocket) (*tls.Config, error) {
	msg, err := transportSocketConfig(ts)
	if err != nil {
		return nil, err
	}
	ctx, ok := msg.(*tlsv3.UpstreamTlsContext)
	if !ok {
		return nil, fmt.Errorf("transport socket %q: want an UpstreamTlsContext, got %T", ts.GetName(), msg)
	}
	common := ctx.GetCommonTlsContext()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: ctx.GetSni(), NextProtos: slices.Clone(common.GetAlpnProtocols())}
	for i, c := range common.GetTlsCertificates() {
		cert, err := loadKeyPair(c)
		if err != nil {
			return nil, fmt.Errorf("tls: client certificate %d: %w", i, err)
		}
		cfg.Certificates = append(cfg.Certificates, cert)
	}
	roots, err := validationRoots(common)
	if err != nil {
		return nil, err
	}
	// As in Envoy, trusted_ca verifies the chain, not a host name: SNI is
	// only sent (service meshes use names such as Istio's
	// outbound_.8080_._.svc..., and SPIFFE certificates carry URI SANs).
	// crypto/tls would check ServerName (or the IP) against DNS SANs, so
	// its own check is replaced by a chain verification.
	cfg.InsecureSkipVerify = true //nolint:gosec // replaced by VerifyConnection below, or configured without verification, as in Envoy
	if roots != nil {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("tls: the endpoint sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			return err
		}
	}
	return cfg, nil
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

func validationRoots(common *tlsv3.CommonTlsContext) (*x509.CertPool, error) {
	var vc *tlsv3.CertificateValidationContext
	switch v := common.GetValidationContextType().(type) {
	case nil:
		return nil, nil
	case *tlsv3.CommonTlsContext_ValidationContext:
		vc = v.ValidationContext
	case *tlsv3.CommonTlsContext_CombinedValidationContext:
		vc = v.CombinedValidationContext.GetDefaultValidationContext()
		if v.CombinedValidationContext.GetValidationContextSdsSecretConfig() != nil {
			return nil, errors.New("tls: validation contexts by SDS are not supported yet")
		}
	default:
		return nil, fmt.Errorf("tls: validation context %T is not supported yet", v)
	}
	// Refuse rather than silently verify less than asked — also when no
	// trusted_ca comes with them (certificate pinning).
	if len(vc.GetMatchTypedSubjectAltNames()) > 0 || len(vc.GetVerifyCertificateHash()) > 0 || len(vc.GetVerifyCertificateSpki()) > 0 ||
		len(vc.GetMatchSubjectAltNames()) > 0 { //nolint:staticcheck // the deprecated field must be refused too
		return nil, errors.New("tls: subject-alt-name, hash and SPKI matching are not supported yet")
	}
	if vc.GetTrustedCa() == nil {
		return nil, nil
	}
	caPEM, err := dataSource(vc.GetTrustedCa())
	if err != nil {
		return nil, fmt.Errorf("trusted_ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("trusted_ca: no PEM certificate in it")
	}
	return pool, nil
}

// dataSource reads an Envoy DataSource: inline bytes or string, or a file.
func dataSource(d *corev3.DataSource) ([]byte, error) {
	switch s := d.GetSpecifier().(type) {
	case *corev3.DataSource_InlineBytes:
		return s.InlineBytes, nil
	case *corev3.DataSource_InlineString:
		return []byte(s.InlineString), nil
	case *corev3.DataSource_Filename:
		b, err := os.ReadFile(s.Filename)
		if err != nil {
			return nil, err
		}
		return b, nil
	case nil:
		return nil, errors.New("empty")
	default:
		return nil, fmt.Errorf("data source %T is not supported", s)
	}
}
