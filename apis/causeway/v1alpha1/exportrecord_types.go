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
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Well-known names of the cluster set's plumbing.
const (
	// SystemNamespace holds Causeway's own objects: on the hub, the
	// GlobalServices; in a member, the agent's hub credentials.
	SystemNamespace = "causeway-system"

	// MemberNamespacePrefix prefixes each member's namespace on the hub:
	// causeway-member-<cluster>. A member's agent may write only there.
	MemberNamespacePrefix = "causeway-member-"

	// HubCredentialsSecret is the Secret in a member's SystemNamespace that
	// holds the agent's kubeconfig for the hub (key "kubeconfig").
	HubCredentialsSecret = "causeway-hub"

	// HubCredentialsKey is the key of the kubeconfig in HubCredentialsSecret.
	HubCredentialsKey = "kubeconfig"

	// AgentLeaseName is the coordination.k8s.io Lease in a member's hub
	// namespace that the agent renews to show it is alive.
	AgentLeaseName = "causeway-agent"

	// AgentServiceAccount is the hub ServiceAccount, in the member's hub
	// namespace, whose token the member's agent uses.
	AgentServiceAccount = "causeway-agent"

	// LabelCluster names the member cluster an object on the hub belongs to.
	LabelCluster = "causeway.dev/cluster"

	// AnnotationClusterUID records the UID of a member's kube-system
	// namespace on its MemberCluster, and the hub's on the member's
	// credentials Secret, so a cluster cannot be joined twice under two
	// names nor to two hubs.
	AnnotationClusterUID = "causeway.dev/cluster-uid"

	// AnnotationHubUID records, on a member's credentials Secret, the UID of
	// the hub's kube-system namespace.
	AnnotationHubUID = "causeway.dev/hub-uid"

	// AnnotationNamespaces, on the agent's Lease, lists the namespaces that
	// exist in the member (comma-separated, sorted): by namespace sameness,
	// the member imports exactly the services of those namespaces.
	AnnotationNamespaces = "causeway.dev/namespaces"

	// AnnotationAgentVersion, on the agent's Lease, is the agent's version.
	AnnotationAgentVersion = "causeway.dev/agent-version"

	// ClusterSetReaderRole is the Role in the hub's SystemNamespace that
	// lets members read GlobalServices.
	ClusterSetReaderRole = "causeway-member-reader"

	// ManagedByAgent is the endpointslice.kubernetes.io/managed-by value of
	// the EndpointSlices the agent makes for imports.
	ManagedByAgent = "agent.causeway.dev"
)

// MemberNamespace returns the hub namespace of the named member.
func MemberNamespace(cluster string) string { return MemberNamespacePrefix + cluster }

// ServiceKeyName is the object name used on the hub for the service
// namespace/name: "<namespace>.<name>". Both parts are DNS labels, so the
// result is a valid DNS subdomain and never ambiguous.
func ServiceKeyName(namespace, name string) string { return namespace + "." + name }

// ExportRecord is what a member publishes to the hub about one of its
// ServiceExports: the exported Service's properties and its ready
// endpoints. It lives in the member's hub namespace, named
// "<namespace>.<name>" after the service; only that member's agent writes
// its spec, and only the hub writes its status.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=exrec,categories=causeway
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Cluster",type=string,JSONPath=`.spec.cluster`
// +kubebuilder:printcolumn:name="Service",type=string,JSONPath=`.spec.service.name`
// +kubebuilder:printcolumn:name="Namespace",type=string,JSONPath=`.spec.service.namespace`
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Conflict",type=string,JSONPath=`.status.conditions[?(@.type=="Conflict")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ExportRecord struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is written by the member's agent.
	// +required
	Spec ExportRecordSpec `json:"spec"`

	// Status is written by the hub.
	// +optional
	Status ExportRecordStatus `json:"status,omitempty"`
}

// ServiceRef names a Service by namespace and name.
type ServiceRef struct {
	// Namespace of the Service.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`

	// Name of the Service.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
}

// ServiceType is the MCS type of an exported service.
// +kubebuilder:validation:Enum=ClusterSetIP;Headless
type ServiceType string

// The MCS service types.
const (
	ServiceTypeClusterSetIP ServiceType = "ClusterSetIP"
	ServiceTypeHeadless     ServiceType = "Headless"
)

