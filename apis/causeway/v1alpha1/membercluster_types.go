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
	"net"
	"net/netip"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types of a MemberCluster.
const (
	// MemberClusterJoined is True once the cluster's agent has completed the
	// join handshake with the hub: it holds credentials for its namespace on
	// the hub and an intermediate CA issued from the trust root.
	MemberClusterJoined = "Joined"

	// MemberClusterHealthy is True while the agent renews its lease on the
	// hub; it turns False when the lease has not been renewed within the
	// grace period, after which the cluster's endpoints are withdrawn
	// everywhere.
	MemberClusterHealthy = "Healthy"

	// MemberClusterReady summarises the cluster: True when it is Joined,
	// Healthy and not paused, so its exports are served across the cluster set.
	MemberClusterReady = ConditionTypeReady
)

// Reasons specific to MemberCluster conditions.
const (
	// ReasonLeaseExpired means the agent has not renewed its lease within
	// the grace period.
	ReasonLeaseExpired = "LeaseExpired"

	// ReasonPaused means spec.paused is true.
	ReasonPaused = "Paused"
)

// DefaultGatewayPort is the port a cluster link connects to when a gateway
// address is a bare IP address without a port.
const DefaultGatewayPort int32 = 15443

// MemberCluster is one Kubernetes cluster joined to the cluster set. It lives
// on the hub; its name is the cluster's name across the cluster set (the
// value of the cluster's cluster.clusterset.k8s.io ClusterProperty), so it
// must be a DNS-1123 label. `causeway join` creates it; the hub keeps its
// status up to date from the agent's lease and reports.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=mc,categories=causeway
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Region",type=string,JSONPath=`.spec.region`
// +kubebuilder:printcolumn:name="Zone",type=string,JSONPath=`.spec.zone`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Healthy",type=string,JSONPath=`.status.conditions[?(@.type=="Healthy")].status`
// +kubebuilder:printcolumn:name="Exports",type=integer,JSONPath=`.status.exportCount`
// +kubebuilder:printcolumn:name="Imports",type=integer,JSONPath=`.status.importCount`
// +kubebuilder:printcolumn:name="Paused",type=boolean,JSONPath=`.spec.paused`,priority=1
// +kubebuilder:printcolumn:name="Agent",type=string,JSONPath=`.status.agentVersion`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule=`size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')`,message=`metadata.name is the cluster name and must be a DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit`
type MemberCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the cluster's locality and how other clusters reach it.
	// +required
	Spec MemberClusterSpec `json:"spec"`

	// Status is the cluster's state as observed by the hub.
	// +optional
	Status MemberClusterStatus `json:"status,omitempty"`
}

// MemberClusterSpec describes a member cluster's locality and its east-west
// gateway.
type MemberClusterSpec struct {
	// Region is the region the cluster runs in, for example "eu-west-1".
	// Proxies prefer endpoints in their own region, and FailoverPolicy
	// priorities can select clusters by region. Optional: a cluster without
	// a region matches no region selector.
	// +optional
	Region LocalityName `json:"region,omitempty"`

	// Zone is the zone within the region, for example "eu-west-1a". Leave it
	// unset for a cluster that spans zones.
	// +optional
	Zone LocalityName `json:"zone,omitempty"`

	// Gateway says how other clusters reach this cluster's east-west
	// gateway. Leave it unset when the gateway cannot accept connections
	// (behind NAT, for example): such a cluster only dials out to the others.
	// +optional
	Gateway *MemberClusterGateway `json:"gateway,omitempty"`

	// Paused, when true, freezes the cluster in the cluster set: the hub
	// keeps its last published exports and links as they are and applies no
	// change from or to it until paused is false again. Use it for
	// maintenance on the cluster or its agent.
	// +optional
	Paused bool `json:"paused,omitempty"`
}

// GatewayTransport is the protocol of cluster links.
// +kubebuilder:validation:Enum=QUIC;TCP
type GatewayTransport string

