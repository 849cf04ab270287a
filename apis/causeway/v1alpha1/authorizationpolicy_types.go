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

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types of an AuthorizationPolicy.
const (
	// AuthorizationPolicyAccepted is True when the policy is valid and its
	// target, if any, exists.
	AuthorizationPolicyAccepted = ConditionTypeAccepted

	// AuthorizationPolicyReady summarises the policy: True when it is
	// Accepted and enforced by every proxy in front of the workloads it
	// protects.
	AuthorizationPolicyReady = ConditionTypeReady
)

// AuthorizationPolicy allows or denies requests to workloads by who sends
// them (SPIFFE ID, namespace, cluster) and what they ask for (port, path,
// method, host, headers). It is enforced by the proxy in front of the
// destination, after mutual TLS has authenticated the source, so it holds
// for callers in every cluster.
//
// A request is denied if any DENY policy matches it. Otherwise, if any ALLOW
// policy applies to the destination, the request must match at least one of
// them. With no ALLOW policy, requests are allowed.
//
// Connections on TCP ports (and to ports no Service exposes) carry no HTTP
// request: there, an ALLOW rule with a condition only HTTP requests have
// (paths, methods, hosts, headers, requestPrincipals, claims) matches
// nothing, and a DENY rule is applied without those conditions, so that
// both are more restrictive rather than less (as Istio does).
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,shortName=authzpol,categories=causeway
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Action",type=string,JSONPath=`.spec.action`
// +kubebuilder:printcolumn:name="Kind",type=string,JSONPath=`.spec.targetRef.kind`
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.targetRef.name`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AuthorizationPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is what the policy protects and which requests it matches.
	// +required
	Spec AuthorizationPolicySpec `json:"spec"`

	// Status reports whether the policy is in effect.
	// +optional
	Status AuthorizationPolicyStatus `json:"status,omitempty"`
}

// AuthorizationAction is what happens to a request that a policy matches.
// +kubebuilder:validation:Enum=ALLOW;DENY
type AuthorizationAction string

const (
	// AuthorizationActionAllow allows matching requests; once any ALLOW
	// policy applies to a workload, requests that match none are denied.
	AuthorizationActionAllow AuthorizationAction = "ALLOW"

	// AuthorizationActionDeny denies matching requests, whatever ALLOW
	// policies say.
	AuthorizationActionDeny AuthorizationAction = "DENY"
)

// AuthorizationPolicySpec is the scope, action and rules of an
// AuthorizationPolicy.
type AuthorizationPolicySpec struct {
	// TargetRef is the Service or ServiceImport, in this namespace, whose
	// workloads the policy protects: the pods its selector (for a
	// ServiceImport, the selector of the Service of the same name in this
	// cluster) selects. When unset, the policy protects every workload in
	// the namespace, and a policy in the root namespace (causeway-system)
	// every workload in the cluster.
	// +optional
	TargetRef *PolicyTargetReference `json:"targetRef,omitempty"`

	// Action is ALLOW or DENY.
	// +required
	Action AuthorizationAction `json:"action"`

	// Rules match requests; a request matches the policy when it matches any
	// rule. An ALLOW policy without rules matches nothing, so it denies
	// every request to the workloads it protects; a DENY policy without
	// rules has no effect.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Rules []AuthorizationRule `json:"rules,omitempty"`
}

// AuthorizationRule matches requests by source (from), destination (to) and
// extra conditions (when). A request matches the rule when it matches every
// part that is set; within a part, each field that is set must match, and a
// list field matches when any of its entries does.
// +kubebuilder:validation:XValidation:rule=`has(self.from) || has(self.to)`,message=`each rule must set at least one of from or to`
type AuthorizationRule struct {
	// From matches the authenticated source of the request.
	// +optional
	From *AuthorizationSource `json:"from,omitempty"`

	// To matches what the request asks for.
	// +optional
	To *AuthorizationDestination `json:"to,omitempty"`

	// When adds conditions on the request's headers.
	// +optional
	When *AuthorizationCondition `json:"when,omitempty"`
}

// AuthorizationSource matches the source of a request: the peer that
// mutual TLS authenticated, and the end user that a RequestAuthentication
// authenticated by JSON Web Token.
// +kubebuilder:validation:XValidation:rule=`has(self.principals) || has(self.namespaces) || has(self.clusters) || has(self.requestPrincipals)`,message=`from must set at least one of principals, namespaces, clusters or requestPrincipals`
type AuthorizationSource struct {
	// Principals are SPIFFE IDs of source workloads, for example
	// "spiffe://cluster.local/ns/shop/sa/frontend". One '*' at the start or
	// the end matches any suffix or prefix: "spiffe://cluster.local/ns/shop/*"
	// is every workload of namespace shop, "*/sa/frontend" every workload
	// running as a service account named frontend, and "*" any
	// authenticated workload.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	Principals []SPIFFEIDPattern `json:"principals,omitempty"`

	// Namespaces are the namespaces of source workloads, in any cluster.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	Namespaces []NamespaceName `json:"namespaces,omitempty"`

	// Clusters are the member clusters the source workloads run in.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	Clusters []ClusterName `json:"clusters,omitempty"`

	// RequestPrincipals are end users authenticated by a JSON Web Token
	// that a RequestAuthentication of the destination verified, written
	// "<iss>/<sub>" (the token's issuer and subject claims), for example
	// "https://accounts.example.com/alice". One '*' at the start or the end
	// matches any suffix or prefix; "*" alone matches any request with a
	// valid token. Only HTTP and gRPC requests carry tokens.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	RequestPrincipals []RequestPrincipal `json:"requestPrincipals,omitempty"`
}

// SPIFFEID is a SPIFFE ID: "spiffe://<trust-domain>/<path>". Causeway's
// workload IDs are "spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>".
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=512
// +kubebuilder:validation:XValidation:rule=`self.matches('^spiffe://[a-z0-9._-]+(/[A-Za-z0-9._-]+)*$')`,message=`principals must be SPIFFE IDs such as 'spiffe://cluster.local/ns/shop/sa/frontend': 'spiffe://', a lowercase trust domain, then path segments of letters, digits, '.', '_' or '-'`
type SPIFFEID string

// SPIFFEIDPattern is a SPIFFE ID, or a pattern of one with a single '*'
// at the start or the end: "*" (any), a prefix such as
// "spiffe://cluster.local/ns/shop/*", or a suffix such as "*/sa/frontend".
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=512
// +kubebuilder:validation:XValidation:rule=`self.matches('^([*]|spiffe://[a-z0-9._-]+(/[A-Za-z0-9._-]+)*|spiffe://[a-z0-9._-]*(/[A-Za-z0-9._-]*)*[*]|[*][A-Za-z0-9._/-]+)$')`,message=`principals must be SPIFFE IDs such as 'spiffe://cluster.local/ns/shop/sa/frontend' ('spiffe://', a lowercase trust domain, then path segments of letters, digits, '.', '_' or '-'), or such an ID with one '*' at the start or the end, such as 'spiffe://cluster.local/ns/shop/*' or '*/sa/frontend'`
type SPIFFEIDPattern string

// RequestPrincipal is "<iss>/<sub>" of a JSON Web Token, or a pattern of
// it with a single '*' at the start or the end. Printable ASCII only.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=512
// +kubebuilder:validation:XValidation:rule=`self.matches('^([*]|[*][!-)+-~]+|[!-)+-~]+[*]|[!-)+-~]+/[!-)+-~]+)$')`,message=`requestPrincipals must be '<issuer>/<subject>' such as 'https://accounts.example.com/alice', or have one '*' at the start or the end such as 'https://accounts.example.com/*' ('*' alone: any valid token); printable ASCII without spaces`
type RequestPrincipal string

// NamespaceName is the name of a Kubernetes namespace.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:XValidation:rule=`self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')`,message=`namespaces must be DNS-1123 labels: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit`
type NamespaceName string

