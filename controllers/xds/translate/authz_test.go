package translate_test

import (
	"fmt"
	"strings"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/controllers/xds/translate"
)

// TestAuthorizationStatus: every invalid policy is Accepted=False with a
// reason and a message that says what is wrong (also what the API server
// would have refused, for objects that bypassed it), and changes nothing
// in any workload's configuration; valid ones are Accepted=True.
func TestAuthorizationStatus(t *testing.T) {
	type rule = causewayv1alpha1.AuthorizationRule
	from := func(f causewayv1alpha1.AuthorizationSource) rule { return rule{From: &f} }
	to := func(d causewayv1alpha1.AuthorizationDestination) rule { return rule{To: &d} }
	ns := func(n ...causewayv1alpha1.NamespaceName) *causewayv1alpha1.AuthorizationSource {
		return &causewayv1alpha1.AuthorizationSource{Namespaces: n}
	}
	tests := map[string]struct {
		ref         *causewayv1alpha1.PolicyTargetReference
		action      causewayv1alpha1.AuthorizationAction
		rules       []rule
		wantReason  string
		wantMessage string
	}{
		"valid":                  {rules: []rule{from(causewayv1alpha1.AuthorizationSource{Principals: []causewayv1alpha1.SPIFFEIDPattern{"*", "spiffe://td/ns/a/*", "*/sa/b"}})}, wantReason: "Accepted", wantMessage: "every workload in namespace shop"},
		"valid target":           {ref: svcRef("web"), rules: []rule{to(causewayv1alpha1.AuthorizationDestination{Paths: []string{"/a/.well-known*", "/%C3%A9t%C3%A9"}})}, wantReason: "Accepted", wantMessage: "Service shop/web"},
		"missing target":         {ref: svcRef("gone"), wantReason: "TargetNotFound", wantMessage: "target Service shop/gone does not exist"},
		"bad target kind":        {ref: &causewayv1alpha1.PolicyTargetReference{Kind: "Deployment", Name: "web"}, wantReason: "Invalid", wantMessage: `kind "Deployment"`},
		"bad action":             {action: "AUDIT", wantReason: "Invalid", wantMessage: `action "AUDIT"`},
		"empty rule":             {rules: []rule{{}}, wantReason: "Invalid", wantMessage: "rules[0]: a rule must set at least one of from or to"},
		"principal inner star":   {rules: []rule{from(causewayv1alpha1.AuthorizationSource{Principals: []causewayv1alpha1.SPIFFEIDPattern{"spiffe://td/ns/*/sa/x"}})}, wantReason: "Invalid", wantMessage: "is not a SPIFFE ID"},
		"principal no scheme":    {rules: []rule{from(causewayv1alpha1.AuthorizationSource{Principals: []causewayv1alpha1.SPIFFEIDPattern{"td/ns/a/sa/b"}})}, wantReason: "Invalid", wantMessage: "is not a SPIFFE ID"},
		"bad namespace":          {rules: []rule{{From: ns("Kube_System")}}, wantReason: "Invalid", wantMessage: `from.namespaces: "Kube_System"`},
		"bad cluster":            {rules: []rule{from(causewayv1alpha1.AuthorizationSource{Clusters: []causewayv1alpha1.ClusterName{"-x"}})}, wantReason: "Invalid", wantMessage: `from.clusters: "-x"`},
		"bad request principal":  {rules: []rule{from(causewayv1alpha1.AuthorizationSource{RequestPrincipals: []causewayv1alpha1.RequestPrincipal{"no-subject"}})}, wantReason: "Invalid", wantMessage: "is not '<issuer>/<subject>'"},
		"port zero":              {rules: []rule{to(causewayv1alpha1.AuthorizationDestination{Ports: []causewayv1alpha1.PortNumber{0}})}, wantReason: "Invalid", wantMessage: "to.ports: 0"},
		"relative path":          {rules: []rule{to(causewayv1alpha1.AuthorizationDestination{Paths: []string{"api"}})}, wantReason: "Invalid", wantMessage: "must start with '/'"},
		"dot segment":            {rules: []rule{to(causewayv1alpha1.AuthorizationDestination{Paths: []string{"/a/../admin"}})}, wantReason: "Invalid", wantMessage: `a ".." segment`},
		"merged slashes":         {rules: []rule{to(causewayv1alpha1.AuthorizationDestination{Paths: []string{"/a//b*"}})}, wantReason: "Invalid", wantMessage: "contains '//'"},
		"encoded unreserved":     {rules: []rule{to(causewayv1alpha1.AuthorizationDestination{Paths: []string{"/%41dmin"}})}, wantReason: "Invalid", wantMessage: "which normalised paths have unescaped"},
		"lower-case escape":      {rules: []rule{to(causewayv1alpha1.AuthorizationDestination{Paths: []string{"/%c3%a9"}})}, wantReason: "Invalid", wantMessage: "two upper-case hex digits"},
		"encoded slash":          {rules: []rule{to(causewayv1alpha1.AuthorizationDestination{Paths: []string{"/a%2Fb"}})}, wantReason: "Invalid", wantMessage: "escaped slash"},
		"raw non-ASCII":          {rules: []rule{to(causewayv1alpha1.AuthorizationDestination{Paths: []string{"/été"}})}, wantReason: "Invalid", wantMessage: "must be percent-encoded (%C3)"},
		"query in path":          {rules: []rule{to(causewayv1alpha1.AuthorizationDestination{Paths: []string{"/a?b=c"}})}, wantReason: "Invalid", wantMessage: "without their query"},
		"inner star in path":     {rules: []rule{to(causewayv1alpha1.AuthorizationDestination{Paths: []string{"/a/*/b"}})}, wantReason: "Invalid", wantMessage: "only as its last character"},
		"bad method":             {rules: []rule{to(causewayv1alpha1.AuthorizationDestination{Methods: []causewayv1alpha1.HTTPMethod{"FETCH"}})}, wantReason: "Invalid", wantMessage: `"FETCH" is not supported`},
		"bad host":               {rules: []rule{to(causewayv1alpha1.AuthorizationDestination{Hosts: []string{"Shop.Example"}})}, wantReason: "Invalid", wantMessage: "to.hosts"},
		"bad regex":              {rules: []rule{{From: ns("a"), When: &causewayv1alpha1.AuthorizationCondition{Headers: []causewayv1alpha1.HeaderMatch{{Name: "x", Regex: ptr.To("a(")}}}}}, wantReason: "Invalid", wantMessage: "when.headers[0]: regex"},
		"two header matchers":    {rules: []rule{{From: ns("a"), When: &causewayv1alpha1.AuthorizationCondition{Headers: []causewayv1alpha1.HeaderMatch{{Name: "x", Exact: ptr.To("a"), Prefix: ptr.To("b")}}}}}, wantReason: "Invalid", wantMessage: "exactly one of exact, prefix or regex"},
		"pseudo-header":          {rules: []rule{{From: ns("a"), When: &causewayv1alpha1.AuthorizationCondition{Headers: []causewayv1alpha1.HeaderMatch{{Name: ":path", Exact: ptr.To("/")}}}}}, wantReason: "Invalid", wantMessage: "is not a header name"},
		"claim value two stars":  {rules: []rule{{From: ns("a"), When: &causewayv1alpha1.AuthorizationCondition{Claims: []causewayv1alpha1.ClaimMatch{{Name: "g", Values: []string{"*a*"}}}}}}, wantReason: "Invalid", wantMessage: "may contain one '*'"},
		"claim without values":   {rules: []rule{{From: ns("a"), When: &causewayv1alpha1.AuthorizationCondition{Claims: []causewayv1alpha1.ClaimMatch{{Name: "g"}}}}}, wantReason: "Invalid", wantMessage: "values must not be empty"},
		"empty when":             {rules: []rule{{From: ns("a"), When: &causewayv1alpha1.AuthorizationCondition{}}}, wantReason: "Invalid", wantMessage: "when must set at least one of headers or claims"},
		"errors are all listed":  {rules: []rule{to(causewayv1alpha1.AuthorizationDestination{Paths: []string{"a", "/b//c"}})}, wantReason: "Invalid", wantMessage: "contains '//'"},
		"empty from":             {rules: []rule{{From: &causewayv1alpha1.AuthorizationSource{}}}, wantReason: "Invalid", wantMessage: "from must set at least one of"},
		"empty to":               {rules: []rule{{To: &causewayv1alpha1.AuthorizationDestination{}}}, wantReason: "Invalid", wantMessage: "to must set at least one of"},
		"header value not UTF-8": {rules: []rule{{From: ns("a"), When: &causewayv1alpha1.AuthorizationCondition{Headers: []causewayv1alpha1.HeaderMatch{{Name: "x", Exact: ptr.To("\xff")}}}}}, wantReason: "Invalid", wantMessage: "UTF-8"},
	}
	in, p := shopInputs()
	baseline := translate.Translate(in).Inbound.For(p)
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in, p := shopInputs()
			action := tc.action
			if action == "" {
				action = causewayv1alpha1.AuthorizationActionDeny
			}
			ap := authzPolicy("shop", "p", action, tc.ref, tc.rules...)
			in.AuthorizationPolicies = []*causewayv1alpha1.AuthorizationPolicy{ap}
			res := translate.Translate(in)
			st, ok := res.AuthorizationPolicies[ktypesName(ap)]
			if !ok || st.ObservedGeneration != 4 || len(st.Conditions) != 2 {
				t.Fatalf("status %+v", st)
			}
			acc, ready := st.Conditions[0], st.Conditions[1]
			wantStatus := metav1.ConditionFalse
			if tc.wantReason == causewayv1alpha1.ReasonAccepted {
				wantStatus = metav1.ConditionTrue
			}
			if acc.Type != "Accepted" || acc.Status != wantStatus || acc.Reason != tc.wantReason || !strings.Contains(acc.Message, tc.wantMessage) || acc.ObservedGeneration != 4 {
				t.Errorf("Accepted = %s %s %q, want %s %s containing %q", acc.Status, acc.Reason, acc.Message, wantStatus, tc.wantReason, tc.wantMessage)
			}
			if ready.Type != "Ready" || ready.Status != wantStatus {
				t.Errorf("Ready = %s %s", ready.Status, ready.Reason)
			}
			got := res.Inbound.For(p)
			checkResources(t, "inbound", got)
			if wantStatus == metav1.ConditionFalse && !resourcesEqual(got, baseline) {
				t.Error("an invalid policy changed the workload's configuration")
			}
			if wantStatus == metav1.ConditionTrue && resourcesEqual(got, baseline) && tc.ref == nil {
				t.Error("a valid policy changed nothing")
			}
		})
	}
}

