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
package identity_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/controllers/identity"
	"github.com/causeway-mesh/causeway/internal/pki"
)

var names = []string{identity.SecretDefault, identity.SecretRootCA}

// A proxy with a valid pod-bound token gets an SVID naming exactly its
// ServiceAccount, whose chain verifies against the served bundle, and
// the bundle the agent publishes as a ConfigMap; over state of the world
// and delta. Closing the stream forgets the node.
func TestServesWorkloadSVID(t *testing.T) {
	ctx := testContext(t, time.Minute)
	member := uniqueMember("east")
	ca := newTestCA(t, member)
	st := startStack(t, member, stackOptions{})
	writeCASecret(ctx, t, member, caSecretData(t, ca.inter, ca.root))
	bundle := st.waitReady(t)
	if !bundle.Contains(ca.root.Certificate()) || bundle.Len() != 1 {
		t.Fatalf("published bundle holds %d roots, want the test root only", bundle.Len())
	}
	ns := newNamespace(ctx, t, "shop-")
	w := newWorkload(ctx, t, ns, "web")
	want := spiffeid.RequireFromSegments(td, "ns", ns, "sa", "web")
	conn := dial(t, st.addr, bundle)

	t.Run("state of the world", func(t *testing.T) {
		sctx, cancel := context.WithCancel(ctx)
		c := openSotw(sctx, t, conn, w.token, w.node(), names...)
		got, err := c.recv()
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		got.verify(t, st.clock.Now(), want)
		if !got.chain[1].Equal(ca.inter.Certificate()) || len(got.chain) != 2 {
			t.Errorf("chain is %d certificates, want the SVID and the intermediate", len(got.chain))
		}
		leaf := got.chain[0]
		if life := leaf.NotAfter.Sub(leaf.NotBefore); life != identity.DefaultWorkloadCertTTL+pki.ClockSkew {
			t.Errorf("SVID lifetime %s, want %s plus the clock skew", life, identity.DefaultWorkloadCertTTL)
		}
		if st.server.NodeCount() != 1 {
			t.Errorf("serving %d nodes, want 1", st.server.NodeCount())
		}
		cancel()
		eventually(t, 10*time.Second, func() error {
			if n := st.server.NodeCount(); n != 0 {
				return fmt.Errorf("still serving %d nodes after the stream closed", n)
			}
			if key := ns + "/web/" + w.node().GetId(); st.server.HasSnapshot(key) {
				return fmt.Errorf("snapshot of %s still cached", key)
			}
			return nil
		})
	})

	t.Run("delta", func(t *testing.T) {
		s, err := secretservice.NewSecretDiscoveryServiceClient(conn).DeltaSecrets(withToken(ctx, w.token))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(&discoveryv3.DeltaDiscoveryRequest{Node: w.node(), TypeUrl: resource.SecretType, ResourceNamesSubscribe: names}); err != nil {
			t.Fatal(err)
		}
		got := &served{}
		for got.chain == nil || got.roots == nil {
			resp, err := s.Recv()
			if err != nil {
				t.Fatalf("receive: %v", err)
			}
			anys := make([]*anypb.Any, 0, len(resp.GetResources()))
			for _, r := range resp.GetResources() {
				anys = append(anys, r.GetResource())
			}
			part, err := decode(anys)
			if err != nil {
				t.Fatal(err)
			}
			if part.chain != nil {
				got.chain, got.keyPEM = part.chain, part.keyPEM
			}
			if part.roots != nil {
				got.roots = part.roots
			}
			if err := s.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.SecretType, ResponseNonce: resp.GetNonce()}); err != nil {
				t.Fatal(err)
			}
		}
		got.verify(t, st.clock.Now(), want)
	})
}