// AuthorizationDestination matches what a request asks for.
// +kubebuilder:validation:XValidation:rule=`has(self.ports) || has(self.paths) || has(self.methods) || has(self.hosts)`,message=`to must set at least one of ports, paths, methods or hosts`
type AuthorizationDestination struct {
	// Ports are destination ports, 1 to 65535: the workload's (target)
	// ports, not the Service's.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	Ports []PortNumber `json:"ports,omitempty"`

	// Paths are HTTP request paths. A path ending in '*' matches every path
	// that starts with what comes before the '*'; any other path must match
	// exactly. Only HTTP and gRPC requests can match paths. Requests are
	// matched after their path is normalised (percent-encoded unreserved
	// characters decoded, dot segments removed, repeated slashes merged,
	// requests with an encoded '/' or '\' refused), so paths here must be
	// in that normal form: "/a//b" or "/a/./b" could never match and are
	// refused.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=1024
	// +kubebuilder:validation:items:XValidation:rule=`self.startsWith('/') && (!self.contains('*') || self.indexOf('*') == size(self) - 1)`,message=`paths must start with '/' and may contain '*' only as the last character, for a prefix match such as '/api/*'`
	// +kubebuilder:validation:items:XValidation:rule=`!self.contains('//') && !self.contains('/./') && !self.contains('/../') && !self.endsWith('/.') && !self.endsWith('/..') && !self.contains('\\')`,message=`paths must be normalised, as requests are before they are matched: no '//', no '.' or '..' segments and no '\'`
	Paths []string `json:"paths,omitempty"`

	// Methods are HTTP methods. gRPC requests are all POST.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=9
	Methods []HTTPMethod `json:"methods,omitempty"`

	// Hosts are values of the request's Host (HTTP/1.1) or :authority
	// (HTTP/2) header, without port. A leading "*." matches any subdomain,
	// for example "*.example.com".
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:XValidation:rule=`self.matches('^([*][.])?[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')`,message=`hosts must be lowercase DNS names such as 'shop.example.com', optionally starting with '*.' to match subdomains`
	Hosts []string `json:"hosts,omitempty"`
}

