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

package linkapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// Where the agent publishes link status on the hub.
const (
	// StatusConfigMap is the ConfigMap in the member's hub namespace
	// (causeway-member-<member>) that holds the member's link status.
	StatusConfigMap = "causeway-link-status"
	// StatusKey is the ConfigMap key whose value is a Status in JSON.
	StatusKey = "status.json"
	// LinksPath is the path of a gateway's link report on its admin port.
	LinksPath = "/links"
)

// Link states a gateway reports.
const (
	// StateUp: the link's connection is established and answers keepalives.
	StateUp = "up"
	// StateDown: there is no connection; the dialer is backing off, or the
	// acceptor has no connection from the peer.
	StateDown = "down"
	// StateConnecting: a dial is in progress.
	StateConnecting = "connecting"
)

// Link roles, as in the link plan.
const (
	RoleDial   = "dial"
	RoleAccept = "accept"
)

// Link transports a gateway reports (lower case; the link plan's
// "QUIC"/"TCP" name the preferred transport, these the one in use).
const (
	TransportQUIC = "quic"
	TransportTCP  = "tcp"
)

// MaxLinks bounds the links in one report. A cluster set has at most a few
// dozen members, so a gateway with more links than this is broken.
const MaxLinks = 1000

// GatewayLinks is the body of a gateway's GET /links.
type GatewayLinks struct {
	// Cluster is the gateway's own member cluster.
	Cluster string `json:"cluster"`
	// Links are the gateway's links, one per peer cluster and role.
	Links []Link `json:"links"`
}

// Link is one cluster link as one gateway sees it.
type Link struct {
	// Peer is the cluster at the other end.
	Peer string `json:"peer"`
	// Role is RoleDial when this gateway dials the peer, RoleAccept when
	// the peer dials it.
	Role string `json:"role"`
	// State is StateUp, StateDown or StateConnecting.
	State string `json:"state"`
	// Transport is TransportQUIC or TransportTCP while a connection exists
	// (or was last used); empty before the first connection.
	Transport string `json:"transport,omitempty"`
	// RTTSeconds is the latest smoothed round-trip time, in seconds; 0 when
	// not measured.
	RTTSeconds float64 `json:"rttSeconds"`
	// OpenStreams is the number of streams open on the link now.
	OpenStreams int64 `json:"openStreams"`
	// BytesSent and BytesReceived count payload bytes since the gateway
	// started (over every connection of the link).
	BytesSent     uint64 `json:"bytesSent"`
	BytesReceived uint64 `json:"bytesReceived"`
	// LastError is the last connection error, "" if none.
	LastError string `json:"lastError"`
	// Since is when the link entered State; zero if unknown.
	Since time.Time `json:"since,omitzero"`
}

// Status is the link status of one member cluster, as its agent publishes
// it on the hub (StatusConfigMap, key StatusKey).
type Status struct {
	// Cluster is the member cluster.
	Cluster string `json:"cluster"`
	// Updated is when the agent wrote the report. The agent rewrites it at
	// least every 30 s while it knows a gateway, so a reader can tell an
	// old report (agent or hub connection gone) from a current one.
	Updated time.Time `json:"updated"`
	// Gateways are the member's gateways, sorted by Node.
	Gateways []GatewayReport `json:"gateways"`
}

// GatewayReport is what the agent learnt from one gateway.
type GatewayReport struct {
	// Node identifies the gateway: its xDS node ID, or its admin address
	// for a statically configured gateway.
	Node string `json:"node"`
	// Admin is the admin address (host:port) the agent asked.
	Admin string `json:"admin,omitempty"`
	// Error says why the gateway's links are unknown: it could not be
	// reached, answered with an error, or its answer was malformed. Links
	// is empty then.
	Error string `json:"error,omitempty"`
	// Links are the gateway's links, sorted by peer and role.
	Links []Link `json:"links"`
}