// The SVID is renewed at half-life: a fake clock moved to the SVID's
// rotation time gets a new certificate (new serial, new key) pushed on
// the open stream. Once the token's pod is gone, renewals stop.
func TestRotatesAtHalfLife(t *testing.T) {
	ctx := testContext(t, time.Minute)
	member := uniqueMember("rotate")
	ca := newTestCA(t, member)
	st := startStack(t, member, stackOptions{ttl: 2 * time.Hour})
	writeCASecret(ctx, t, member, caSecretData(t, ca.inter, ca.root))
	bundle := st.waitReady(t)
	ns := newNamespace(ctx, t, "rot-")
	w := newWorkload(ctx, t, ns, "api")
	want := spiffeid.RequireFromSegments(td, "ns", ns, "sa", "api")
	c := openSotw(ctx, t, dial(t, st.addr, bundle), w.token, w.node(), names...)
	first, err := c.recv()
	if err != nil {
		t.Fatal(err)
	}
	first.verify(t, st.clock.Now(), want)
	leaf := first.chain[0]
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life != 2*time.Hour+pki.ClockSkew {
		t.Fatalf("SVID lifetime %s, want the configured 2h plus the clock skew", life)
	}

	st.clock.SetTime(pki.RotationTime(leaf).Add(time.Second))
	second, err := c.recv()
	if err != nil {
		t.Fatalf("no renewal pushed at half-life: %v", err)
	}
	second.verify(t, st.clock.Now(), want)
	renewed := second.chain[0]
	if renewed.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Fatal("the renewal has the old serial")
	}
	if !renewed.NotBefore.After(leaf.NotBefore) {
		t.Errorf("the renewal starts at %s, not after the first (%s)", renewed.NotBefore, leaf.NotBefore)
	}
	if string(second.keyPEM) == string(first.keyPEM) {
		t.Error("the renewal reuses the old key")
	}

	// The pod goes away: the next renewal is refused.
	if err := k8s.Delete(ctx, w.pod); err != nil {
		t.Fatal(err)
	}
	st.clock.SetTime(pki.RotationTime(renewed).Add(time.Second))
	eventually(t, 10*time.Second, func() error {
		if !st.server.Revoked(ns, "api") {
			return fmt.Errorf("renewals of %s/api go on after its pod was deleted", ns)
		}
		return nil
	})
}

// A new root in the bundle is pushed to open streams (the SVID stays);
// a new intermediate gets every node a new SVID from it, and the agent a
// new serving certificate.
func TestPushesCAChanges(t *testing.T) {
	ctx := testContext(t, time.Minute)
	member := uniqueMember("west")
	ca := newTestCA(t, member)
	st := startStack(t, member, stackOptions{})
	writeCASecret(ctx, t, member, caSecretData(t, ca.inter, ca.root))
	bundle := st.waitReady(t)
	ns := newNamespace(ctx, t, "ca-")
	w := newWorkload(ctx, t, ns, "db")
	want := spiffeid.RequireFromSegments(td, "ns", ns, "sa", "db")
	c := openSotw(ctx, t, dial(t, st.addr, bundle), w.token, w.node(), names...)
	first, err := c.recv()
	if err != nil {
		t.Fatal(err)
	}
	first.verify(t, st.clock.Now(), want)

	// Root rotation, step 1: the new root joins the bundle.
	next := newTestCA(t, member)
	writeCASecret(ctx, t, member, caSecretData(t, ca.inter, ca.root, next.root))
	got, err := c.recv()
	if err != nil {
		t.Fatal(err)
	}
	roots, err := pki.ParseBundle(td, got.roots)
	if err != nil {
		t.Fatal(err)
	}
	if roots.Len() != 2 || !roots.Contains(next.root.Certificate()) {
		t.Fatalf("pushed bundle has %d roots, want the old and the new", roots.Len())
	}
	if got.chain[0].SerialNumber.Cmp(first.chain[0].SerialNumber) != 0 {
		t.Error("a bundle change re-issued the SVID; only the intermediate's change should")
	}
	eventually(t, 10*time.Second, func() error {
		b, err := st.publishedBundle(ctx)
		if err != nil {
			return err
		}
		if b.Len() != 2 {
			return fmt.Errorf("published bundle has %d roots, want 2", b.Len())
		}
		return nil
	})

	// Step 2: the intermediate is re-issued from the new root.
	writeCASecret(ctx, t, member, caSecretData(t, next.inter, ca.root, next.root))
	got, err = c.recv()
	if err != nil {
		t.Fatal(err)
	}
	got.verify(t, st.clock.Now(), want)
	if !got.chain[1].Equal(next.inter.Certificate()) {
		t.Fatal("the SVID pushed after the intermediate changed is not signed by the new intermediate")
	}
	// The agent's own certificate follows; a proxy trusting only the new
	// root can connect.
	onlyNew, err := pki.NewBundle(td, next.root.Certificate())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", st.addr, tlsconfig.TLSClientConfig(onlyNew, tlsconfig.AuthorizeID(agentID())))
	if err != nil {
		t.Fatalf("the agent's serving certificate is not from the new intermediate: %v", err)
	}
	if peer := conn.ConnectionState().PeerCertificates; len(peer) != 2 || !peer[1].Equal(next.inter.Certificate()) {
		t.Errorf("the agent serves a chain of %d certificates, want its SVID and the new intermediate", len(peer))
	}
	_ = conn.Close()
}

