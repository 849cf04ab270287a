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

// Package linkplan decides which east-west gateways open cluster links to
// which: the link plan. The hub computes it from the MemberClusters
// (Compute, a pure function, or ComputeFor one member) and writes each member's part into that
// member's hub namespace as the ConfigMap ConfigMapName, key ConfigMapKey,
// holding the JSON of a Plan:
//
//	{"cluster":"b","peers":[
//	  {"cluster":"a","role":"dial","addresses":["10.255.1.2:15443"],"transport":"QUIC"},
//	  {"cluster":"c","role":"accept","transport":"TCP"}]}
//
// The format (Plan, Parse, Validate) is internal/linkplan's, re-exported
// here: the member's agent, which reads the plan and gives its gateway
// one xDS cluster per peer (controllers/xds/translate), may not import
// federation/.
//
// # Rules
//
// Every pair of members has at most one link, so that both ends agree on
// who dials and there is never a second connection to reconcile:
//
//   - both have spec.gateway: the one whose name sorts first dials the
//     other;
//   - only one has it: the other dials it (a cluster behind NAT can still
//     reach, and be reached through, the cluster set);
//   - neither: no link.
//
// A dial entry lists the accepting member's addresses, normalised to
// host:port (a bare IP gets DefaultGatewayPort, IPv6 in brackets), in
// its order of preference, without duplicates, and its transport
// (spec.gateway.transport, QUIC when unset). An accept entry carries no
// addresses but the same transport, the accepting member's own: every
// link has one transport, and both ends' entries say it. Peers are sorted
// by cluster name.
//
// # Design trade-offs
//
//   - The plan is decided centrally, from the MemberClusters alone: no
//     member needs to know the others' specs, and members may read only
//     their own hub namespace.
//   - Addresses that do not parse (the CRD admits none) are dropped; a
//     member left with no usable address counts as one without a gateway.
//   - Members being deleted take part in no link. Paused members take part
//     like the others: pausing freezes what the hub writes for the paused
//     member (its plan is left as last written), not its links, which
//     carry traffic that maintenance should not cut. A change to a paused
//     member's gateway therefore still reaches its peers' plans.
//   - Members connect out to the hub, not to each other, to learn the
//     plan; the links themselves are authenticated by the gateways' SPIFFE
//     IDs, so a plan can say who dials whom but cannot let anyone in.
package linkplan
