package translate

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtauthnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	ktypes "k8s.io/apimachinery/pkg/types"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// JWKS fetching by the data plane: how long a fetch may take and how long
// a fetched key set is used before it is fetched again.
const (
	jwksFetchTimeout  = 5 * time.Second
	jwksCacheDuration = 5 * time.Minute
)

// spaceDelimitedClaims are the claims that OAuth 2.0 writes as one
// space-separated string (RFC 8693 §4.2 "scope"; "permission" by the same
// convention); the filter turns them into lists, so that a claim match on
// one scope works (as Istio does).
var spaceDelimitedClaims = []string{"scope", "permission"}

// authnPolicy is a valid RequestAuthentication, the workloads it selects
// and its rendered providers, by name.
type authnPolicy struct {
	obj       *causewayv1alpha1.RequestAuthentication
	sel       workloadSelector
	providers []namedProvider
}

type namedProvider struct {
	name string
	p    *jwtauthnv3.JwtProvider
}

// resolveRequestAuthentications validates every RequestAuthentication,
// sets its status, renders the valid ones' providers and returns them
// sorted by namespace and name.
func (t *translator) resolveRequestAuthentications() []*authnPolicy {
	var out []*authnPolicy
	for _, ra := range t.in.RequestAuthentications {
		sel, reason, message := t.selectorFor(ra.Namespace, ra.Spec.TargetRef)
		if reason == causewayv1alpha1.ReasonAccepted {
			if err := validateRequestAuthentication(&ra.Spec); err != nil {
				reason, message = causewayv1alpha1.ReasonInvalid, err.Error()
			}
		}
		t.authnStatus[ktypes.NamespacedName{Namespace: ra.Namespace, Name: ra.Name}] = policyStatus(ra.Generation, reason, message)
		if reason != causewayv1alpha1.ReasonAccepted {
			continue
		}
		ap := &authnPolicy{obj: ra, sel: sel}
		for i := range ra.Spec.JWTRules {
			ap.providers = append(ap.providers, namedProvider{
				name: fmt.Sprintf("%s/%s/%d", ra.Namespace, ra.Name, i),
				p:    jwtProvider(&ra.Spec.JWTRules[i]),
			})
		}
		out = append(out, ap)
	}
	slices.SortFunc(out, func(a, b *authnPolicy) int { return compareNames(a.obj, b.obj) })
	return out
}