// ExportRecordSpec describes one cluster's export of one Service.
type ExportRecordSpec struct {
	// Cluster is the exporting cluster's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Cluster string `json:"cluster"`

	// Service is the exported Service.
	// +required
	Service ServiceRef `json:"service"`

	// ExportCreationTimestamp is the ServiceExport's creation time: the
	// oldest export's properties win a conflict.
	// +required
	ExportCreationTimestamp metav1.Time `json:"exportCreationTimestamp"`

	// ServiceProperties are the exported Service's properties.
	ServiceProperties `json:",inline"`

	// EndpointSlices are the ready endpoints of the Service in the
	// exporting cluster, grouped as its EndpointSlices group them (by
	// address type and ports).
	// +optional
	// +listType=atomic
	EndpointSlices []ExportedEndpointSlice `json:"endpointSlices,omitempty"`
}

// ServiceProperties are the properties of an exported Service that the MCS
// rules merge across clusters: what an ExportRecord publishes and what a
// GlobalService holds after the merge.
type ServiceProperties struct {
	// Type is Headless for a Service with clusterIP None, ClusterSetIP
	// otherwise.
	// +required
	Type ServiceType `json:"type"`

	// Ports are the Service's ports.
	// +optional
	// +listType=atomic
	Ports []ServicePort `json:"ports,omitempty"`

	// SessionAffinity is the Service's session affinity.
	// +optional
	SessionAffinity corev1.ServiceAffinity `json:"sessionAffinity,omitempty"`

	// SessionAffinityConfig is the Service's session affinity config.
	// +optional
	SessionAffinityConfig *corev1.SessionAffinityConfig `json:"sessionAffinityConfig,omitempty"`

	// InternalTrafficPolicy is the Service's internal traffic policy.
	// +optional
	InternalTrafficPolicy *corev1.ServiceInternalTrafficPolicy `json:"internalTrafficPolicy,omitempty"`

	// TrafficDistribution is the Service's traffic distribution hint.
	// +optional
	TrafficDistribution *string `json:"trafficDistribution,omitempty"`

	// ExportedLabels are the ServiceExport's spec.exportedLabels, to be set
	// on the ServiceImport.
	// +optional
	ExportedLabels map[string]string `json:"exportedLabels,omitempty"`

	// ExportedAnnotations are the ServiceExport's
	// spec.exportedAnnotations, to be set on the ServiceImport.
	// +optional
	ExportedAnnotations map[string]string `json:"exportedAnnotations,omitempty"`
}

// ServicePort is a port of an exported Service, as in an MCS ServiceImport.
type ServicePort struct {
	// Name of the port; may be empty for a single-port Service.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name,omitempty"`

	// Protocol is TCP, UDP or SCTP.
	// +optional
	// +kubebuilder:default=TCP
	Protocol corev1.Protocol `json:"protocol,omitempty"`

	// AppProtocol is the port's application protocol.
	// +optional
	AppProtocol *string `json:"appProtocol,omitempty"`

	// Port is the Service port number.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`
}

// ExportedEndpointSlice is a group of endpoints sharing an address type and
// target ports.
type ExportedEndpointSlice struct {
	// AddressType is IPv4 or IPv6.
	// +required
	AddressType string `json:"addressType"`

	// Ports are the endpoints' target ports, named after the Service ports.
	// +optional
	// +listType=atomic
	Ports []EndpointPort `json:"ports,omitempty"`

	// Endpoints are the ready endpoints.
	// +optional
	// +listType=atomic
	Endpoints []ExportedEndpoint `json:"endpoints,omitempty"`
}

// EndpointPort is a target port of endpoints.
type EndpointPort struct {
	// Name matches a Service port's name.
	// +optional
	Name string `json:"name,omitempty"`

	// Protocol is TCP, UDP or SCTP.
	// +optional
	Protocol corev1.Protocol `json:"protocol,omitempty"`

	// AppProtocol is the port's application protocol.
	// +optional
	AppProtocol *string `json:"appProtocol,omitempty"`

	// Port is the target port number.
	// +required
	Port int32 `json:"port"`
}

