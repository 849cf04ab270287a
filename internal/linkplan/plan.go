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

package linkplan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// Where the hub writes a member's plan: the ConfigMap ConfigMapName in
// the member's hub namespace (causewayv1alpha1.MemberNamespace), under the
// key ConfigMapKey.
const (
	ConfigMapName = "causeway-link-plan"
	ConfigMapKey  = "plan.json"
)

// Role is a member's part in a link.
type Role string

// Roles.
const (
	// RoleDial: the member's gateway opens the link to the peer.
	RoleDial Role = xdsconv.LinkRoleDial
	// RoleAccept: the peer's gateway opens the link to the member's.
	RoleAccept Role = xdsconv.LinkRoleAccept
)

// MaxAddresses is the most addresses a dial entry has: the CRD's limit
// on spec.gateway.addresses.
const MaxAddresses = 8

// Plan is one member's links.
type Plan struct {
	// Cluster is the member the plan is for.
	Cluster string `json:"cluster"`
	// Peers are the members it has a link with, sorted by name.
	Peers []Peer `json:"peers"`
}

// Peer is one link of a plan.
type Peer struct {
	// Cluster is the peer member's name.
	Cluster string `json:"cluster"`
	// Role is the plan's member's part: RoleDial or RoleAccept.
	Role Role `json:"role"`
	// Addresses are, for RoleDial, the peer gateway's addresses as
	// host:port, the first preferred; empty for RoleAccept.
	Addresses []string `json:"addresses,omitempty"`
	// Transport is the link's transport, the accepting gateway's:
	// GatewayTransportQUIC (which may fall back to TCP) or
	// GatewayTransportTCP (never QUIC).
	Transport causewayv1alpha1.GatewayTransport `json:"transport,omitempty"`
}

// Peer returns the plan's entry for cluster, if any.
func (p Plan) Peer(cluster string) (Peer, bool) {
	for _, peer := range p.Peers {
		if peer.Cluster == cluster {
			return peer, true
		}
	}
	return Peer{}, false
}

// Marshal returns the plan's JSON, as the hub writes it. Equal plans give
// equal bytes.
func (p Plan) Marshal() ([]byte, error) {
	if p.Peers == nil {
		p.Peers = []Peer{} // "peers":[] rather than null
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("marshal link plan of %s: %w", p.Cluster, err)
	}
	return b, nil
}

// Parse decodes and validates a plan (see Validate). Unknown fields are
// ignored, so a newer hub's plan still reads.
func Parse(data []byte) (Plan, error) {
	var p Plan
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&p); err != nil {
		return Plan{}, fmt.Errorf("decode link plan: %w", err)
	}
	if dec.More() {
		return Plan{}, errors.New("decode link plan: data after the JSON object")
	}
	if err := p.Validate(); err != nil {
		return Plan{}, err
	}
	return p, nil
}

// Validate checks a plan: a cluster name, peers that are other clusters,
// each once, with a known role and transport, and addresses (1 to 8
// normalised host:port) exactly when the role is RoleDial. Every plan
// the hub computes (federation/linkplan.Compute) is valid.
func (p Plan) Validate() error {
	if err := validateName(p.Cluster); err != nil {
		return fmt.Errorf("link plan: cluster: %w", err)
	}
	seen := make(map[string]bool, len(p.Peers))
	for i, peer := range p.Peers {
		if err := peer.validate(p.Cluster); err != nil {
			return fmt.Errorf("link plan of %s: peers[%d]: %w", p.Cluster, i, err)
		}
		if seen[peer.Cluster] {
			return fmt.Errorf("link plan of %s: peers[%d]: cluster %q is listed twice", p.Cluster, i, peer.Cluster)
		}
		seen[peer.Cluster] = true
	}
	return nil
}

func (peer Peer) validate(self string) error {
	if err := validateName(peer.Cluster); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if peer.Cluster == self {
		return fmt.Errorf("cluster %q is the plan's own", peer.Cluster)
	}
	switch peer.Transport {
	case causewayv1alpha1.GatewayTransportQUIC, causewayv1alpha1.GatewayTransportTCP:
	case "":
		if peer.Role == RoleDial {
			return errors.New("a dial entry needs a transport")
		}
	default:
		return fmt.Errorf("transport %q is neither QUIC nor TCP", peer.Transport)
	}
	switch peer.Role {
	case RoleDial:
		if len(peer.Addresses) == 0 || len(peer.Addresses) > MaxAddresses {
			return fmt.Errorf("a dial entry needs 1 to %d addresses, not %d", MaxAddresses, len(peer.Addresses))
		}
		for _, a := range peer.Addresses {
			if _, _, err := SplitAddress(a); err != nil {
				return err
			}
		}
	case RoleAccept:
		if len(peer.Addresses) > 0 {
			return errors.New("an accept entry has no addresses")
		}
	default:
		return fmt.Errorf("role %q is neither %s nor %s", peer.Role, RoleDial, RoleAccept)
	}
	return nil
}

func validateName(name string) error {
	if name == "" {
		return errors.New("empty")
	}
	if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 {
		return fmt.Errorf("%q is not a cluster name: %s", name, strings.Join(msgs, "; "))
	}
	return nil
}

// SplitAddress splits a plan address, a normalised host:port, into its
// host and port. An address that is not in the normal form
// (a bare IP, an IPv6 address without brackets, a port with a sign or
// leading zeros) is an error.
func SplitAddress(addr string) (host string, port uint32, err error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("address %q is not host:port: %w", addr, err)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 || strconv.FormatUint(n, 10) != p {
		return "", 0, fmt.Errorf("address %q: port must be 1-65535", addr)
	}
	if net.JoinHostPort(h, p) != addr {
		return "", 0, fmt.Errorf("address %q is not normalised host:port", addr)
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		if ip.Zone() != "" || ip.String() != h {
			return "", 0, fmt.Errorf("address %q: IP address not in its canonical form, or with a zone", addr)
		}
	} else if msgs := validation.IsDNS1123Subdomain(h); len(msgs) > 0 {
		return "", 0, fmt.Errorf("address %q: host is neither an IP address nor a DNS name: %s", addr, strings.Join(msgs, "; "))
	}
	return h, uint32(n), nil
}
