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

// MeshConfigName is the name of the one MeshConfig a cluster may hold.
const MeshConfigName = "default"

// Condition types of a MeshConfig.
const (
	// MeshConfigReady summarises the MeshConfig: True when every component
	// in the cluster runs with the current generation of the settings.
	MeshConfigReady = ConditionTypeReady
)

// MeshConfig holds mesh-wide settings: the trust domain of workload
// identities, the mTLS mode, the ClusterSetIP range and the lifetime of
// workload certificates. It is a singleton: the only MeshConfig a cluster
// accepts is named "default". The trust domain must be the same in every
// cluster of the cluster set, since certificates from another trust domain
// are rejected.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=meshcfg,categories=causeway
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Trust Domain",type=string,JSONPath=`.spec.trustDomain`
// +kubebuilder:printcolumn:name="mTLS",type=string,JSONPath=`.spec.mtls.mode`
// +kubebuilder:printcolumn:name="ClusterSet IPs",type=string,JSONPath=`.spec.clusterSetIPRange`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule=`self.metadata.name == 'default'`,message=`MeshConfig is a singleton: its name must be 'default'`
type MeshConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the mesh-wide settings.
	// +required
	Spec MeshConfigSpec `json:"spec"`

	// Status reports whether the settings are in effect.
	// +optional
	Status MeshConfigStatus `json:"status,omitempty"`
}

// MeshConfigSpec is the mesh-wide settings.
type MeshConfigSpec struct {
	// TrustDomain is the SPIFFE trust domain of every workload and gateway
	// identity, for example "cluster.local" or "mesh.example.com": workloads
	// are "spiffe://<trustDomain>/ns/<namespace>/sa/<service-account>".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule=`self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')`,message=`trustDomain must be a lowercase DNS name such as 'cluster.local' or 'mesh.example.com'`
	TrustDomain string `json:"trustDomain"`

	// MTLS is how workloads accept connections.
	// +optional
	// +kubebuilder:default={}
	MTLS *MeshMTLS `json:"mtls,omitempty"`

	// ClusterSetIPRange is the CIDR that ServiceImports' ClusterSetIPs are
	// allocated from, for example "240.0.0.0/16". It must not overlap any
	// cluster's pod or service CIDR. When unset, each agent uses its own
	// configured range.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule=`isCIDR(self)`,message=`clusterSetIPRange must be a CIDR such as '240.0.0.0/16' or 'fd00:10:96::/112'`
	// +kubebuilder:validation:XValidation:rule=`!isCIDR(self) || cidr(self) == cidr(self).masked()`,message=`clusterSetIPRange must have no host bits set: write the network address, for example '240.0.0.0/16' rather than '240.0.1.0/16'`
	ClusterSetIPRange string `json:"clusterSetIPRange,omitempty"`

	// WorkloadCertTTL is the lifetime of the workload certificates agents
	// sign, from 10m to 2160h (90 days); the default is "24h". Agents rotate
	// certificates well before they expire.
	// +optional
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule=`self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$')`,message=`workloadCertTTL must be a duration such as '1h' or '24h'`
	// +kubebuilder:validation:XValidation:rule=`!self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || (duration(self) >= duration('10m') && duration(self) <= duration('2160h'))`,message=`workloadCertTTL must be between 10m and 2160h (90 days)`
	WorkloadCertTTL *metav1.Duration `json:"workloadCertTTL,omitempty"`
}

// MTLSMode is how workloads accept connections.
// +kubebuilder:validation:Enum=STRICT;PERMISSIVE
type MTLSMode string

const (
	// MTLSStrict accepts only mutual-TLS connections from workloads of the
	// mesh's trust domain.
	MTLSStrict MTLSMode = "STRICT"

	// MTLSPermissive also accepts plaintext connections, for migrating
	// clients into the mesh. Never across clusters: cluster links are always
	// mutual TLS.
	MTLSPermissive MTLSMode = "PERMISSIVE"
)

// MeshMTLS is the mesh's mutual-TLS settings.
type MeshMTLS struct {
	// Mode is STRICT (the default) or PERMISSIVE.
	// +optional
	// +kubebuilder:default=STRICT
	Mode MTLSMode `json:"mode,omitempty"`
}

// MeshConfigStatus reports whether a MeshConfig is in effect.
type MeshConfigStatus struct {
	// ObservedGeneration is the metadata.generation the conditions were
	// computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions hold the summarising Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// MeshConfigList is a list of MeshConfigs (at most one, named "default").
// +kubebuilder:object:root=true
type MeshConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	// Items are the MeshConfigs.
	Items []MeshConfig `json:"items"`
}