// The east-west gateway's ServiceAccount gets the cluster's gateway ID.
func TestGatewayIdentity(t *testing.T) {
	ctx := testContext(t, time.Minute)
	member := uniqueMember("north")
	ca := newTestCA(t, member)
	st := startStack(t, member, stackOptions{})
	writeCASecret(ctx, t, member, caSecretData(t, ca.inter, ca.root))
	bundle := st.waitReady(t)
	w := newWorkload(ctx, t, identity.GatewayNamespace, identity.GatewayServiceAccount)
	c := openSotw(ctx, t, dial(t, st.addr, bundle), w.token, w.node(), names...)
	got, err := c.recv()
	if err != nil {
		t.Fatal(err)
	}
	got.verify(t, st.clock.Now(), spiffeid.RequireFromSegments(td, "cluster", member, "gateway"))
}

// Streams that do not prove the identity their node claims get nothing:
// Unauthenticated for a missing, malformed, refused, wrong-audience or
// expired token; PermissionDenied for a valid token whose ServiceAccount
// is not the node's.
func TestRefusesUnprovenCallers(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	member := uniqueMember("guard")
	ca := newTestCA(t, member)
	st := startStack(t, member, stackOptions{})
	writeCASecret(ctx, t, member, caSecretData(t, ca.inter, ca.root))
	bundle := st.waitReady(t)
	conn := dial(t, st.addr, bundle)
	victimNS := newNamespace(ctx, t, "victim-")
	victim := newWorkload(ctx, t, victimNS, "payments")
	otherNS := newNamespace(ctx, t, "attacker-")
	attacker := newWorkload(ctx, t, otherNS, "payments")
	sameNS := newWorkload(ctx, t, victimNS, "frontend")
	gone := newWorkload(ctx, t, victimNS, "gone")
	if err := k8s.Delete(ctx, gone.pod); err != nil {
		t.Fatal(err)
	}
	expired := resign(t, victim.token, time.Now().Add(-time.Hour))
	victimNoPod := func() *corev3.Node { return node(victim.node().GetId(), victimNS, "payments", "") }

	cases := map[string]struct {
		md   []string // raw metadata pairs; nil means the token below
		tok  string
		node func() *corev3.Node
		typ  string
		want codes.Code
	}{
		"no token":       {node: victim.node, want: codes.Unauthenticated},
		"garbage token":  {tok: "not-a-token", node: victim.node, want: codes.Unauthenticated},
		"basic auth":     {md: []string{"authorization", "Basic dXNlcjpwYXNz"}, node: victim.node, want: codes.Unauthenticated},
		"two tokens":     {md: []string{"authorization", "Bearer " + victim.token, "authorization", "Bearer " + attacker.token}, node: victim.node, want: codes.Unauthenticated},
		"wrong audience": {tok: requestToken(ctx, t, victimNS, "payments", "vault", victim.pod), node: victim.node, want: codes.Unauthenticated},
		"expired token":  {tok: expired, node: victim.node, want: codes.Unauthenticated},
		"deleted pod":    {tok: gone.token, node: gone.node, want: codes.Unauthenticated},
		// Without pod metadata, so that only the ServiceAccount check
		// stands between the token and the victim's identity.
		"other namespace": {tok: attacker.token, node: victimNoPod, want: codes.PermissionDenied},
		"other SA":        {tok: sameNS.token, node: victimNoPod, want: codes.PermissionDenied},
		"other pod":       {tok: victim.token, node: func() *corev3.Node { return node("x", victimNS, "payments", "someone-else") }, want: codes.PermissionDenied},
		"no metadata":     {tok: victim.token, node: func() *corev3.Node { return &corev3.Node{Id: "bare"} }, want: codes.PermissionDenied},
		"no node":         {tok: victim.token, node: func() *corev3.Node { return nil }, want: codes.InvalidArgument},
		"not a secret":    {tok: victim.token, node: victim.node, typ: resource.ClusterType, want: codes.InvalidArgument},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			sctx := withToken(ctx, tc.tok)
			if tc.md != nil {
				sctx = metadataContext(ctx, tc.md...)
			}
			s, err := secretservice.NewSecretDiscoveryServiceClient(conn).StreamSecrets(sctx)
			if err != nil {
				t.Fatal(err)
			}
			typ := tc.typ
			if typ == "" {
				typ = resource.SecretType
			}
			_ = s.Send(&discoveryv3.DiscoveryRequest{Node: tc.node(), TypeUrl: typ, ResourceNames: names})
			resp, err := s.Recv()
			if err == nil {
				t.Fatalf("got a response with %d resources, want %s", len(resp.GetResources()), tc.want)
			}
			if got := status.Code(err); got != tc.want {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
		})
	}
	if st.server.NodeCount() != 0 {
		t.Errorf("serving %d nodes after refusing every stream", st.server.NodeCount())
	}

	// The re-signed token differs from a real one only by its times:
	// with a future expiry the API server accepts it.
	t.Run("re-signed control", func(t *testing.T) {
		fresh := resign(t, victim.token, time.Now().Add(time.Hour))
		c := openSotw(ctx, t, conn, fresh, victim.node(), names...)
		got, err := c.recv()
		if err != nil {
			t.Fatalf("a re-signed unexpired token is refused, so the expired case proves nothing: %v", err)
		}
		got.verify(t, st.clock.Now(), spiffeid.RequireFromSegments(td, "ns", victimNS, "sa", "payments"))
	})
}

