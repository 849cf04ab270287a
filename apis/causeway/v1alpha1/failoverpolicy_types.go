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

// Condition types of a FailoverPolicy.
const (
	// FailoverPolicyAccepted is True when the policy's target exists and no
	// older FailoverPolicy targets it.
	FailoverPolicyAccepted = ConditionTypeAccepted

	// FailoverPolicyReady summarises the policy: True when it is Accepted and
	// its priorities are programmed into every data plane that sends traffic
	// to the target.
	FailoverPolicyReady = ConditionTypeReady
)

// FailoverPolicy orders the clusters that serve a Service or ServiceImport.
// Clients always prefer endpoints in their own cluster; when too few of
// those are healthy they move to the clusters of the first priority entry,
// then the next, and so on. Clusters no entry selects come last. When
// several FailoverPolicies name the same target the oldest wins and the
// others report Accepted=False with reason Conflicted.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,shortName=fp,categories=causeway
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Kind",type=string,JSONPath=`.spec.targetRef.kind`
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.targetRef.name`
// +kubebuilder:printcolumn:name="Failback",type=string,JSONPath=`.spec.failback.mode`,priority=1
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type FailoverPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the target and the order in which its clusters are used.
	// +required
	Spec FailoverPolicySpec `json:"spec"`

	// Status reports whether the policy is in effect.
	// +optional
	Status FailoverPolicyStatus `json:"status,omitempty"`
}

// FailoverPolicySpec is the target of a FailoverPolicy, the priority order
// of its clusters, when to fail over and how to fail back.
type FailoverPolicySpec struct {
	// TargetRef is the Service or ServiceImport, in this namespace, whose
	// endpoints the policy orders.
	// +required
	TargetRef PolicyTargetReference `json:"targetRef"`

	// Priorities lists groups of clusters in the order they are used after
	// the client's own cluster. The first entry that selects a cluster
	// decides its priority.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Priorities []FailoverPriority `json:"priorities"`

	// FailoverThreshold says when a priority level is too unhealthy to keep
	// all of its traffic.
	// +optional
	FailoverThreshold *FailoverThreshold `json:"failoverThreshold,omitempty"`

	// Failback says how traffic returns to a higher priority once it is
	// healthy again. The default is Automatic, without delay.
	// +optional
	Failback *Failback `json:"failback,omitempty"`
}

// FailoverPriority selects clusters by name, region and zone. A cluster is
// selected when it matches every field that is set: its name is one of
// clusters, its region equals region and its zone equals zone. At least one
// field must be set.
// +kubebuilder:validation:XValidation:rule=`has(self.clusters) || has(self.region) || has(self.zone)`,message=`each priority must select clusters by at least one of clusters, region or zone`
type FailoverPriority struct {
	// Clusters are member cluster names (MemberCluster names on the hub).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	Clusters []ClusterName `json:"clusters,omitempty"`

	// Region selects clusters whose MemberCluster spec.region equals it.
	// +optional
	Region LocalityName `json:"region,omitempty"`

	// Zone selects clusters whose MemberCluster spec.zone equals it.
	// +optional
	Zone LocalityName `json:"zone,omitempty"`
}

// FailoverThreshold says when a priority level is too unhealthy.
type FailoverThreshold struct {
	// MinHealthyPercent is the share of a priority level's endpoints, in
	// percent (0 to 100), that must be healthy for it to keep all of its
	// traffic. Below it, traffic spills to the next priority in proportion
	// to the shortfall; at 0 traffic moves only when no endpoint is healthy.
	// +optional
	// +kubebuilder:default=70
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MinHealthyPercent *int32 `json:"minHealthyPercent,omitempty"`
}

// FailbackMode is how traffic returns to a recovered priority level.
// +kubebuilder:validation:Enum=Automatic;Manual
type FailbackMode string

const (
	// FailbackAutomatic moves traffic back as soon as (or delay after) the
	// higher priority is healthy again.
	FailbackAutomatic FailbackMode = "Automatic"

	// FailbackManual keeps traffic where it failed over to until an operator
	// changes the policy (any update of the spec resets the failover).
	FailbackManual FailbackMode = "Manual"
)

// Failback is how traffic returns to a higher priority once it is healthy
// again.
// +kubebuilder:validation:XValidation:rule=`!has(self.delay) || self.mode == 'Automatic'`,message=`failback delay is only allowed when mode is Automatic`
type Failback struct {
	// Mode is Automatic (the default) or Manual.
	// +optional
	// +kubebuilder:default=Automatic
	Mode FailbackMode `json:"mode,omitempty"`

	// Delay is how long a recovered priority must stay healthy before
	// traffic moves back to it, for example "30s"; it avoids flapping.
	// Only with mode Automatic.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule=`self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$')`,message=`failback delay must be a duration such as '30s' or '5m'`
	Delay *metav1.Duration `json:"delay,omitempty"`
}

// FailoverPolicyStatus reports whether a FailoverPolicy is in effect.
type FailoverPolicyStatus struct {
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

// FailoverPolicyList is a list of FailoverPolicies.
// +kubebuilder:object:root=true
type FailoverPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	// Items are the FailoverPolicies.
	Items []FailoverPolicy `json:"items"`
}
