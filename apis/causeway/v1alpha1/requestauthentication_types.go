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

// Condition types of a RequestAuthentication.
const (
	// RequestAuthenticationAccepted is True when the object is valid and
	// its target, if any, exists.
	RequestAuthenticationAccepted = ConditionTypeAccepted

	// RequestAuthenticationReady summarises the object: True when it is
	// Accepted and programmed into the configuration of the proxies in
	// front of the workloads it selects.
	RequestAuthenticationReady = ConditionTypeReady
)

// RequestAuthentication says which JSON Web Tokens the workloads it selects
// accept, and from where in a request they are read. The proxy in front of
// a workload verifies every token it finds (signature, issuer, audiences,
// expiry) and answers 401 to a request whose token does not verify. A
// request without a token is not rejected here: AuthorizationPolicies
// decide, through requestPrincipals and claims, whether a token is needed
// (as Istio's RequestAuthentication).
//
// Several RequestAuthentications may select one workload; their rules are
// combined, and a token is accepted when the rule of its issuer verifies
// it.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,shortName=reqauthn,categories=causeway
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Kind",type=string,JSONPath=`.spec.targetRef.kind`
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.targetRef.name`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RequestAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is which workloads accept which tokens.
	// +required
	Spec RequestAuthenticationSpec `json:"spec"`

	// Status reports whether the object is in effect.
	// +optional
	Status RequestAuthenticationStatus `json:"status,omitempty"`
}

// RequestAuthenticationSpec selects workloads and lists the token issuers
// they accept.
type RequestAuthenticationSpec struct {
	// TargetRef is the Service or ServiceImport, in this namespace, whose
	// workloads accept the tokens: the pods its selector (for a
	// ServiceImport, the selector of the Service of the same name in this
	// cluster) selects. When unset, every workload in the namespace does,
	// and for an object in the root namespace (causeway-system) every
	// workload in the cluster.
	// +optional
	TargetRef *PolicyTargetReference `json:"targetRef,omitempty"`

	// JWTRules are the accepted issuers, one rule each.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	JWTRules []JWTRule `json:"jwtRules"`
}

// JWTRule describes the tokens of one issuer: how to verify them and where
// to find them. Exactly one of jwksUri and jwks is set.
// +kubebuilder:validation:XValidation:rule=`has(self.jwksUri) != has(self.jwks)`,message=`set exactly one of jwksUri and jwks`
type JWTRule struct {
	// Issuer is the token's "iss" claim, for example
	// "https://accounts.example.com". An issuer that contains "://" must be
	// an http or https URL with a host.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule=`self.matches('^[!-~]+$')`,message=`issuer must be printable ASCII without spaces`
	// +kubebuilder:validation:XValidation:rule=`!self.contains('://') || (isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != '')`,message=`an issuer that is a URL must be an http or https URL with a host, such as 'https://accounts.example.com'`
	Issuer string `json:"issuer"`

	// Audiences are the accepted "aud" values; a token must name at least
	// one. When empty, tokens are accepted whatever their audience.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=512
	Audiences []string `json:"audiences,omitempty"`

	// JWKSURI is where the issuer publishes its public keys (a JSON Web Key
	// Set, RFC 7517): an https URL. The proxies fetch it and refresh it.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule=`isURL(self) && url(self).getScheme() == 'https' && url(self).getHostname() != ''`,message=`jwksUri must be an https URL with a host, such as 'https://accounts.example.com/.well-known/jwks.json'`
	JWKSURI string `json:"jwksUri,omitempty"`

	// JWKS is the issuer's public keys, inline: a JSON Web Key Set (RFC
	// 7517) such as {"keys": [...]}.
	// +optional
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=32768
	JWKS string `json:"jwks,omitempty"`

	// FromHeaders are the headers a token is read from. When neither
	// fromHeaders nor fromParams is set, tokens are read from
	// "Authorization: Bearer <token>" and the access_token query parameter.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	FromHeaders []JWTHeader `json:"fromHeaders,omitempty"`

	// FromParams are the query parameters a token is read from.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=128
	// +kubebuilder:validation:items:XValidation:rule=`self.matches('^[A-Za-z0-9._~-]+$')`,message=`query parameter names may contain only letters, digits and '.', '_', '~' or '-'`
	FromParams []string `json:"fromParams,omitempty"`

	// ForwardOriginalToken keeps a verified token in the request that is
	// forwarded to the workload; by default it is removed.
	// +optional
	ForwardOriginalToken bool `json:"forwardOriginalToken,omitempty"`
}

// JWTHeader is a header that carries a token.
type JWTHeader struct {
	// Name is the header's name, for example "Authorization".
	// +required
	Name HTTPHeaderName `json:"name"`

	// Prefix comes before the token in the header's value, for example
	// "Bearer " (with the space); a value without it carries no token.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule=`self.matches('^[ -~]*$')`,message=`prefix must be printable ASCII`
	Prefix string `json:"prefix,omitempty"`
}

// RequestAuthenticationStatus reports whether a RequestAuthentication is
// in effect.
type RequestAuthenticationStatus struct {
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

// RequestAuthenticationList is a list of RequestAuthentications.
// +kubebuilder:object:root=true
type RequestAuthenticationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	// Items are the RequestAuthentications.
	Items []RequestAuthentication `json:"items"`
}
