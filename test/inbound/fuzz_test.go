package inbound_test

import (
	"net/netip"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ktypes "k8s.io/apimachinery/pkg/types"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/controllers/xds/translate"
	"github.com/causeway-mesh/causeway/gateway/authz"
)

// es256JWKS is a JSON Web Key Set with one P-256 public key.
const es256JWKS = `{"keys":[{"use":"sig","kty":"EC","kid":"k1","crv":"P-256","alg":"ES256","x":"3uI-t0GfKiI9-AkUwvNQW1nOLd_NpvDnStlfWpM7jlQ","y":"byf3o5KyljAqPAW3Nh1nVkb1mIUq5Zuw_xoN8Z6q_gE"}]}`

// wildcardMatch is what a request principal pattern means on the string
// "<iss>/<sub>" (Istio's definition).
func wildcardMatch(pattern, s string) bool {
	switch {
	case pattern == "*":
		return true
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(s, strings.TrimSuffix(pattern, "*"))
	case strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(s, strings.TrimPrefix(pattern, "*"))
	}
	return s == pattern
}

// FuzzRequestPrincipal checks that the metadata matchers a request
// principal pattern becomes (per issuer the workload verifies, on the
// payload jwt_authn stores under that issuer) mean exactly what the
// pattern means on "<iss>/<sub>", for every issuer and subject.
func FuzzRequestPrincipal(f *testing.F) {
	f.Add("https://idp.example.com", "corp", false, "alice", "https://idp.example.com/alice")
	f.Add("https://idp.example.com", "corp", true, "bob", "*p/bob")
	f.Add("a/b", "a", true, "b/c", "a/b/c")
	f.Add("a/b", "a", false, "c", "a/b/*")
	f.Add("https://x", "https://x/y", false, "y/z", "*x/y/z")
	f.Add("iss", "other", false, "", "*/")
	f.Fuzz(func(t *testing.T, iss1, iss2 string, second bool, sub, pattern string) {
		in, pod := workload()
		in.RequestAuthentications = []*causewayv1alpha1.RequestAuthentication{authn("idp",
			causewayv1alpha1.JWTRule{Issuer: iss1, JWKS: es256JWKS}, causewayv1alpha1.JWTRule{Issuer: iss2, JWKS: es256JWKS})}
		in.AuthorizationPolicies = []*causewayv1alpha1.AuthorizationPolicy{policy("a", allow, rule{From: &src{
			RequestPrincipals: []causewayv1alpha1.RequestPrincipal{causewayv1alpha1.RequestPrincipal(pattern)},
		}})}
		res := translate.Translate(in)
		for _, st := range []translate.PolicyStatus{res.AuthorizationPolicies[nn("shop", "a")], res.RequestAuthentications[nn("shop", "idp")]} {
			if st.Conditions[0].Status != metav1.ConditionTrue {
				return // not a valid pattern or issuer: refused, tested elsewhere
			}
		}
		e := compile(t, in, pod)
		iss := iss1
		if second {
			iss = iss2
		}
		meta := map[string]any{iss: map[string]any{"iss": iss, "sub": sub}}
		got, _ := authz.Evaluate(e.httpDeny, e.httpAllow, &authz.Request{Method: "GET", Path: "/", DestinationPort: 8080, JWTMetadata: meta})
		if want := wildcardMatch(pattern, iss+"/"+sub); got != want {
			t.Fatalf("pattern %q, token of %q with sub %q (issuers %q, %q): allowed %v, want %v", pattern, iss, sub, iss1, iss2, got, want)
		}
	})
}

// FuzzPolicyPath checks the agent's rule for policy paths against the
// proxy's normaliser: a path the agent accepts is in the form requests
// have after normalisation (so a DENY rule on it is never bypassed by
// spelling the path another way), and every such path is accepted.
func FuzzPolicyPath(f *testing.F) {
	for _, p := range []string{"/", "/api/*", "/a/.well-known*", "/%C3%A9", "/a/../b", "/a//b", "/%41", "/a%2Fb", "/x?y", "/a/./*", "/é", "/a;b=c@d:e", "/[x]", "/a/"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		in, pod := workload()
		in.AuthorizationPolicies = []*causewayv1alpha1.AuthorizationPolicy{policy("d", deny, rule{To: &dst{Paths: []string{p}}})}
		res := translate.Translate(in)
		accepted := res.AuthorizationPolicies[nn("shop", "d")].Conditions[0].Status == metav1.ConditionTrue
		body, prefix := strings.CutSuffix(p, "*")
		if !accepted {
			if n, err := authz.NormalizePath(p, authz.NormalizeOptions{}); err == nil && n == p && strings.HasPrefix(p, "/") && !strings.Contains(p, "*") {
				t.Fatalf("%q is a normalised path, but the policy was refused: %s", p, res.AuthorizationPolicies[nn("shop", "d")].Conditions[0].Message)
			}
			return
		}
		probe := body
		if prefix {
			probe += "z" // complete a partial last segment
		}
		n, err := authz.NormalizePath(probe, authz.NormalizeOptions{})
		if err != nil || n != probe {
			t.Fatalf("accepted %q, but requests for %q are normalised to %q (%v)", p, probe, n, err)
		}
		e := compile(t, in, pod)
		if ok, _ := authz.Evaluate(e.httpDeny, e.httpAllow, &authz.Request{Method: "GET", Path: n, DestinationPort: 8080, SourceIP: netip.MustParseAddr("10.0.0.1")}); ok {
			t.Fatalf("DENY %q did not deny %q", p, n)
		}
	})
}

func nn(namespace, name string) ktypes.NamespacedName {
	return ktypes.NamespacedName{Namespace: namespace, Name: name}
}
