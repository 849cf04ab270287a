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

// Condition types of a TrafficPolicy.
const (
	// TrafficPolicyAccepted is True when the policy's target exists and no
	// older TrafficPolicy targets it.
	TrafficPolicyAccepted = ConditionTypeAccepted

	// TrafficPolicyReady summarises the policy: True when it is Accepted and
	// programmed into every data plane that sends traffic to the target.
	TrafficPolicyReady = ConditionTypeReady
)

// TrafficPolicy sets how clients in the mesh send traffic to one Service or
// ServiceImport: the load-balancing algorithm, connection limits (circuit
// breaking), outlier detection, default retries and timeout, and fault
// injection for testing resilience. HTTPRoute and GRPCRoute settings, where
// present, take precedence over the defaults given here. At most one
// TrafficPolicy applies to a target: when several name the same target the
// oldest wins and the others report Accepted=False with reason Conflicted.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,shortName=tp,categories=causeway
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Kind",type=string,JSONPath=`.spec.targetRef.kind`
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.targetRef.name`
// +kubebuilder:printcolumn:name="Algorithm",type=string,JSONPath=`.spec.loadBalancer.algorithm`,priority=1
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TrafficPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the target and the traffic settings applied to it.
	// +required
	Spec TrafficPolicySpec `json:"spec"`

	// Status reports whether the policy is in effect.
	// +optional
	Status TrafficPolicyStatus `json:"status,omitempty"`
}

// TrafficPolicySpec is the target of a TrafficPolicy and the settings
// applied to traffic sent to it. Settings left unset keep the data plane's
// defaults.
// +kubebuilder:validation:XValidation:rule=`has(self.loadBalancer) || has(self.connectionPool) || has(self.outlierDetection) || has(self.retries) || has(self.timeout) || has(self.faultInjection)`,message=`a TrafficPolicy must set at least one of loadBalancer, connectionPool, outlierDetection, retries, timeout or faultInjection`
type TrafficPolicySpec struct {
	// TargetRef is the Service or ServiceImport, in this namespace, whose
	// traffic the policy shapes.
	// +required
	TargetRef PolicyTargetReference `json:"targetRef"`

	// LoadBalancer chooses how requests are spread over the target's
	// endpoints. The default is RoundRobin.
	// +optional
	LoadBalancer *LoadBalancer `json:"loadBalancer,omitempty"`

	// ConnectionPool limits connections and requests to the target, per
	// client proxy (circuit breaking): requests over a limit fail fast with
	// 503 instead of queueing.
	// +optional
	ConnectionPool *ConnectionPool `json:"connectionPool,omitempty"`

	// OutlierDetection ejects endpoints that keep failing from the load
	// balancing pool for a while.
	// +optional
	OutlierDetection *OutlierDetection `json:"outlierDetection,omitempty"`

	// Retries is the default retry policy for requests to the target.
	// +optional
	Retries *RetryPolicy `json:"retries,omitempty"`

	// Timeout is the default time a whole request, retries included, may
	// take, for example "15s". "0s" disables the timeout.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule=`self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$')`,message=`timeout must be a duration such as '500ms', '15s' or '1m30s'`
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// FaultInjection delays or aborts a share of requests on purpose, to
	// test how clients cope. Never leave it on in production by accident.
	// +optional
	FaultInjection *FaultInjection `json:"faultInjection,omitempty"`
}

// LoadBalancerAlgorithm is a load-balancing algorithm.
// +kubebuilder:validation:Enum=RoundRobin;LeastRequest;Random;RingHash;Maglev
type LoadBalancerAlgorithm string