// A client that does not trust the agent's certificate fails the
// handshake and sends no token; one that expects another ID fails too.
func TestClientMustTrustAgent(t *testing.T) {
	ctx := testContext(t, time.Minute)
	member := uniqueMember("trust")
	ca := newTestCA(t, member)
	st := startStack(t, member, stackOptions{})
	writeCASecret(ctx, t, member, caSecretData(t, ca.inter, ca.root))
	bundle := st.waitReady(t)
	ns := newNamespace(ctx, t, "t-")
	w := newWorkload(ctx, t, ns, "web")

	stranger := newTestCA(t, member)
	strangers, err := pki.NewBundle(td, stranger.root.Certificate())
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]*tls.Config{
		"other root": tlsconfig.TLSClientConfig(strangers, tlsconfig.AuthorizeID(agentID())),
		"other ID":   tlsconfig.TLSClientConfig(bundle, tlsconfig.AuthorizeID(spiffeid.RequireFromSegments(td, "ns", "kube-system", "sa", "other"))),
	} {
		t.Run(name, func(t *testing.T) {
			conn := dialTLS(t, st.addr, cfg)
			s, err := secretservice.NewSecretDiscoveryServiceClient(conn).StreamSecrets(withToken(ctx, w.token))
			if err == nil {
				_ = s.Send(&discoveryv3.DiscoveryRequest{Node: w.node(), TypeUrl: resource.SecretType, ResourceNames: names})
				_, err = s.Recv()
			}
			if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "x509svid") && !strings.Contains(err.Error(), "unexpected ID") && !strings.Contains(err.Error(), "certificate") {
				t.Fatalf("got %v, want a failed handshake", err)
			}
		})
	}
}