const (
	// GatewayTransportQUIC carries cluster links over QUIC (UDP) with mutual
	// TLS, one stream per connection.
	GatewayTransportQUIC GatewayTransport = "QUIC"

	// GatewayTransportTCP carries cluster links over HTTP/2 CONNECT on
	// TCP+TLS, for networks that block UDP.
	GatewayTransportTCP GatewayTransport = "TCP"
)

// MemberClusterGateway is the reachable side of a cluster's east-west
// gateway.
type MemberClusterGateway struct {
	// Addresses are the addresses other clusters dial to open a cluster link
	// to this cluster, tried in order. Each is "host:port" (host a DNS name,
	// an IPv4 address or an IPv6 address in brackets) or a bare IP address,
	// which means port 15443.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	Addresses []GatewayAddress `json:"addresses"`

	// Transport is the protocol of links to this gateway: QUIC (the
	// default) or TCP for networks that block UDP.
	// +optional
	// +kubebuilder:default=QUIC
	Transport GatewayTransport `json:"transport,omitempty"`
}

// GatewayAddress is "host:port" or a bare IP address (see
// MemberClusterGateway.Addresses).
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=261
// +kubebuilder:validation:XValidation:rule=`isIP(self) || self.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*|[[][0-9a-fA-F:.]+[]]):[0-9]{1,5}$')`,message=`gateway addresses must be an IP address or host:port, where host is a lowercase DNS name, an IPv4 address or an IPv6 address in brackets, e.g. 'gw.example.com:15443' or '[2001:db8::1]:15443'`
// +kubebuilder:validation:XValidation:rule=`isIP(self) || !self.matches('^[0-9.]+:[0-9]+$') || isIP(self.substring(0, self.lastIndexOf(':')))`,message=`the host of a gateway address is not a valid IPv4 address`
// +kubebuilder:validation:XValidation:rule=`!self.matches('^[[].+[]]:[0-9]+$') || (isIP(self.substring(1, self.lastIndexOf(']'))) && ip(self.substring(1, self.lastIndexOf(']'))).family() == 6)`,message=`the bracketed host of a gateway address is not a valid IPv6 address`
// +kubebuilder:validation:XValidation:rule=`isIP(self) || !self.matches(':[0-9]{1,5}$') || (int(self.substring(self.lastIndexOf(':') + 1)) >= 1 && int(self.substring(self.lastIndexOf(':') + 1)) <= 65535)`,message=`the port of a gateway address must be between 1 and 65535`
type GatewayAddress string

// HostPort splits the address into the host to dial and its port; a bare
// IP address gets defaultPort. Every address the API server accepts splits
// without error.
func (a GatewayAddress) HostPort(defaultPort int32) (host string, port int32, err error) {
	s := string(a)
	if ip, err := netip.ParseAddr(s); err == nil && ip.Zone() == "" {
		return s, defaultPort, nil
	}
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("gateway address %q: %w", s, err)
	}
	if host == "" {
		return "", 0, fmt.Errorf("gateway address %q: empty host", s)
	}
	p, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || p == 0 || !isDigits(portStr) {
		return "", 0, fmt.Errorf("gateway address %q: port must be between 1 and 65535", s)
	}
	return host, int32(p), nil
}

// MemberClusterStatus is the state of a member cluster as observed by the
// hub.
type MemberClusterStatus struct {
	// ObservedGeneration is the metadata.generation the conditions were
	// computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions are Joined, Healthy and the summarising Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// ExportCount is the number of services this cluster exports to the
	// cluster set.
	// +optional
	// +kubebuilder:validation:Minimum=0
	ExportCount int32 `json:"exportCount,omitempty"`

	// ImportCount is the number of services this cluster imports from the
	// cluster set.
	// +optional
	// +kubebuilder:validation:Minimum=0
	ImportCount int32 `json:"importCount,omitempty"`

	// AgentVersion is the version of the causeway-agent running in the
	// cluster, as it reported it.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	AgentVersion string `json:"agentVersion,omitempty"`
}

// MemberClusterList is a list of MemberClusters.
// +kubebuilder:object:root=true
type MemberClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	// Items are the MemberClusters.
	Items []MemberCluster `json:"items"`
}