const (
	// LoadBalancerRoundRobin sends requests to each endpoint in turn.
	LoadBalancerRoundRobin LoadBalancerAlgorithm = "RoundRobin"

	// LoadBalancerLeastRequest sends each request to the less busy of two
	// endpoints picked at random.
	LoadBalancerLeastRequest LoadBalancerAlgorithm = "LeastRequest"

	// LoadBalancerRandom sends each request to an endpoint picked at random.
	LoadBalancerRandom LoadBalancerAlgorithm = "Random"

	// LoadBalancerRingHash sends requests with the same hash key to the same
	// endpoint, using a consistent-hash ring; few keys move when endpoints
	// come and go.
	LoadBalancerRingHash LoadBalancerAlgorithm = "RingHash"

	// LoadBalancerMaglev is consistent hashing with Google's Maglev table:
	// faster lookups than RingHash, slightly more keys move on change.
	LoadBalancerMaglev LoadBalancerAlgorithm = "Maglev"
)

// LoadBalancer is the load-balancing algorithm and, for the consistent-hash
// algorithms, what to hash.
// +kubebuilder:validation:XValidation:rule=`!has(self.consistentHash) || self.algorithm in ['RingHash', 'Maglev']`,message=`consistentHash is only allowed when algorithm is RingHash or Maglev`
// +kubebuilder:validation:XValidation:rule=`!(self.algorithm in ['RingHash', 'Maglev']) || has(self.consistentHash)`,message=`algorithms RingHash and Maglev need consistentHash to say what to hash`
type LoadBalancer struct {
	// Algorithm is one of RoundRobin, LeastRequest, Random, RingHash or
	// Maglev.
	// +required
	Algorithm LoadBalancerAlgorithm `json:"algorithm"`

	// ConsistentHash is the key that RingHash and Maglev hash, so requests
	// with the same key reach the same endpoint while it stays healthy.
	// Required with those two algorithms, forbidden with the others.
	// +optional
	ConsistentHash *ConsistentHash `json:"consistentHash,omitempty"`
}

// ConsistentHash is the request property a consistent-hash load balancer
// hashes. Exactly one of header, cookie or sourceIP is set.
// +kubebuilder:validation:XValidation:rule=`(has(self.header) ? 1 : 0) + (has(self.cookie) ? 1 : 0) + ((has(self.sourceIP) && self.sourceIP) ? 1 : 0) == 1`,message=`consistentHash must set exactly one of header, cookie or sourceIP: true`
type ConsistentHash struct {
	// Header hashes the value of a request header. Requests without the
	// header are spread at random.
	// +optional
	Header *ConsistentHashHeader `json:"header,omitempty"`

	// Cookie hashes the value of an HTTP cookie (session affinity).
	// +optional
	Cookie *ConsistentHashCookie `json:"cookie,omitempty"`

	// SourceIP, when true, hashes the client's IP address.
	// +optional
	SourceIP bool `json:"sourceIP,omitempty"`
}

// ConsistentHashHeader names the request header to hash.
type ConsistentHashHeader struct {
	// Name is the header name, for example "x-user-id". Matching is
	// case-insensitive.
	// +required
	Name HTTPHeaderName `json:"name"`
}

// ConsistentHashCookie names the cookie to hash.
type ConsistentHashCookie struct {
	// Name is the cookie name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule=`self.matches('^[A-Za-z0-9!#$%&*+.^_|~-]+$')`,message=`cookie names may contain only letters, digits and the characters !#$%&*+.^_|~-`
	Name string `json:"name"`

	// TTL, when set, makes the proxy issue the cookie, with this lifetime,
	// to clients that do not send it yet; "0s" issues a session cookie.
	// When unset, requests without the cookie are spread at random.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule=`self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$')`,message=`ttl must be a duration such as '30m' or '24h'`
	TTL *metav1.Duration `json:"ttl,omitempty"`

	// Path is the Path attribute of a cookie the proxy issues.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule=`self.startsWith('/')`,message=`cookie path must start with '/'`
	Path string `json:"path,omitempty"`
}

// HTTPHeaderName is the name of an HTTP header (an RFC 9110 token).
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=256
// +kubebuilder:validation:XValidation:rule=`self.matches('^[A-Za-z0-9!#$%&*+.^_|~-]+$')`,message=`header names may contain only letters, digits and the characters !#$%&*+.^_|~- (pseudo-headers such as ':path' are not allowed)`
type HTTPHeaderName string

