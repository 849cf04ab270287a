package translate

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ktypes "k8s.io/apimachinery/pkg/types"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
)

// resolvePolicies decides which TrafficPolicy applies to each target and
// the status of every policy. A policy that is invalid, or whose target
// does not exist, takes no part in the contest for its target; among the
// others the oldest (then the first by name) wins and the rest are
// Conflicted.
func (t *translator) resolvePolicies() {
	policies := slices.Clone(t.in.TrafficPolicies)
	slices.SortFunc(policies, func(a, b *causewayv1alpha1.TrafficPolicy) int { return olderFirst(a, b) })
	winners := map[targetKey]*causewayv1alpha1.TrafficPolicy{}
	for _, tp := range policies {
		key, err := policyTarget(tp)
		reason, message := causewayv1alpha1.ReasonAccepted, ""
		switch {
		case err != nil:
			reason, message = causewayv1alpha1.ReasonInvalid, err.Error()
		case t.byKey[key] == nil && t.skipped[key] != "":
			reason, message = causewayv1alpha1.ReasonInvalid, fmt.Sprintf("target %s: %s", key, t.skipped[key])
		case t.byKey[key] == nil:
			reason, message = causewayv1alpha1.ReasonTargetNotFound, fmt.Sprintf("target %s does not exist", key)
		default:
			if err := validatePolicy(&tp.Spec); err != nil {
				reason, message = causewayv1alpha1.ReasonInvalid, err.Error()
			} else if w := winners[key]; w != nil {
				reason, message = causewayv1alpha1.ReasonConflicted, fmt.Sprintf("TrafficPolicy %s is older and applies to %s", w.Name, key)
			} else {
				winners[key] = tp
				t.byKey[key].policy = tp
				message = fmt.Sprintf("applies to %s", key)
			}
		}
		t.policyStatus[ktypes.NamespacedName{Namespace: tp.Namespace, Name: tp.Name}] = policyStatus(tp.Generation, reason, message)
	}
}

// policyStatus is the Accepted and Ready conditions for a verdict. Ready
// is True as soon as the policy is Accepted: the snapshot that carries it
// is what every node receives (NACKs are reported by the server's logs and
// metrics, not per policy).
func policyStatus(generation int64, reason, message string) PolicyStatus {
	accepted := metav1.Condition{Type: causewayv1alpha1.TrafficPolicyAccepted, Status: metav1.ConditionTrue, Reason: reason, Message: message, ObservedGeneration: generation}
	ready := metav1.Condition{Type: causewayv1alpha1.TrafficPolicyReady, Status: metav1.ConditionTrue, Reason: causewayv1alpha1.ReasonProgrammed, Message: "programmed into the mesh's xDS snapshot", ObservedGeneration: generation}
	if reason != causewayv1alpha1.ReasonAccepted {
		accepted.Status = metav1.ConditionFalse
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, reason, message
	}
	return PolicyStatus{ObservedGeneration: generation, Conditions: []metav1.Condition{accepted, ready}}
}

// policyTarget is the key of a policy's target.
func policyTarget(tp *causewayv1alpha1.TrafficPolicy) (targetKey, error) {
	return targetKeyOf(tp.Namespace, tp.Spec.TargetRef)
}

// cookieName and headerName are the syntax the CRD enforces, checked again
// because the translation must never emit what a data plane rejects.
var (
	headerNameRE = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+\-.^_` + "`" + `|~]+$`)
	cookieNameRE = regexp.MustCompile(`^[A-Za-z0-9!#$%&*+.^_|~-]+$`)
)