func TestRequestAuthenticationStatus(t *testing.T) {
	ok := causewayv1alpha1.JWTRule{Issuer: "https://idp.example.com", JWKSURI: "https://idp.example.com/keys"}
	with := func(f func(r *causewayv1alpha1.JWTRule)) causewayv1alpha1.JWTRule {
		r := ok
		f(&r)
		return r
	}
	tests := map[string]struct {
		ref         *causewayv1alpha1.PolicyTargetReference
		rules       []causewayv1alpha1.JWTRule
		wantReason  string
		wantMessage string
	}{
		"remote keys":         {rules: []causewayv1alpha1.JWTRule{ok}, wantReason: "Accepted"},
		"inline keys":         {rules: []causewayv1alpha1.JWTRule{with(func(r *causewayv1alpha1.JWTRule) { r.JWKSURI, r.JWKS = "", es256JWKS })}, wantReason: "Accepted"},
		"non-URL issuer":      {rules: []causewayv1alpha1.JWTRule{with(func(r *causewayv1alpha1.JWTRule) { r.Issuer = "idp-1" })}, wantReason: "Accepted"},
		"missing target":      {ref: svcRef("gone"), rules: []causewayv1alpha1.JWTRule{ok}, wantReason: "TargetNotFound", wantMessage: "does not exist"},
		"no rules":            {wantReason: "Invalid", wantMessage: "jwtRules must not be empty"},
		"both key sources":    {rules: []causewayv1alpha1.JWTRule{with(func(r *causewayv1alpha1.JWTRule) { r.JWKS = es256JWKS })}, wantReason: "Invalid", wantMessage: "jwtRules[0]: set exactly one of jwksUri and jwks"},
		"no key source":       {rules: []causewayv1alpha1.JWTRule{with(func(r *causewayv1alpha1.JWTRule) { r.JWKSURI = "" })}, wantReason: "Invalid", wantMessage: "set exactly one of jwksUri and jwks"},
		"issuer URL, no host": {rules: []causewayv1alpha1.JWTRule{with(func(r *causewayv1alpha1.JWTRule) { r.Issuer = "https:///x" })}, wantReason: "Invalid", wantMessage: "must be an http or https URL with a host"},
		"issuer ftp URL":      {rules: []causewayv1alpha1.JWTRule{with(func(r *causewayv1alpha1.JWTRule) { r.Issuer = "ftp://idp" })}, wantReason: "Invalid", wantMessage: "must be an http or https URL with a host"},
		"issuer with space":   {rules: []causewayv1alpha1.JWTRule{with(func(r *causewayv1alpha1.JWTRule) { r.Issuer = "my idp" })}, wantReason: "Invalid", wantMessage: "printable ASCII"},
		"plaintext keys":      {rules: []causewayv1alpha1.JWTRule{with(func(r *causewayv1alpha1.JWTRule) { r.JWKSURI = "http://idp.example.com/keys" })}, wantReason: "Invalid", wantMessage: "must be an https URL"},
		"keys URL with creds": {rules: []causewayv1alpha1.JWTRule{with(func(r *causewayv1alpha1.JWTRule) { r.JWKSURI = "https://u:p@idp.example.com/keys" })}, wantReason: "Invalid", wantMessage: "credentials"},
		"keys not JSON":       {rules: []causewayv1alpha1.JWTRule{with(func(r *causewayv1alpha1.JWTRule) { r.JWKSURI, r.JWKS = "", "keys" })}, wantReason: "Invalid", wantMessage: "not a JSON Web Key Set"},
		"no keys array":       {rules: []causewayv1alpha1.JWTRule{with(func(r *causewayv1alpha1.JWTRule) { r.JWKSURI, r.JWKS = "", "{}" })}, wantReason: "Invalid", wantMessage: `no "keys" array`},
		"symmetric key only":  {rules: []causewayv1alpha1.JWTRule{with(func(r *causewayv1alpha1.JWTRule) { r.JWKSURI, r.JWKS = "", `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}` })}, wantReason: "Invalid", wantMessage: "no key can verify signatures"},
		"encryption key only": {rules: []causewayv1alpha1.JWTRule{with(func(r *causewayv1alpha1.JWTRule) {
			r.JWKSURI, r.JWKS = "", strings.Replace(es256JWKS, `"sig"`, `"enc"`, 1)
		})}, wantReason: "Invalid", wantMessage: "no key can verify signatures"},
		"alg does not fit": {rules: []causewayv1alpha1.JWTRule{with(func(r *causewayv1alpha1.JWTRule) {
			r.JWKSURI, r.JWKS = "", strings.Replace(es256JWKS, `"ES256"`, `"ES384"`, 1)
		})}, wantReason: "Invalid", wantMessage: "no key can verify signatures"},
		"bad header":     {rules: []causewayv1alpha1.JWTRule{with(func(r *causewayv1alpha1.JWTRule) { r.FromHeaders = []causewayv1alpha1.JWTHeader{{Name: "a b"}} })}, wantReason: "Invalid", wantMessage: "fromHeaders[0]"},
		"bad param":      {rules: []causewayv1alpha1.JWTRule{with(func(r *causewayv1alpha1.JWTRule) { r.FromParams = []string{"a=b"} })}, wantReason: "Invalid", wantMessage: "fromParams"},
		"empty audience": {rules: []causewayv1alpha1.JWTRule{with(func(r *causewayv1alpha1.JWTRule) { r.Audiences = []string{""} })}, wantReason: "Invalid", wantMessage: "audiences"},
	}
	in, p := shopInputs()
	baseline := translate.Translate(in).Inbound.For(p)
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in, p := shopInputs()
			ra := requestAuthn("shop", "idp", tc.ref, tc.rules...)
			in.RequestAuthentications = []*causewayv1alpha1.RequestAuthentication{ra}
			res := translate.Translate(in)
			st := res.RequestAuthentications[ktypesName(ra)]
			if len(st.Conditions) != 2 || st.ObservedGeneration != 2 {
				t.Fatalf("status %+v", st)
			}
			acc := st.Conditions[0]
			if acc.Reason != tc.wantReason || !strings.Contains(acc.Message, tc.wantMessage) {
				t.Errorf("Accepted = %s %s %q, want %s containing %q", acc.Status, acc.Reason, acc.Message, tc.wantReason, tc.wantMessage)
			}
			got := res.Inbound.For(p)
			checkResources(t, "inbound", got)
			v := viewInbound(t, got)
			if tc.wantReason != causewayv1alpha1.ReasonAccepted {
				if acc.Status != metav1.ConditionFalse || !resourcesEqual(got, baseline) {
					t.Errorf("an invalid RequestAuthentication (%s) changed the workload's configuration", acc.Status)
				}
				return
			}
			if acc.Status != metav1.ConditionTrue || v.chains[8080].jwt == nil {
				t.Fatalf("Accepted %s, jwt_authn %v", acc.Status, v.chains[8080].jwt)
			}
			prov := v.chains[8080].jwt.GetProviders()["shop/idp/0"]
			if prov.GetIssuer() != tc.rules[0].Issuer || prov.GetPayloadInMetadata() != tc.rules[0].Issuer {
				t.Errorf("provider %v", prov)
			}
			reqs := v.chains[8080].jwt.GetRules()[0].GetRequires().GetRequiresAny().GetRequirements()
			if len(reqs) != 2 || reqs[0].GetProviderName() != "shop/idp/0" || reqs[1].GetAllowMissing() == nil {
				t.Errorf("requirement %v: want the provider, or no token", reqs)
			}
		})
	}
}