// DecodeGatewayLinks decodes and validates a GET /links body.
func DecodeGatewayLinks(b []byte) (*GatewayLinks, error) {
	var gl GatewayLinks
	if err := json.Unmarshal(b, &gl); err != nil {
		return nil, fmt.Errorf("decode link report: %w", err)
	}
	if gl.Cluster == "" {
		return nil, errors.New("link report: no cluster")
	}
	if err := ValidateLinks(gl.Links); err != nil {
		return nil, fmt.Errorf("link report of cluster %s: %w", gl.Cluster, err)
	}
	return &gl, nil
}

// DecodeStatus decodes and validates a Status (the StatusKey value).
func DecodeStatus(b []byte) (*Status, error) {
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("decode link status: %w", err)
	}
	if st.Cluster == "" {
		return nil, errors.New("link status: no cluster")
	}
	if st.Updated.IsZero() {
		return nil, fmt.Errorf("link status of cluster %s: no updated time", st.Cluster)
	}
	nodes := make(map[string]bool, len(st.Gateways))
	for i, g := range st.Gateways {
		if g.Node == "" {
			return nil, fmt.Errorf("link status of cluster %s: gateway %d: no node", st.Cluster, i)
		}
		if nodes[g.Node] {
			return nil, fmt.Errorf("link status of cluster %s: gateway %s listed twice", st.Cluster, g.Node)
		}
		nodes[g.Node] = true
		if err := ValidateLinks(g.Links); err != nil {
			return nil, fmt.Errorf("link status of cluster %s: gateway %s: %w", st.Cluster, g.Node, err)
		}
	}
	return &st, nil
}

// ValidateLinks checks every link's fields and that no peer and role
// appears twice.
func ValidateLinks(links []Link) error {
	if len(links) > MaxLinks {
		return fmt.Errorf("%d links, more than %d", len(links), MaxLinks)
	}
	type key struct{ peer, role string }
	seen := make(map[key]bool, len(links))
	for i, l := range links {
		if err := l.Validate(); err != nil {
			return fmt.Errorf("link %d: %w", i, err)
		}
		k := key{l.Peer, l.Role}
		if seen[k] {
			return fmt.Errorf("link %d: peer %s with role %s listed twice", i, l.Peer, l.Role)
		}
		seen[k] = true
	}
	return nil
}

// Validate checks one link's fields.
func (l *Link) Validate() error {
	if l.Peer == "" {
		return errors.New("no peer")
	}
	switch l.Role {
	case RoleDial, RoleAccept:
	default:
		return fmt.Errorf("peer %s: role %q is neither %q nor %q", l.Peer, l.Role, RoleDial, RoleAccept)
	}
	switch l.State {
	case StateUp, StateDown, StateConnecting:
	default:
		return fmt.Errorf("peer %s: unknown state %q (want %s, %s or %s)", l.Peer, l.State, StateUp, StateDown, StateConnecting)
	}
	switch l.Transport {
	case "", TransportQUIC, TransportTCP:
	default:
		return fmt.Errorf("peer %s: unknown transport %q (want %s or %s)", l.Peer, l.Transport, TransportQUIC, TransportTCP)
	}
	if math.IsNaN(l.RTTSeconds) || math.IsInf(l.RTTSeconds, 0) || l.RTTSeconds < 0 {
		return fmt.Errorf("peer %s: RTT %v s is not a duration", l.Peer, l.RTTSeconds)
	}
	if l.OpenStreams < 0 {
		return fmt.Errorf("peer %s: %d open streams", l.Peer, l.OpenStreams)
	}
	return nil
}

// RTT returns RTTSeconds as a duration, capped at an hour (a larger value
// is not a round trip anyone waits for, and the cap keeps the conversion
// in range).
func (l *Link) RTT() time.Duration {
	return time.Duration(min(l.RTTSeconds, time.Hour.Seconds()) * float64(time.Second))
}