// validatePolicy checks what the API server's validation cannot, or what
// a client could have bypassed.
func validatePolicy(s *causewayv1alpha1.TrafficPolicySpec) error {
	var errs []error
	if lb := s.LoadBalancer; lb != nil {
		hashed := lb.Algorithm == causewayv1alpha1.LoadBalancerRingHash || lb.Algorithm == causewayv1alpha1.LoadBalancerMaglev
		switch lb.Algorithm {
		case causewayv1alpha1.LoadBalancerRoundRobin, causewayv1alpha1.LoadBalancerLeastRequest, causewayv1alpha1.LoadBalancerRandom,
			causewayv1alpha1.LoadBalancerRingHash, causewayv1alpha1.LoadBalancerMaglev:
		default:
			errs = append(errs, fmt.Errorf("loadBalancer.algorithm %q is not supported", lb.Algorithm))
		}
		if hashed != (lb.ConsistentHash != nil) {
			errs = append(errs, errors.New("loadBalancer.consistentHash must be set exactly when the algorithm is RingHash or Maglev"))
		}
		if h := lb.ConsistentHash; h != nil {
			n := 0
			if h.Header != nil {
				n++
				if !headerNameRE.MatchString(string(h.Header.Name)) {
					errs = append(errs, fmt.Errorf("consistentHash.header.name %q is not a header name", h.Header.Name))
				}
			}
			if h.Cookie != nil {
				n++
				if !cookieNameRE.MatchString(h.Cookie.Name) {
					errs = append(errs, fmt.Errorf("consistentHash.cookie.name %q is not a cookie name", h.Cookie.Name))
				}
				if p := h.Cookie.Path; p != "" && (!strings.HasPrefix(p, "/") || !utf8.ValidString(p) || strings.ContainsAny(p, "\x00\r\n;")) {
					errs = append(errs, fmt.Errorf("consistentHash.cookie.path %q is not a cookie path", p))
				}
				if h.Cookie.TTL != nil && h.Cookie.TTL.Duration < 0 {
					errs = append(errs, errors.New("consistentHash.cookie.ttl must not be negative"))
				}
			}
			if h.SourceIP {
				n++
			}
			if n != 1 {
				errs = append(errs, errors.New("consistentHash must set exactly one of header, cookie or sourceIP"))
			}
		}
	}
	if o := s.OutlierDetection; o != nil {
		if o.Interval != nil && o.Interval.Duration < time.Millisecond {
			errs = append(errs, errors.New("outlierDetection.interval must be at least 1ms"))
		}
		if o.BaseEjectionTime != nil && o.BaseEjectionTime.Duration < time.Millisecond {
			errs = append(errs, errors.New("outlierDetection.baseEjectionTime must be at least 1ms"))
		}
		if p := o.MaxEjectionPercent; p != nil && (*p < 0 || *p > 100) {
			errs = append(errs, errors.New("outlierDetection.maxEjectionPercent must be 0 to 100"))
		}
	}
	if r := s.Retries; r != nil {
		if r.Attempts != nil && (*r.Attempts < 0 || *r.Attempts > 10) {
			errs = append(errs, errors.New("retries.attempts must be 0 to 10"))
		}
		if r.PerTryTimeout != nil && r.PerTryTimeout.Duration < time.Millisecond {
			errs = append(errs, errors.New("retries.perTryTimeout must be at least 1ms"))
		}
		for _, on := range r.RetryOn {
			if !retryOnKnown(on) {
				errs = append(errs, fmt.Errorf("retries.retryOn %q is not supported", on))
			}
		}
	}
	if s.Timeout != nil && s.Timeout.Duration < 0 {
		errs = append(errs, errors.New("timeout must not be negative"))
	}
	if f := s.FaultInjection; f != nil {
		if f.Delay != nil {
			if _, err := f.Delay.Percentage.PartsPerMillion(); err != nil {
				errs = append(errs, fmt.Errorf("faultInjection.delay: %w", err))
			}
			if f.Delay.FixedDelay.Duration < time.Millisecond {
				errs = append(errs, errors.New("faultInjection.delay.fixedDelay must be at least 1ms"))
			}
		}
		if a := f.Abort; a != nil {
			if _, err := a.Percentage.PartsPerMillion(); err != nil {
				errs = append(errs, fmt.Errorf("faultInjection.abort: %w", err))
			}
			switch {
			case (a.HTTPStatus == nil) == (a.GRPCStatus == nil):
				errs = append(errs, errors.New("faultInjection.abort must set exactly one of httpStatus or grpcStatus"))
			case a.HTTPStatus != nil && (*a.HTTPStatus < 200 || *a.HTTPStatus > 599):
				errs = append(errs, errors.New("faultInjection.abort.httpStatus must be 200 to 599"))
			case a.GRPCStatus != nil && (*a.GRPCStatus < 0 || *a.GRPCStatus > 16):
				errs = append(errs, errors.New("faultInjection.abort.grpcStatus must be 0 to 16"))
			}
		}
		if f.Delay == nil && f.Abort == nil {
			errs = append(errs, errors.New("faultInjection must set delay, abort or both"))
		}
	}
	return errors.Join(errs...)
}

// retryOnKnown reports whether Envoy and Causeway know a retry condition.
// Causeway's names are Envoy's (x-envoy-retry-on and x-envoy-retry-grpc-on
// values), so they map one to one.
func retryOnKnown(on causewayv1alpha1.RetryOn) bool {
	switch on {
	case causewayv1alpha1.RetryOn5xx, causewayv1alpha1.RetryOnGatewayError, causewayv1alpha1.RetryOnReset,
		causewayv1alpha1.RetryOnConnectFailure, causewayv1alpha1.RetryOnRetriable4xx, causewayv1alpha1.RetryOnRefusedStream,
		causewayv1alpha1.RetryOnUnavailable, causewayv1alpha1.RetryOnCancelled, causewayv1alpha1.RetryOnDeadlineExceeded,
		causewayv1alpha1.RetryOnResourceExhausted:
		return true
	}
	return false
}
