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
	"fmt"
	"strconv"
	"strings"
)

// MCSGroup is the API group of the Multi-Cluster Services API (KEP-1645),
// which defines ServiceExport and ServiceImport.
const MCSGroup = "multicluster.x-k8s.io"

// TargetKind is the kind of object a policy applies to.
// +kubebuilder:validation:Enum=Service;ServiceImport
type TargetKind string

const (
	// TargetKindService targets a core Service: the policy applies to
	// traffic addressed to <name>.<namespace>.svc.cluster.local.
	TargetKindService TargetKind = "Service"

	// TargetKindServiceImport targets an MCS ServiceImport: the policy
	// applies to traffic addressed to <name>.<namespace>.svc.clusterset.local,
	// whichever cluster serves it.
	TargetKindServiceImport TargetKind = "ServiceImport"
)

// PolicyTargetReference names the Service or ServiceImport, in the policy's
// own namespace, that a policy applies to.
// +kubebuilder:validation:XValidation:rule=`!has(self.group) || (self.kind == 'Service' ? size(self.group) == 0 : self.group == 'multicluster.x-k8s.io')`,message=`group must be empty (the core group) for kind Service and 'multicluster.x-k8s.io' for kind ServiceImport; it may be omitted`
type PolicyTargetReference struct {
	// Group is the API group of the target: "" for a Service,
	// "multicluster.x-k8s.io" for a ServiceImport. When omitted it is
	// inferred from kind.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Group string `json:"group,omitempty"`

	// Kind is the kind of the target: Service or ServiceImport.
	// +required
	Kind TargetKind `json:"kind"`

	// Name is the name of the target Service or ServiceImport, in the
	// policy's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule=`self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')`,message=`name must be a valid Service name: lowercase letters, digits and '-', starting with a letter and ending with a letter or digit`
	Name string `json:"name"`
}

// GroupOrDefault returns the target's API group, inferring it from Kind
// when Group is empty: "" for a Service and MCSGroup for a ServiceImport.
func (r PolicyTargetReference) GroupOrDefault() string {
	if r.Group != "" {
		return r.Group
	}
	if r.Kind == TargetKindServiceImport {
		return MCSGroup
	}
	return ""
}

// ClusterName is the name of a member cluster: the metadata.name of its
// MemberCluster on the hub and the value of its cluster.clusterset.k8s.io
// ClusterProperty.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:XValidation:rule=`self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')`,message=`cluster names must be DNS-1123 labels: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit`
type ClusterName string

// LocalityName is a region or zone name. It has the syntax of a Kubernetes
// label value, so the values of the well-known topology.kubernetes.io/region
// and topology.kubernetes.io/zone node labels can be used unchanged.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:XValidation:rule=`self.matches('^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$')`,message=`regions and zones must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit (the syntax of the topology.kubernetes.io labels)`
type LocalityName string

// Percentage is a share of requests, written as a decimal string from "0"
// to "100" with at most four decimal places ("0.5" is one request in 200,
// "0.0001" one in a million). A string keeps the value exact: Kubernetes APIs
// avoid floating-point numbers, and an integer would force a unit such as
// per-mille that is easy to misread.
// +kubebuilder:validation:MaxLength=8
// +kubebuilder:validation:XValidation:rule=`self.matches('^(100([.]0{1,4})?|[0-9]{1,2}([.][0-9]{1,4})?)$')`,message=`percentage must be a decimal string from '0' to '100' with at most 4 decimal places, such as '0.5' or '25'`
type Percentage string

// PartsPerMillion returns the percentage as parts per million (0 to
// 1,000,000), the unit of Envoy's FractionalPercent with the MILLION
// denominator, so no precision is lost. It accepts exactly the strings the
// API server accepts.
func (p Percentage) PartsPerMillion() (uint32, error) {
	s := string(p)
	whole, frac, hasFrac := strings.Cut(s, ".")
	if !isDigits(whole) || (len(whole) > 2 && whole != "100") || (hasFrac && (!isDigits(frac) || len(frac) > 4)) {
		return 0, fmt.Errorf("percentage %q: want a decimal from 0 to 100 with at most 4 decimal places", s)
	}
	w, err := strconv.ParseUint(whole, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("percentage %q: %w", s, err)
	}
	var f uint64
	if hasFrac {
		// Right-pad to four digits: "5" after the point is 5000/10000.
		if f, err = strconv.ParseUint(frac+strings.Repeat("0", 4-len(frac)), 10, 32); err != nil {
			return 0, fmt.Errorf("percentage %q: %w", s, err)
		}
	}
	ppm := w*10_000 + f
	if ppm > 1_000_000 {
		return 0, fmt.Errorf("percentage %q: greater than 100", s)
	}
	return uint32(ppm), nil
}

// isDigits reports whether s is non-empty and made of ASCII digits only.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// PortNumber is a TCP or UDP port number.
// +kubebuilder:validation:Minimum=1
// +kubebuilder:validation:Maximum=65535
type PortNumber int32