// validateRequestAuthentication checks what the CRD checks, and what it
// cannot: that inline keys are a JSON Web Key Set with at least one key
// the data plane can verify signatures with.
func validateRequestAuthentication(s *causewayv1alpha1.RequestAuthenticationSpec) error {
	if len(s.JWTRules) == 0 {
		return errors.New("jwtRules must not be empty")
	}
	var errs []error
	for i := range s.JWTRules {
		if err := validateJWTRule(&s.JWTRules[i]); err != nil {
			errs = append(errs, fmt.Errorf("jwtRules[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

var (
	printableRE  = regexp.MustCompile(`^[!-~]+$`)
	queryParamRE = regexp.MustCompile(`^[A-Za-z0-9._~-]+$`)
	// headerPrefixRE is a token's value prefix: printable ASCII, spaces
	// included ("Bearer ").
	headerPrefixRE = regexp.MustCompile(`^[ -~]*$`)
)

func validateJWTRule(r *causewayv1alpha1.JWTRule) error {
	var errs []error
	switch {
	case r.Issuer == "" || len(r.Issuer) > 512 || !printableRE.MatchString(r.Issuer):
		errs = append(errs, fmt.Errorf("issuer %q must be 1 to 512 printable ASCII characters without spaces", r.Issuer))
	case strings.Contains(r.Issuer, "://"):
		if u, err := url.Parse(r.Issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
			errs = append(errs, fmt.Errorf("issuer %q is a URL, so it must be an http or https URL with a host", r.Issuer))
		}
	}
	for _, a := range r.Audiences {
		if a == "" {
			errs = append(errs, errors.New("audiences must not be empty strings"))
		}
	}
	switch {
	case (r.JWKSURI == "") == (r.JWKS == ""):
		errs = append(errs, errors.New("set exactly one of jwksUri and jwks"))
	case r.JWKSURI != "":
		if err := checkJWKSURI(r.JWKSURI); err != nil {
			errs = append(errs, err)
		}
	default:
		if err := checkJWKS(r.JWKS); err != nil {
			errs = append(errs, fmt.Errorf("jwks: %w", err))
		}
	}
	for i, h := range r.FromHeaders {
		if !headerNameRE.MatchString(string(h.Name)) {
			errs = append(errs, fmt.Errorf("fromHeaders[%d]: %q is not a header name", i, h.Name))
		}
		if !headerPrefixRE.MatchString(h.Prefix) {
			errs = append(errs, fmt.Errorf("fromHeaders[%d]: the prefix must be printable ASCII", i))
		}
	}
	for _, p := range r.FromParams {
		if !queryParamRE.MatchString(p) {
			errs = append(errs, fmt.Errorf("fromParams: %q is not a query parameter name", p))
		}
	}
	return errors.Join(errs...)
}

func checkJWKSURI(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("jwksUri %q: %w", s, err)
	case u.Scheme != "https":
		return fmt.Errorf("jwksUri %q must be an https URL: keys read in the clear can be replaced by anyone on the path", s)
	case u.Hostname() == "":
		return fmt.Errorf("jwksUri %q has no host", s)
	case u.User != nil:
		return fmt.Errorf("jwksUri %q must not carry credentials", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("jwksUri %q: port %q is not 1 to 65535", s, p)
		}
	}
	return nil
}

// checkJWKS accepts a JSON Web Key Set with at least one key that can
// verify a token's signature with an algorithm the data plane allows:
// an RSA, ECDSA (P-256, P-384, P-521) or Ed25519 public key whose "use",
// if any, is "sig" and whose "alg", if any, fits it. causeway-proxy NACKs
// a key set without such a key.
func checkJWKS(s string) error {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal([]byte(s), &doc); err != nil {
		return fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	if doc.Keys == nil {
		return errors.New(`not a JSON Web Key Set: no "keys" array`)
	}
	for _, raw := range doc.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil || !k.Valid() || (k.Use != "" && k.Use != "sig") {
			continue
		}
		if keyFits(k.Algorithm, k.Public().Key) {
			return nil
		}
	}
	return errors.New("no key can verify signatures (want an RSA, P-256/P-384/P-521 or Ed25519 public key, with use \"sig\" or none, and an alg that fits it or none)")
}

// keyFits reports whether a public key can verify tokens signed with alg
// ("" for any algorithm its type allows).
func keyFits(alg string, key any) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return alg == "" || slices.Contains([]string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, alg)
	case *ecdsa.PublicKey:
		want := map[elliptic.Curve]string{elliptic.P256(): "ES256", elliptic.P384(): "ES384", elliptic.P521(): "ES512"}[k.Curve]
		return want != "" && (alg == "" || alg == want)
	case ed25519.PublicKey:
		return alg == "" || alg == "EdDSA"
	}
	return false
}

// jwtProvider renders one rule as a jwt_authn provider. Its verified
// payload goes to the dynamic metadata under the issuer, where
// AuthorizationPolicies' request principals and claims read it.
func jwtProvider(r *causewayv1alpha1.JWTRule) *jwtauthnv3.JwtProvider {
	p := &jwtauthnv3.JwtProvider{
		Issuer:                     r.Issuer,
		Audiences:                  slices.Clone(r.Audiences),
		Forward:                    r.ForwardOriginalToken,
		FromParams:                 slices.Clone(r.FromParams),
		PayloadInMetadata:          r.Issuer,
		NormalizePayloadInMetadata: &jwtauthnv3.JwtProvider_NormalizePayload{SpaceDelimitedClaims: spaceDelimitedClaims},
	}
	for _, h := range r.FromHeaders {
		p.FromHeaders = append(p.FromHeaders, &jwtauthnv3.JwtHeader{Name: strings.ToLower(string(h.Name)), ValuePrefix: h.Prefix})
	}
	if r.JWKS != "" {
		p.JwksSourceSpecifier = &jwtauthnv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
			Specifier: &corev3.DataSource_InlineString{InlineString: r.JWKS},
		}}
		return p
	}
	p.JwksSourceSpecifier = &jwtauthnv3.JwtProvider_RemoteJwks{RemoteJwks: &jwtauthnv3.RemoteJwks{
		HttpUri: &corev3.HttpUri{
			Uri:              r.JWKSURI,
			HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: jwksCluster(r.JWKSURI)},
			Timeout:          durationpb.New(jwksFetchTimeout),
		},
		CacheDuration: durationpb.New(jwksCacheDuration),
		AsyncFetch:    &jwtauthnv3.JwksAsyncFetch{},
	}}
	return p
}

// jwksCluster names the cluster Envoy fetches a JWKS through: the
// outbound cluster of its host and port, as Istio names it. causeway-proxy
// does not use it (it fetches the URI itself); Envoy needs that cluster
// to exist, which it does when the key server is a mesh service.
func jwksCluster(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return xdsconv.BlackHoleCluster // unreachable for a validated rule
	}
	port := int32(443)
	if p, err := strconv.Atoi(u.Port()); err == nil {
		port = int32(p)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	return xdsconv.ClusterName(port, "", host)
}

// jwtFilterConfig renders the jwt_authn filter of a workload from the
// providers that apply to it: every request is checked against them, a
// token that does not verify is answered 401, and a request without a
// token passes (requires_any of every provider and allow_missing), so that
// AuthorizationPolicies decide whether a token is needed. nil when there
// are no providers.
func jwtFilterConfig(providers []namedProvider) *jwtauthnv3.JwtAuthentication {
	if len(providers) == 0 {
		return nil
	}
	cfg := &jwtauthnv3.JwtAuthentication{Providers: map[string]*jwtauthnv3.JwtProvider{}, BypassCorsPreflight: true}
	var reqs []*jwtauthnv3.JwtRequirement
	for _, np := range providers {
		cfg.Providers[np.name] = np.p
		reqs = append(reqs, &jwtauthnv3.JwtRequirement{RequiresType: &jwtauthnv3.JwtRequirement_ProviderName{ProviderName: np.name}})
	}
	reqs = append(reqs, &jwtauthnv3.JwtRequirement{RequiresType: &jwtauthnv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}})
	cfg.Rules = []*jwtauthnv3.RequirementRule{{
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		RequirementType: &jwtauthnv3.RequirementRule_Requires{Requires: &jwtauthnv3.JwtRequirement{
			RequiresType: &jwtauthnv3.JwtRequirement_RequiresAny{RequiresAny: &jwtauthnv3.JwtRequirementOrList{Requirements: reqs}},
		}},
	}}
	return cfg
}
