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

// Well-known ClusterProperty names (KEP-2149).
const (
	// ClusterIDPropertyName is the name of the ClusterProperty whose value is
	// the cluster's ID: unique within its cluster set and unchanged for as
	// long as the cluster is a member.
	ClusterIDPropertyName = "cluster.clusterset.k8s.io"

	// ClusterSetPropertyName is the name of the ClusterProperty whose value
	// names the cluster set the cluster belongs to. It exists exactly as
	// long as the cluster is a member.
	ClusterSetPropertyName = "clusterset.k8s.io"
)

// ClusterProperty is one property of the cluster it is stored in: the name
// is the property, spec.value its value. Two names are well known (KEP-2149):
// cluster.clusterset.k8s.io holds the cluster's ID within its cluster set
// (a DNS-1123 label, at most 63 characters) and clusterset.k8s.io the name
// of that cluster set. Tools may store other properties under names of
// their own.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster
// +kubebuilder:metadata:annotations="api-approved.kubernetes.io=https://github.com/kubernetes/enhancements/pull/3084"
// +kubebuilder:printcolumn:name="value",type=string,JSONPath=`.spec.value`
// +kubebuilder:printcolumn:name="age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule=`self.metadata.name != 'cluster.clusterset.k8s.io' || (size(self.spec.value) <= 63 && self.spec.value.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))`,fieldPath=`.spec.value`,message=`the value of cluster.clusterset.k8s.io is the cluster ID and must be a DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit`
type ClusterProperty struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec holds the property's value.
	// +required
	Spec ClusterPropertySpec `json:"spec"`
}

// ClusterPropertySpec holds the value of a ClusterProperty.
type ClusterPropertySpec struct {
	// Value is the property's value, 1 to 128000 characters.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128000
	Value string `json:"value"`
}

// ClusterPropertyList is a list of ClusterProperties.
// +kubebuilder:object:root=true
type ClusterPropertyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	// Items are the ClusterProperties.
	Items []ClusterProperty `json:"items"`
}