// TestTCPIsMoreRestrictive: on TCP chains an ALLOW rule with HTTP-only
// conditions matches nothing, and a DENY rule applies without them.
func TestTCPIsMoreRestrictive(t *testing.T) {
	in, p := shopInputs()
	in.AuthorizationPolicies = []*causewayv1alpha1.AuthorizationPolicy{
		authzPolicy("shop", "allow", causewayv1alpha1.AuthorizationActionAllow, nil,
			causewayv1alpha1.AuthorizationRule{To: &causewayv1alpha1.AuthorizationDestination{Methods: []causewayv1alpha1.HTTPMethod{"GET"}}},
			causewayv1alpha1.AuthorizationRule{To: &causewayv1alpha1.AuthorizationDestination{Ports: []causewayv1alpha1.PortNumber{5432}}}),
		authzPolicy("shop", "deny", causewayv1alpha1.AuthorizationActionDeny, nil, causewayv1alpha1.AuthorizationRule{
			From: &causewayv1alpha1.AuthorizationSource{Namespaces: []causewayv1alpha1.NamespaceName{"test"}},
			To:   &causewayv1alpha1.AuthorizationDestination{Paths: []string{"/admin"}},
		}),
	}
	v := viewInbound(t, translate.Translate(in).Inbound.For(p))
	tcp := v.chains[5432].netRBAC
	if len(tcp) != 2 {
		t.Fatalf("%d network RBAC filters", len(tcp))
	}
	if got := policyNames(tcp[1]); fmt.Sprint(got) != "[ns[shop]-policy[allow]-rule[1]]" {
		t.Errorf("TCP ALLOW policies %v, want only the rule without HTTP conditions", got)
	}
	deny := tcp[0].GetPolicies()["ns[shop]-policy[deny]-rule[0]"]
	if _, any := deny.GetPermissions()[0].GetRule().(*rbacv3.Permission_Any); !any {
		t.Errorf("TCP DENY permission %v, want any (the path dropped)", deny.GetPermissions()[0])
	}
	if deny.GetPrincipals()[0].GetAuthenticated() == nil {
		t.Errorf("TCP DENY principal %v, want the namespace kept", deny.GetPrincipals()[0])
	}
	httpDeny := v.chains[8080].httpRBAC[0].GetPolicies()["ns[shop]-policy[deny]-rule[0]"]
	if httpDeny.GetPermissions()[0].GetUrlPath() == nil {
		t.Errorf("HTTP DENY permission %v, want the path", httpDeny.GetPermissions()[0])
	}
}