// ConnectionPool limits the connections and requests each client proxy
// opens to the target. Unset limits keep the data plane's defaults.
type ConnectionPool struct {
	// MaxConnections is the most connections to all the target's endpoints
	// together (HTTP/1.1 and TCP).
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxConnections *int32 `json:"maxConnections,omitempty"`

	// MaxPendingRequests is the most requests that may wait for a
	// connection.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxPendingRequests *int32 `json:"maxPendingRequests,omitempty"`

	// MaxRequests is the most requests in flight at once (HTTP/2 and gRPC).
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxRequests *int32 `json:"maxRequests,omitempty"`

	// MaxRetries is the most retries in flight at once; it stops retries
	// from multiplying load on a target that is already failing.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxRetries *int32 `json:"maxRetries,omitempty"`
}

// OutlierDetection ejects an endpoint from the load-balancing pool after
// consecutive errors. An ejected endpoint returns after baseEjectionTime
// multiplied by the number of times it has been ejected.
type OutlierDetection struct {
	// Consecutive5xx is the number of consecutive 5xx responses (or
	// connection failures) that eject an endpoint.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Consecutive5xx *int32 `json:"consecutive5xx,omitempty"`

	// Interval is how often endpoints are checked for ejection, for example
	// "10s".
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule=`self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$')`,message=`interval must be a duration such as '500ms', '10s' or '1m'`
	// +kubebuilder:validation:XValidation:rule=`!self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self) >= duration('1ms')`,message=`interval must be at least 1ms`
	Interval *metav1.Duration `json:"interval,omitempty"`

	// BaseEjectionTime is how long an endpoint stays ejected the first
	// time, for example "30s".
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule=`self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$')`,message=`baseEjectionTime must be a duration such as '30s' or '1m'`
	// +kubebuilder:validation:XValidation:rule=`!self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self) >= duration('1ms')`,message=`baseEjectionTime must be at least 1ms`
	BaseEjectionTime *metav1.Duration `json:"baseEjectionTime,omitempty"`

	// MaxEjectionPercent is the largest share of the target's endpoints, in
	// percent, that may be ejected at once.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MaxEjectionPercent *int32 `json:"maxEjectionPercent,omitempty"`
}

// RetryOn is a condition under which a request is retried.
// +kubebuilder:validation:Enum="5xx";"gateway-error";"reset";"connect-failure";"retriable-4xx";"refused-stream";"unavailable";"cancelled";"deadline-exceeded";"resource-exhausted"
type RetryOn string

const (
	// RetryOn5xx retries on any 5xx response, a reset or a connect failure.
	RetryOn5xx RetryOn = "5xx"
	// RetryOnGatewayError retries on 502, 503 and 504 responses.
	RetryOnGatewayError RetryOn = "gateway-error"
	// RetryOnReset retries when the endpoint does not respond (reset,
	// disconnect or read timeout).
	RetryOnReset RetryOn = "reset"
	// RetryOnConnectFailure retries when the connection cannot be opened.
	RetryOnConnectFailure RetryOn = "connect-failure"
	// RetryOnRetriable4xx retries on 409 Conflict.
	RetryOnRetriable4xx RetryOn = "retriable-4xx"
	// RetryOnRefusedStream retries when the endpoint refuses an HTTP/2
	// stream (REFUSED_STREAM).
	RetryOnRefusedStream RetryOn = "refused-stream"
	// RetryOnUnavailable retries on gRPC status UNAVAILABLE.
	RetryOnUnavailable RetryOn = "unavailable"
	// RetryOnCancelled retries on gRPC status CANCELLED.
	RetryOnCancelled RetryOn = "cancelled"
	// RetryOnDeadlineExceeded retries on gRPC status DEADLINE_EXCEEDED.
	RetryOnDeadlineExceeded RetryOn = "deadline-exceeded"
	// RetryOnResourceExhausted retries on gRPC status RESOURCE_EXHAUSTED.
	RetryOnResourceExhausted RetryOn = "resource-exhausted"
)