// Until the hub writes the CA Secret the service is not ready and serves
// nothing; it becomes ready when the Secret appears.
func TestNotReadyWithoutCA(t *testing.T) {
	ctx := testContext(t, time.Minute)
	member := uniqueMember("south")
	st := startStack(t, member, stackOptions{})
	eventually(t, 10*time.Second, func() error {
		err := st.authority.Ready()
		if err == nil {
			return errors.New("ready before the CA Secret exists")
		}
		if want := causewayv1alpha1.MemberNamespace(member) + "/" + identity.CASecretName; !strings.Contains(err.Error(), want) {
			return fmt.Errorf("readiness before the Secret exists: %w, want an error naming %s", err, want)
		}
		return nil
	})
	if _, err := tls.Dial("tcp", st.addr, &tls.Config{InsecureSkipVerify: true}); err == nil { //nolint:gosec // only to see that no certificate is served
		t.Fatal("the agent completed a TLS handshake without a CA")
	}
	ca := newTestCA(t, member)
	writeCASecret(ctx, t, member, caSecretData(t, ca.inter, ca.root))
	bundle := st.waitReady(t)
	ns := newNamespace(ctx, t, "s-")
	w := newWorkload(ctx, t, ns, "web")
	got, err := openSotw(ctx, t, dial(t, st.addr, bundle), w.token, w.node(), names...).recv()
	if err != nil {
		t.Fatal(err)
	}
	got.verify(t, st.clock.Now(), spiffeid.RequireFromSegments(td, "ns", ns, "sa", "web"))
}

// A CA Secret that does not load is reported, and the last good CA keeps
// signing; the published bundle stays.
func TestBadCASecretKeepsLastGood(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	member := uniqueMember("keep")
	ca := newTestCA(t, member)
	st := startStack(t, member, stackOptions{})
	good := caSecretData(t, ca.inter, ca.root)
	writeCASecret(ctx, t, member, good)
	bundle := st.waitReady(t)
	conn := dial(t, st.addr, bundle)
	ns := newNamespace(ctx, t, "k-")
	w := newWorkload(ctx, t, ns, "web")
	want := spiffeid.RequireFromSegments(td, "ns", ns, "sa", "web")

	other := newTestCA(t, member)
	otherTD := func() map[string][]byte {
		root, err := pki.NewRoot(spiffeid.RequireTrustDomainFromString("elsewhere.example"), pki.RootOptions{})
		if err != nil {
			t.Fatal(err)
		}
		inter, err := root.NewIntermediate(member, 0)
		if err != nil {
			t.Fatal(err)
		}
		return caSecretData(t, inter, root)
	}()
	with := func(k string, v []byte) map[string][]byte {
		d := map[string][]byte{}
		for key, val := range good {
			d[key] = val
		}
		if v == nil {
			delete(d, k)
		} else {
			d[k] = v
		}
		return d
	}
	otherKey, err := other.inter.PrivateKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		data map[string][]byte
		want string
	}{
		"key of another CA":    {with(corev1.TLSPrivateKeyKey, otherKey), "does not match"},
		"garbage certificate":  {with(corev1.TLSCertKey, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")), "tls.crt"},
		"no bundle":            {with(identity.CASecretBundleKey, nil), `key "ca.crt" is missing`},
		"root as intermediate": {rootAsIntermediate(t, ca.root), "self-signed root"},
		"foreign root":         {with(identity.CASecretBundleKey, other.root.CertificatePEM()), "does not verify against the trust bundle"},
		"another trust domain": {otherTD, "trust domain"},
	} {
		t.Run(name, func(t *testing.T) {
			writeCASecret(ctx, t, member, tc.data)
			eventually(t, 10*time.Second, func() error {
				err := st.authority.Err()
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					return fmt.Errorf("authority error %w, want one containing %q", err, tc.want)
				}
				return nil
			})
			if err := st.authority.Ready(); err != nil {
				t.Fatalf("not ready after a bad Secret: %v", err)
			}
			got, err := openSotw(ctx, t, conn, w.token, w.node(), names...).recv()
			if err != nil {
				t.Fatal(err)
			}
			got.verify(t, st.clock.Now(), want)
			if !got.chain[1].Equal(ca.inter.Certificate()) {
				t.Fatal("the SVID is not signed by the last good intermediate")
			}
			b, err := st.publishedBundle(ctx)
			if err != nil || b.Len() != 1 || !b.Contains(ca.root.Certificate()) {
				t.Fatalf("published bundle changed: %v", err)
			}
		})
	}
	writeCASecret(ctx, t, member, good)
	eventually(t, 10*time.Second, func() error { return st.authority.Err() })
}