// HTTPMethod is an HTTP request method.
// +kubebuilder:validation:Enum=GET;HEAD;POST;PUT;DELETE;CONNECT;OPTIONS;TRACE;PATCH
type HTTPMethod string

// AuthorizationCondition holds extra conditions on a request: all of
// them must match.
// +kubebuilder:validation:XValidation:rule=`has(self.headers) || has(self.claims)`,message=`when must set at least one of headers or claims`
type AuthorizationCondition struct {
	// Headers must all match the request.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Headers []HeaderMatch `json:"headers,omitempty"`

	// Claims must all match a JSON Web Token of the request that a
	// RequestAuthentication of the destination verified. A request without
	// such a token matches no claim. Only HTTP and gRPC requests carry
	// tokens.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	Claims []ClaimMatch `json:"claims,omitempty"`
}

// ClaimMatch matches one top-level claim of a verified JSON Web Token. A
// string claim matches when it equals one of the values; a list claim
// (and the space-separated "scope" and "permission" claims) when any of
// its elements does.
type ClaimMatch struct {
	// Name is the claim's name, for example "groups".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Name string `json:"name"`

	// Values are the accepted values. One '*' at the start or the end
	// matches any suffix or prefix; "*" alone matches any value.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=512
	// +kubebuilder:validation:items:XValidation:rule=`self.matches('^([*]|[*][^*]+|[^*]+[*]?)$')`,message=`claim values may contain one '*', as the first or the last character`
	Values []string `json:"values"`
}

// HeaderMatch matches one request header by exact value, prefix or regular
// expression; exactly one of exact, prefix or regex is set. A header that is
// absent never matches.
// +kubebuilder:validation:XValidation:rule=`(has(self.exact) ? 1 : 0) + (has(self.prefix) ? 1 : 0) + (has(self.regex) ? 1 : 0) == 1`,message=`a header match must set exactly one of exact, prefix or regex`
type HeaderMatch struct {
	// Name is the header name; matching is case-insensitive.
	// +required
	Name HTTPHeaderName `json:"name"`

	// Exact matches a header whose value is exactly this string.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Exact *string `json:"exact,omitempty"`

	// Prefix matches a header whose value starts with this string.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Prefix *string `json:"prefix,omitempty"`

	// Regex matches a header whose whole value matches this RE2 regular
	// expression (https://github.com/google/re2/wiki/Syntax).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Regex *string `json:"regex,omitempty"`
}

// AuthorizationPolicyStatus reports whether an AuthorizationPolicy is in
// effect.
type AuthorizationPolicyStatus struct {
	// ObservedGeneration is the metadata.generation the conditions were
	// computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions are Accepted and the summarising Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// AuthorizationPolicyList is a list of AuthorizationPolicies.
// +kubebuilder:object:root=true
type AuthorizationPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	// Items are the AuthorizationPolicies.
	Items []AuthorizationPolicy `json:"items"`
}