// ExportedEndpoint is one ready endpoint.
type ExportedEndpoint struct {
	// Addresses of the endpoint (one for IPv4 or IPv6 slices).
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	Addresses []string `json:"addresses"`

	// Hostname of the endpoint (headless services with a subdomain).
	// +optional
	Hostname string `json:"hostname,omitempty"`

	// Zone of the endpoint's node.
	// +optional
	Zone string `json:"zone,omitempty"`

	// TargetPod is the name of the pod behind the endpoint, if any.
	// +optional
	TargetPod string `json:"targetPod,omitempty"`

	// Tunnel is HBONE when the endpoint's pod accepts HBONE tunnels: its
	// sidecar announced so to the agent, or the pod is labelled
	// causeway.dev/tunnel=hbone. Sidecars in other clusters then run
	// their HBONE session to the pod inside the gateways' link, so the
	// pod authorises the real source identity. Empty: the pod takes
	// plain connections. Readers ignore values they do not know.
	// +optional
	Tunnel EndpointTunnel `json:"tunnel,omitempty"`
}

// EndpointTunnel is how an exported endpoint's pod accepts tunnelled
// connections.
// +kubebuilder:validation:Enum=HBONE
type EndpointTunnel string

// The endpoint tunnels.
const (
	// EndpointTunnelHBONE: the pod's sidecar terminates HBONE (HTTP/2
	// CONNECT over mutual TLS) on port 15008.
	EndpointTunnelHBONE EndpointTunnel = "HBONE"
)

// Condition types of an ExportRecord, set by the hub.
const (
	// ExportRecordConflict mirrors MCS's ServiceExport Conflict condition:
	// True when this export's properties lost to an older export's, with
	// the MCS reasons (PortConflict, TypeConflict, SessionAffinityConflict,
	// SessionAffinityConfigConflict, InternalTrafficPolicyConflict,
	// TrafficDistributionConflict, LabelsConflict, AnnotationsConflict;
	// several are joined with ","), False with reason NoConflicts. As the
	// MCS conformance suite expects, every export of a service whose
	// exports disagree carries Conflict=True, the oldest one included.
	ExportRecordConflict = "Conflict"
)

// ExportRecordStatus is the hub's verdict on a record.
type ExportRecordStatus struct {
	// ObservedGeneration is the generation of the spec the hub has merged.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Conflict.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ExportRecordList is a list of ExportRecords.
//
// +kubebuilder:object:root=true
type ExportRecordList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ExportRecord `json:"items"`
}

// GlobalService is the hub's merged view of one multi-cluster service: the
// properties that won by the MCS rules and the endpoints of every healthy
// exporting cluster. It lives in the hub's SystemNamespace, named
// "<namespace>.<name>"; only the hub writes it, every member reads it and
// realises it as a ServiceImport and EndpointSlices.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=gsvc,categories=causeway
// +kubebuilder:printcolumn:name="Service",type=string,JSONPath=`.spec.service.name`
// +kubebuilder:printcolumn:name="Namespace",type=string,JSONPath=`.spec.service.namespace`
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type GlobalService struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec GlobalServiceSpec `json:"spec"`
}

// GlobalServiceSpec is the merged service.
type GlobalServiceSpec struct {
	// Service is the service's namespace and name, the same in every
	// cluster (namespace sameness).
	// +required
	Service ServiceRef `json:"service"`

	// ServiceProperties are the merged properties: the oldest export's,
	// with the union of the exported ports (where two exports define a port
	// of the same name or protocol and number differently, the oldest
	// export's wins).
	ServiceProperties `json:",inline"`

	// Clusters are the exporting clusters, sorted by name, each with its
	// ready endpoints. A cluster whose agent stopped renewing its lease is
	// listed with Withdrawn set and no endpoints.
	// +optional
	// +listType=map
	// +listMapKey=name
	Clusters []GlobalServiceCluster `json:"clusters,omitempty"`
}

// GlobalServiceCluster is one exporting cluster of a GlobalService.
type GlobalServiceCluster struct {
	// Name of the cluster.
	// +required
	Name string `json:"name"`

	// Region and Zone of the cluster, from its MemberCluster.
	// +optional
	Region string `json:"region,omitempty"`
	// +optional
	Zone string `json:"zone,omitempty"`

	// Withdrawn is true when the cluster's endpoints have been withdrawn
	// because its agent stopped renewing its lease.
	// +optional
	Withdrawn bool `json:"withdrawn,omitempty"`

	// EndpointSlices are the cluster's ready endpoints.
	// +optional
	// +listType=atomic
	EndpointSlices []ExportedEndpointSlice `json:"endpointSlices,omitempty"`
}

// GlobalServiceList is a list of GlobalServices.
//
// +kubebuilder:object:root=true
type GlobalServiceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []GlobalService `json:"items"`
}