// The MeshConfig's workloadCertTTL sets the SVIDs' lifetime.
func TestTTLFromMeshConfig(t *testing.T) {
	ctx := testContext(t, time.Minute)
	member := uniqueMember("ttl")
	ca := newTestCA(t, member)
	st := startStack(t, member, stackOptions{})
	writeCASecret(ctx, t, member, caSecretData(t, ca.inter, ca.root))
	bundle := st.waitReady(t)
	mc := &causewayv1alpha1.MeshConfig{
		ObjectMeta: metav1.ObjectMeta{Name: causewayv1alpha1.MeshConfigName},
		Spec:       causewayv1alpha1.MeshConfigSpec{TrustDomain: td.Name(), WorkloadCertTTL: &metav1.Duration{Duration: 90 * time.Minute}},
	}
	if err := k8s.Create(ctx, mc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), mc) })
	ns := newNamespace(ctx, t, "ttl-")
	w := newWorkload(ctx, t, ns, "web")
	conn := dial(t, st.addr, bundle)
	eventually(t, 20*time.Second, func() error {
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		got, err := openSotw(sctx, t, conn, w.token, w.node(), names...).recv()
		if err != nil {
			return err
		}
		leaf := got.chain[0]
		if life := leaf.NotAfter.Sub(leaf.NotBefore); life != 90*time.Minute+pki.ClockSkew {
			return fmt.Errorf("SVID lifetime %s, want the MeshConfig's 90m plus the clock skew", life)
		}
		return nil
	})
}

// rootAsIntermediate is a Secret that holds a root where the intermediate
// belongs.
func rootAsIntermediate(t testing.TB, root *pki.CA) map[string][]byte {
	t.Helper()
	d := caSecretData(t, root, root)
	d[corev1.TLSCertKey] = root.CertificatePEM()
	return d
}

// Reviews are cached briefly: a token whose pod was just deleted is still
// accepted from the cache, and refused once the entry expires.
func TestReviewCache(t *testing.T) {
	ctx := testContext(t, time.Minute)
	clk := clocktesting.NewFakeClock(time.Now())
	mgrClient, err := client.New(restConfig, client.Options{Scheme: sch})
	if err != nil {
		t.Fatal(err)
	}
	auth := &identity.Authenticator{Client: mgrClient, Reader: mgrClient, Clock: clk}
	ns := newNamespace(ctx, t, "cache-")
	w := newWorkload(ctx, t, ns, "web")
	caller, err := auth.Authenticate(ctx, w.token)
	if err != nil {
		t.Fatal(err)
	}
	if caller.Namespace != ns || caller.ServiceAccount != "web" || caller.PodName != w.pod.Name || caller.PodUID != w.pod.UID {
		t.Fatalf("caller %+v, want %s/web in pod %s", caller, ns, w.pod.Name)
	}
	if err := k8s.Delete(ctx, w.pod); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.Authenticate(ctx, w.token); err != nil {
		t.Fatalf("a review within its cache lifetime was repeated: %v", err)
	}
	clk.Step(31 * time.Second)
	if _, err := auth.Authenticate(ctx, w.token); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("after the cache entry expired: %v, want Unauthenticated (the pod is gone)", err)
	}
}
