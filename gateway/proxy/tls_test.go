package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
)

// testCert issues a self-signed server certificate for the given IP with crypto/x509.
func testCert(t *testing.T, ip string) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "causeway test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP(ip)}, DNSNames: []string{"echo.test"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return certPEM, keyPEM, pool
}

func inline(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
}

// TestTLSWithALPN: the proxy terminates TLS on a listener and picks
// HTTP/2 or HTTP/1.1 by ALPN; towards a TLS endpoint it originates TLS and
// speaks h2 by ALPN on an HTTP/2 cluster.
func TestTLSWithALPN(t *testing.T) {
	// An HTTPS endpoint that speaks HTTP/2 and reports what it saw.
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"proto": r.Proto, "tls": r.TLS != nil, "host": r.Host})
	}))
	backend.EnableHTTP2 = true
	backend.StartTLS()
	defer backend.Close()
	backendCA := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: backend.Certificate().Raw})

	h := startProxy(t)
	certPEM, keyPEM, pool := testCert(t, "127.0.0.1")
	listener := hcmListener(t, "http", "routes", true)
	listener.FilterChains[0].TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{
		TypedConfig: mustAny(t, &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificates: []*tlsv3.TlsCertificate{{CertificateChain: inline(certPEM), PrivateKey: inline(keyPEM)}},
		}}),
	}}
	secure := edsCluster(t, "secure", true, clusterv3.Cluster_ROUND_ROBIN)
	secure.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{
		TypedConfig: mustAny(t, &tlsv3.UpstreamTlsContext{Sni: "outbound_.443_._.secure.shop.svc.cluster.local", CommonTlsContext: &tlsv3.CommonTlsContext{
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: inline(backendCA)}},
		}}),
	}}
	apply(t, h.store, cdsType, "1", secure)
	apply(t, h.store, edsType, "1", cla(t, "secure", backend.Listener.Addr().String()))
	apply(t, h.store, rdsType, "1", &routev3.RouteConfiguration{Name: "routes", VirtualHosts: []*routev3.VirtualHost{{
		Name: "x", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefixMatch("/"), Action: routeTo("secure")}},
	}}})
	apply(t, h.store, ldsType, "1", listener)

	for _, tc := range []struct {
		name      string
		protocols func(*http.Protocols)
		wantProto string
	}{
		{"h2 by ALPN", func(p *http.Protocols) { p.SetHTTP2(true) }, "HTTP/2.0"},
		{"http/1.1 by ALPN", func(p *http.Protocols) { p.SetHTTP1(true) }, "HTTP/1.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, Protocols: new(http.Protocols)}
			tc.protocols(tr.Protocols)
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + h.httpAddr + "/")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || resp.Proto != tc.wantProto {
				t.Fatalf("client saw %d %s: %s", resp.StatusCode, resp.Proto, body)
			}
			var seen struct {
				Proto string `json:"proto"`
				TLS   bool   `json:"tls"`
			}
			if err := json.Unmarshal(body, &seen); err != nil {
				t.Fatal(err)
			}
			if seen.Proto != "HTTP/2.0" || !seen.TLS {
				t.Fatalf("the endpoint saw %+v, want HTTP/2.0 over TLS", seen)
			}
		})
	}
	// An endpoint whose certificate the cluster's CA did not sign is
	// refused: the proxy verifies what it connects to.
	bad := edsCluster(t, "secure", true, clusterv3.Cluster_ROUND_ROBIN)
	otherCA, _, _ := testCert(t, "127.0.0.1")
	bad.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{
		TypedConfig: mustAny(t, &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: inline(otherCA)}},
		}}),
	}}
	apply(t, h.store, cdsType, "2", bad)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + h.httpAddr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 500 {
		t.Fatalf("an endpoint with an untrusted certificate answered through the proxy: %d", resp.StatusCode)
	}
}

// TestConfigDumpRedactsPrivateKeys: the admin config dump shows TLS
// settings but never a private key.
func TestConfigDumpRedactsPrivateKeys(t *testing.T) {
	h := startProxy(t)
	certPEM, keyPEM, _ := testCert(t, "127.0.0.1")
	l := hcmListener(t, "http", "routes", true)
	l.FilterChains[0].TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{
		TypedConfig: mustAny(t, &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificates: []*tlsv3.TlsCertificate{{CertificateChain: inline(certPEM), PrivateKey: inline(keyPEM)}},
		}}),
	}}
	apply(t, h.store, ldsType, "1", l)
	rec := httptest.NewRecorder()
	h.proxy.AdminHandler(nil, nil).ServeHTTP(rec, httptest.NewRequest("GET", "/config_dump", nil))
	body := rec.Body.String()
	if rec.Code != 200 || !strings.Contains(body, "[redacted]") {
		t.Fatalf("config dump %d lacks the redaction:\n%s", rec.Code, body)
	}
	keyB64 := base64.StdEncoding.EncodeToString(keyPEM)
	if strings.Contains(body, keyB64[:40]) || strings.Contains(body, "PRIVATE KEY") {
		t.Fatal("the config dump shows the private key")
	}
	// The stored resource is unchanged: the listener still serves TLS.
	if got := h.store.Resources(ldsType)[0].(*listenerv3.Listener); !proto.Equal(got, l) {
		t.Fatal("redaction changed the stored listener")
	}
}
