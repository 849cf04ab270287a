package proxy

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// FuzzStoreApply feeds arbitrary bytes as xDS resources of each type. The
// store must never panic, and a rejected response must leave the model in
// force untouched.
func FuzzStoreApply(f *testing.F) {
	seed := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	f.Add(uint8(0), seed(hcmListener(f, "http", "routes", true)))
	f.Add(uint8(0), seed(tcpListener(f, "tcp", "c", 9000)))
	f.Add(uint8(1), seed(&routev3.RouteConfiguration{Name: "routes", VirtualHosts: []*routev3.VirtualHost{{
		Name: "x", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefixMatch("/"), Action: routeTo("c")}},
	}}}))
	f.Add(uint8(2), seed(edsCluster(f, "c", true, clusterv3.Cluster_RING_HASH)))
	f.Add(uint8(3), seed(cla(f, "c", "127.0.0.1:80", "127.0.0.2:81")))
	f.Add(uint8(3), seed(hboneCLA(f, "c", "127.0.0.1:80")))
	inboundListeners, _ := inbound{httpPort: 8080, tcpPort: 5432, httpRBAC: []*rbacv3.RBAC{denyPathPrefix("/admin", false)},
		tcpRBAC: []*rbacv3.RBAC{allowPrincipal(webID), allowCluster("east")}, mtls: MTLSPermissive}.resources(f)
	f.Add(uint8(0), seed(inboundListeners[0]))
	types := []string{ldsType, rdsType, cdsType, edsType}
	f.Fuzz(func(t *testing.T, kind uint8, value []byte) {
		s := NewStore()
		before := s.model()
		typeURL := types[int(kind)%len(types)]
		err := s.Apply(typeURL, "v", []*anypb.Any{{TypeUrl: typeURL, Value: value}})
		if err != nil && s.model() != before {
			t.Fatalf("a rejected %s response changed the model", typeURL)
		}
		if err == nil {
			// Whatever was accepted can be dumped and its names listed.
			_ = s.Names(rdsType)
			_ = s.Names(edsType)
			_ = s.Resources(typeURL)
		}
	})
}

// FuzzSecretsApply feeds arbitrary bytes as SDS secrets. The store must
// never panic; a rejected response changes nothing; what is accepted can
// be listed and used.
func FuzzSecretsApply(f *testing.F) {
	ca := newMeshCA(f, meshTD)
	chain, key, _ := ca.svid(f, webID)
	for _, s := range []*tlsv3.Secret{
		{Name: SecretDefault, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{CertificateChain: inline(chain), PrivateKey: inline(key)}}},
		{Name: SecretRootCA, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: inline(ca.root.CertificatePEM())}}},
	} {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		s := NewSecrets(spiffeid.TrustDomain{})
		before := s.cur.Load()
		err := s.Apply(resourcev3.SecretType, "v", []*anypb.Any{{TypeUrl: resourcev3.SecretType, Value: value}})
		if err != nil && s.cur.Load() != before {
			t.Fatal("a rejected response changed the secrets")
		}
		_, _ = s.Status()
		_ = s.Has(SecretDefault, SecretRootCA)
		_, _ = s.Certificate(SecretDefault)
		_, _ = s.bundleSource(SecretRootCA).GetX509BundleForTrustDomain(meshTD)
		_ = s.Names(resourcev3.SecretType)
	})
}