// RetryPolicy is the default retry behaviour for requests to the target.
type RetryPolicy struct {
	// Attempts is the number of retries after the first try, 0 to 10; 0
	// disables retries.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	Attempts *int32 `json:"attempts,omitempty"`

	// PerTryTimeout is the time each try may take, for example "2s". The
	// overall timeout still bounds all tries together.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule=`self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$')`,message=`perTryTimeout must be a duration such as '500ms' or '2s'`
	// +kubebuilder:validation:XValidation:rule=`!self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self) >= duration('1ms')`,message=`perTryTimeout must be at least 1ms`
	PerTryTimeout *metav1.Duration `json:"perTryTimeout,omitempty"`

	// RetryOn lists the conditions that trigger a retry: 5xx,
	// gateway-error, reset, connect-failure, retriable-4xx and
	// refused-stream for HTTP; unavailable, cancelled, deadline-exceeded
	// and resource-exhausted for gRPC.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=10
	RetryOn []RetryOn `json:"retryOn,omitempty"`
}

// FaultInjection delays and/or aborts a share of requests. Delay is
// applied before abort, so a request can be both delayed and aborted.
// +kubebuilder:validation:XValidation:rule=`has(self.delay) || has(self.abort)`,message=`faultInjection must set delay, abort or both`
type FaultInjection struct {
	// Delay holds a share of requests back before forwarding them.
	// +optional
	Delay *FaultDelay `json:"delay,omitempty"`

	// Abort answers a share of requests with an error instead of
	// forwarding them.
	// +optional
	Abort *FaultAbort `json:"abort,omitempty"`
}

// FaultDelay holds a share of requests back for a fixed time.
type FaultDelay struct {
	// Percentage is the share of requests to delay, a decimal string from
	// "0" to "100" with at most four decimal places, for example "0.5".
	// +required
	Percentage Percentage `json:"percentage"`

	// FixedDelay is how long each selected request is held, for example
	// "2s".
	// +required
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule=`self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$')`,message=`fixedDelay must be a duration such as '500ms' or '2s'`
	// +kubebuilder:validation:XValidation:rule=`!self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self) >= duration('1ms')`,message=`fixedDelay must be at least 1ms`
	FixedDelay metav1.Duration `json:"fixedDelay"`
}

// FaultAbort answers a share of requests with an HTTP status or a gRPC
// status. Exactly one of httpStatus or grpcStatus is set.
// +kubebuilder:validation:XValidation:rule=`has(self.httpStatus) != has(self.grpcStatus)`,message=`abort must set exactly one of httpStatus or grpcStatus`
type FaultAbort struct {
	// Percentage is the share of requests to abort, a decimal string from
	// "0" to "100" with at most four decimal places, for example "0.5".
	// +required
	Percentage Percentage `json:"percentage"`

	// HTTPStatus is the HTTP status code to answer with, 200 to 599.
	// +optional
	// +kubebuilder:validation:Minimum=200
	// +kubebuilder:validation:Maximum=599
	HTTPStatus *int32 `json:"httpStatus,omitempty"`

	// GRPCStatus is the gRPC status code to answer with, 0 (OK) to 16
	// (UNAUTHENTICATED); 14 is UNAVAILABLE.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=16
	GRPCStatus *int32 `json:"grpcStatus,omitempty"`
}

// TrafficPolicyStatus reports whether a TrafficPolicy is in effect.
type TrafficPolicyStatus struct {
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

// TrafficPolicyList is a list of TrafficPolicies.
// +kubebuilder:object:root=true
type TrafficPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	// Items are the TrafficPolicies.
	Items []TrafficPolicy `json:"items"`
}
