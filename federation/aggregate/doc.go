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

// Package aggregate is the hub's "decide" step for multi-cluster services:
// it merges the ExportRecords that member clusters publish for one Service
// into that service's GlobalService spec, and gives each export its verdict
// for the MCS Conflict condition, by the rules of KEP-1645
// (https://github.com/kubernetes/enhancements/tree/master/keps/sig-multicluster/1645-multi-cluster-services-api#constraints-and-conflict-resolution)
// as the MCS conformance suite checks them.
//
// # Usage
//
// The hub gathers every ExportRecord spec of one service and the state of
// the member clusters, calls Merge, and then acts: it writes the
// GlobalService only when EqualSpec says the result differs from what is
// stored, and sets each record's Conflict condition from its verdict
// (Reasons joined with ","; True with the joined reasons when Reasons is
// not empty, False with reason NoConflicts otherwise).
//
//	spec, verdicts, ok := aggregate.Merge(records, members)
//	if !ok {
//		// no member exports the service any more: delete the GlobalService
//	}
//
// # Rules
//
// Exports are ranked by precedence: the oldest ExportCreationTimestamp
// first, ties broken by cluster name. The oldest export's type, session
// affinity and its config, internal traffic policy, traffic distribution,
// exported labels and exported annotations become the service's. The ports
// are the union of all exports' ports; a port whose name, or whose
// (protocol, port) pair, is already taken by a port of a higher-ranked
// export is dropped.
//
// When any export disagrees with the oldest in a property, or the exports'
// port sets are not all the same, every export of the service gets the
// conflict reason, the oldest one included: the conformance suite requires
// Conflict=True on the winner as well as on the loser. Reasons come in this
// fixed order, the order the ExportRecord API documents them in:
//
//	PortConflict, TypeConflict, SessionAffinityConflict,
//	SessionAffinityConfigConflict, InternalTrafficPolicyConflict,
//	TrafficDistributionConflict, LabelsConflict, AnnotationsConflict
//
// Values are compared after the defaulting the API server would apply, so
// an agent that copies a Service field verbatim and one that leaves it
// unset agree: session affinity "" is None, internal traffic policy unset
// is Cluster, traffic distribution unset is "", a nil map is an empty map,
// protocol "" is TCP, appProtocol unset is "", and a session affinity
// config without a timeout has the Kubernetes default of 10800 seconds. A
// session affinity config is compared only when both exports use ClientIP
// affinity: a config that is not in effect cannot conflict, and a
// difference in the affinity itself is already SessionAffinityConflict.
//
// The merged spec carries the oldest export's values as given, not
// normalised (the conformance suite compares the ServiceImport's
// SessionAffinityConfig with the Service's verbatim), except that a port's
// protocol is always explicit.
//
// # Design trade-offs
//
// Merge is a pure, level-triggered function: it recomputes the whole
// service from all its records every time, so a missed event heals on the
// next reconcile, and it has no clock, client or logger, so it can be
// tested exhaustively and fuzzed. It never aliases its input: the result
// shares no pointer, slice or map with the records, so the caller may keep
// the records in an informer cache.
//
// The result depends only on the set of records, never on their order, so
// the hub does not rewrite a GlobalService because a list came back in a
// different order. Two records of one cluster should not exist; if they
// do, the higher-ranked one is merged and the other ignored, and if they
// even share a timestamp their canonical JSON decides.
//
// A cluster whose agent stopped renewing its lease (Member.Healthy false)
// still takes part in precedence and conflicts, because its ServiceExport
// still exists and may come back unchanged; its endpoints are withdrawn.
// Records of clusters that are not members are ignored entirely: they are
// leftovers of a cluster that left the cluster set.
package aggregate