// TestInboundIsSharedByShape: pods of one shape share one set of
// resources; another label or port makes another.
func TestInboundIsSharedByShape(t *testing.T) {
	in, _ := shopInputs()
	res := translate.Translate(in)
	a := res.Inbound.For(pod("shop", "web-1", map[string]string{"app": "web"}, "http=8080", "grpc=9091"))
	b := res.Inbound.For(pod("shop", "web-2", map[string]string{"app": "web"}, "http=8080", "grpc=9091"))
	if len(a[resource.ListenerType]) != 1 || a[resource.ListenerType][0] != b[resource.ListenerType][0] {
		t.Error("two pods of one shape got different listeners")
	}
	for _, other := range []*corev1.Pod{
		pod("shop", "web-3", map[string]string{"app": "web", "v": "2"}, "http=8080", "grpc=9091"),
		pod("shop", "web-4", map[string]string{"app": "web"}, "http=8081", "grpc=9091"),
		pod("prod", "web-5", map[string]string{"app": "web"}, "http=8080", "grpc=9091"),
	} {
		c := res.Inbound.For(other)
		if c[resource.ListenerType][0] == a[resource.ListenerType][0] {
			t.Errorf("pod %s/%s shares the listener of another shape", other.Namespace, other.Name)
		}
	}
	if !proto.Equal(a[resource.ListenerType][0], translate.Translate(in).Inbound.For(pod("shop", "x", map[string]string{"app": "web"}, "http=8080", "grpc=9091"))[resource.ListenerType][0]) {
		t.Error("translations of the same inputs differ")
	}
	var nilInbound *translate.Inbound
	if nilInbound.For(pod("a", "b", nil)) != nil || res.Inbound.For(nil) != nil {
		t.Error("nil inbound or pod gave resources")
	}
}
