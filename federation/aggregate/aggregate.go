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

package aggregate

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
)

// Member is what the merge needs to know about a member cluster.
type Member struct {
	// Region and Zone are the cluster's locality, copied to its
	// GlobalServiceCluster.
	Region, Zone string

	// Healthy is false when the cluster's agent stopped renewing its
	// lease: the cluster's endpoints are withdrawn.
	Healthy bool
}

// Conflict is the verdict on one export: Reasons empty means no conflict.
type Conflict struct {
	// Reasons are MCS ServiceExport Conflict reasons (PortConflict,
	// TypeConflict, ...), in the fixed order the package documents.
	Reasons []string

	// Message says, for each reason, which clusters disagree and whose
	// value won; empty when there is no conflict.
	Message string
}

// maxListed bounds how many clusters, keys or port clashes one sentence of
// a Message names, so that a large cluster set cannot push a condition
// message past the API's 32768-character limit.
const maxListed = 5

// Merge merges the exports of ONE service (all records have the same
// Service) by the MCS (KEP-1645) rules the package documents. members maps
// a cluster name to its Member; records of clusters not in members are
// ignored (not merged, no verdict). verdicts holds one Conflict for each
// merged export, by cluster. ok is false when no record remains.
//
// The result is deterministic, independent of the order of records, and
// shares no memory with records, which Merge does not modify.
func Merge(records []v1alpha1.ExportRecordSpec, members map[string]Member) (spec v1alpha1.GlobalServiceSpec, verdicts map[string]Conflict, ok bool) {
	exports := rank(records, members)
	if len(exports) == 0 {
		return v1alpha1.GlobalServiceSpec{}, nil, false
	}
	oldest := exports[0]

	ports, portMessage := mergePorts(exports)
	var reasons, sentences []string
	if portMessage != "" {
		reasons = append(reasons, string(mcsv1beta1.ServiceExportReasonPortConflict))
		sentences = append(sentences, portMessage)
	}
	for _, p := range properties {
		var losers []*v1alpha1.ExportRecordSpec
		for _, e := range exports[1:] {
			if !p.equal(oldest, e) {
				losers = append(losers, e)
			}
		}
		if len(losers) > 0 {
			reasons = append(reasons, string(p.reason))
			sentences = append(sentences, p.describe(oldest, losers))
		}
	}

	// The oldest export's properties (deep-copied: the result never
	// aliases the input), with the union of the ports.
	props := oldest.ServiceProperties.DeepCopy()
	props.Ports = ports
	spec = v1alpha1.GlobalServiceSpec{
		Service:           oldest.Service,
		ServiceProperties: *props,
		Clusters:          make([]v1alpha1.GlobalServiceCluster, 0, len(exports)),
	}
	message := strings.Join(sentences, " ")
	verdicts = make(map[string]Conflict, len(exports))
	for _, e := range exports {
		spec.Clusters = append(spec.Clusters, clusterOf(e, members[e.Cluster]))
		// Each verdict gets its own slice: a caller that edits one must
		// not change the others.
		verdicts[e.Cluster] = Conflict{Reasons: slices.Clone(reasons), Message: message}
	}
	slices.SortFunc(spec.Clusters, func(a, b v1alpha1.GlobalServiceCluster) int {
		return strings.Compare(a.Name, b.Name)
	})
	return spec, verdicts, true
}

// EqualSpec reports whether a and b are semantically equal (nil and empty
// slices and maps are equal), so that the hub writes a GlobalService only
// when the merge changed it.
func EqualSpec(a, b *v1alpha1.GlobalServiceSpec) bool {
	return equality.Semantic.DeepEqual(a, b)
}

// rank returns the records of member clusters in precedence order, one per
// cluster: oldest ExportCreationTimestamp first, then cluster name.
func rank(records []v1alpha1.ExportRecordSpec, members map[string]Member) []*v1alpha1.ExportRecordSpec {
	all := make([]*v1alpha1.ExportRecordSpec, 0, len(records))
	for i := range records {
		if _, known := members[records[i].Cluster]; known {
			all = append(all, &records[i])
		}
	}
	slices.SortFunc(all, comparePrecedence)
	exports := all[:0]
	for i, r := range all {
		// Sorted by cluster within a timestamp, but one cluster's two
		// records may have different timestamps, so look back fully.
		if !slices.ContainsFunc(all[:i], func(o *v1alpha1.ExportRecordSpec) bool { return o.Cluster == r.Cluster }) {
			exports = append(exports, r)
		}
	}
	return exports
}

// comparePrecedence orders records by ExportCreationTimestamp, then by
// cluster name, then, for two records of one cluster with one timestamp
// (which should not exist), by their canonical JSON, so that the order is
// total and Merge does not depend on the order of its input.
func comparePrecedence(a, b *v1alpha1.ExportRecordSpec) int {
	if c := a.ExportCreationTimestamp.Compare(b.ExportCreationTimestamp.Time); c != 0 {
		return c
	}
	if c := strings.Compare(a.Cluster, b.Cluster); c != 0 {
		return c
	}
	return bytes.Compare(canonical(a), canonical(b))
}

// canonical is r's JSON encoding. Encoding a spec cannot fail (it has no
// channels, functions or cyclic pointers); if it ever did, the records
// would compare equal and the first listed would win.
func canonical(r *v1alpha1.ExportRecordSpec) []byte {
	b, err := json.Marshal(r)
	if err != nil {
		return nil
	}
	return b
}

// clusterOf is e's entry in the GlobalService.
func clusterOf(e *v1alpha1.ExportRecordSpec, m Member) v1alpha1.GlobalServiceCluster {
	c := v1alpha1.GlobalServiceCluster{Name: e.Cluster, Region: m.Region, Zone: m.Zone}
	if !m.Healthy {
		c.Withdrawn = true
		return c
	}
	if e.EndpointSlices != nil {
		c.EndpointSlices = make([]v1alpha1.ExportedEndpointSlice, len(e.EndpointSlices))
		for i := range e.EndpointSlices {
			e.EndpointSlices[i].DeepCopyInto(&c.EndpointSlices[i])
		}
	}
	return c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// portKey is a port after defaulting: what two exports must agree on.
type portKey struct {
	name        string
	protocol    corev1.Protocol
	port        int32
	appProtocol string
}

func keyOf(p *v1alpha1.ServicePort) portKey {
	k := portKey{name: p.Name, protocol: p.Protocol, port: p.Port}
	if k.protocol == "" {
		k.protocol = corev1.ProtocolTCP
	}
	if p.AppProtocol != nil {
		k.appProtocol = *p.AppProtocol
	}
	return k
}

func comparePortKeys(a, b portKey) int {
	if c := strings.Compare(a.name, b.name); c != 0 {
		return c
	}
	if c := strings.Compare(string(a.protocol), string(b.protocol)); c != 0 {
		return c
	}
	if c := cmp.Compare(a.port, b.port); c != 0 {
		return c
	}
	return strings.Compare(a.appProtocol, b.appProtocol)
}

// String renders a port's number, protocol and appProtocol, as in
// "42/TCP" or "80/TCP (appProtocol http)".
func (k portKey) String() string {
	s := strconv.Itoa(int(k.port)) + "/" + string(k.protocol)
	if k.appProtocol != "" {
		s += " (appProtocol " + k.appProtocol + ")"
	}
	return s
}

// portSet is the sorted, duplicate-free set of an export's ports.
func portSet(e *v1alpha1.ExportRecordSpec) []portKey {
	set := make([]portKey, len(e.Ports))
	for i := range e.Ports {
		set[i] = keyOf(&e.Ports[i])
	}
	slices.SortFunc(set, comparePortKeys)
	return slices.Compact(set)
}

// accepted is a port of the union and the export it came from.
type accepted struct {
	key  portKey
	from *v1alpha1.ExportRecordSpec
}

// clash is a port dropped from the union because it differs from an
// accepted port with its name or its (protocol, port) pair.
type clash struct {
	key  portKey
	from *v1alpha1.ExportRecordSpec
	with accepted
}

// mergePorts returns the union of the exports' ports, in order of
// acceptance, and, when the exports' port sets are not all identical, the
// PortConflict sentence of the message.
func mergePorts(exports []*v1alpha1.ExportRecordSpec) ([]v1alpha1.ServicePort, string) {
	var (
		union   []accepted
		ports   []v1alpha1.ServicePort
		clashes []clash
	)
	for _, e := range exports {
		for i := range e.Ports {
			k := keyOf(&e.Ports[i])
			j := slices.IndexFunc(union, func(a accepted) bool {
				return a.key.name == k.name || (a.key.protocol == k.protocol && a.key.port == k.port)
			})
			if j < 0 {
				union = append(union, accepted{key: k, from: e})
				ports = append(ports, v1alpha1.ServicePort{
					Name:        e.Ports[i].Name,
					Protocol:    k.protocol,
					AppProtocol: clonePtr(e.Ports[i].AppProtocol),
					Port:        e.Ports[i].Port,
				})
				continue
			}
			if union[j].key != k {
				clashes = append(clashes, clash{key: k, from: e, with: union[j]})
			}
		}
	}

	var differ []*v1alpha1.ExportRecordSpec
	want := portSet(exports[0])
	for _, e := range exports[1:] {
		if !slices.Equal(portSet(e), want) {
			differ = append(differ, e)
		}
	}
	if len(differ) == 0 {
		return ports, ""
	}

	var b strings.Builder
	who := "clusters " + listClusters(differ) + " export"
	if len(differ) == 1 {
		who = "cluster " + differ[0].Cluster + " exports"
	}
	fmt.Fprintf(&b, "ports: %s other ports than the oldest export (%s); their union is exported.", who, exports[0].Cluster)
	for i, c := range clashes {
		if i == maxListed {
			fmt.Fprintf(&b, " %d more port clashes.", len(clashes)-maxListed)
			break
		}
		b.WriteString(" ")
		b.WriteString(c.describe(exports[0]))
	}
	return ports, b.String()
}

// describe is a sentence on the clash: which cluster's port won.
func (c clash) describe(oldest *v1alpha1.ExportRecordSpec) string {
	winner := "the older export (" + c.with.from.Cluster + ") wins"
	switch c.with.from {
	case c.from:
		winner = "the first wins"
	case oldest:
		winner = "the oldest export (" + oldest.Cluster + ") wins"
	}
	if c.with.key.name == c.key.name {
		return fmt.Sprintf("port %q: cluster %s exports %s, cluster %s %s; %s.",
			c.key.name, c.with.from.Cluster, c.with.key, c.from.Cluster, c.key, winner)
	}
	return fmt.Sprintf("port %d/%s: cluster %s names it %q, cluster %s %q; %s.",
		c.key.port, c.key.protocol, c.with.from.Cluster, c.with.key.name, c.from.Cluster, c.key.name, winner)
}

// property is one of the scalar or map properties the oldest export wins.
type property struct {
	reason mcsv1beta1.ServiceExportConditionReason
	// equal reports whether two exports agree, after defaulting.
	equal func(a, b *v1alpha1.ExportRecordSpec) bool
	// describe is the message's sentence when losers disagree with oldest.
	describe func(oldest *v1alpha1.ExportRecordSpec, losers []*v1alpha1.ExportRecordSpec) string
}

// properties are in the order of their reasons in a verdict, after
// PortConflict.
var properties = []property{
	{
		reason:   mcsv1beta1.ServiceExportReasonTypeConflict,
		equal:    func(a, b *v1alpha1.ExportRecordSpec) bool { return a.Type == b.Type },
		describe: scalar("type", func(e *v1alpha1.ExportRecordSpec) string { return string(e.Type) }),
	},
	{
		reason:   mcsv1beta1.ServiceExportReasonSessionAffinityConflict,
		equal:    func(a, b *v1alpha1.ExportRecordSpec) bool { return affinity(a) == affinity(b) },
		describe: scalar("session affinity", func(e *v1alpha1.ExportRecordSpec) string { return string(affinity(e)) }),
	},
	{
		reason: mcsv1beta1.ServiceExportReasonSessionAffinityConfigConflict,
		equal: func(a, b *v1alpha1.ExportRecordSpec) bool {
			if affinity(a) != corev1.ServiceAffinityClientIP || affinity(b) != corev1.ServiceAffinityClientIP {
				return true
			}
			return affinityTimeout(a) == affinityTimeout(b)
		},
		describe: scalar("session affinity config", func(e *v1alpha1.ExportRecordSpec) string {
			return fmt.Sprintf("timeoutSeconds %d", affinityTimeout(e))
		}),
	},
	{
		reason: mcsv1beta1.ServiceExportReasonInternalTrafficPolicyConflict,
		equal: func(a, b *v1alpha1.ExportRecordSpec) bool {
			return internalTrafficPolicy(a) == internalTrafficPolicy(b)
		},
		describe: scalar("internal traffic policy", func(e *v1alpha1.ExportRecordSpec) string {
			return string(internalTrafficPolicy(e))
		}),
	},
	{
		reason: mcsv1beta1.ServiceExportReasonTrafficDistributionConflict,
		equal: func(a, b *v1alpha1.ExportRecordSpec) bool {
			return trafficDistribution(a) == trafficDistribution(b)
		},
		describe: scalar("traffic distribution", func(e *v1alpha1.ExportRecordSpec) string {
			return strconv.Quote(trafficDistribution(e))
		}),
	},
	{
		reason: mcsv1beta1.ServiceExportReasonLabelsConflict,
		equal: func(a, b *v1alpha1.ExportRecordSpec) bool {
			return maps.Equal(a.ExportedLabels, b.ExportedLabels)
		},
		describe: mapped("exported labels", func(e *v1alpha1.ExportRecordSpec) map[string]string { return e.ExportedLabels }),
	},
	{
		reason: mcsv1beta1.ServiceExportReasonAnnotationsConflict,
		equal: func(a, b *v1alpha1.ExportRecordSpec) bool {
			return maps.Equal(a.ExportedAnnotations, b.ExportedAnnotations)
		},
		describe: mapped("exported annotations", func(e *v1alpha1.ExportRecordSpec) map[string]string { return e.ExportedAnnotations }),
	},
}

func affinity(e *v1alpha1.ExportRecordSpec) corev1.ServiceAffinity {
	if e.SessionAffinity == "" {
		return corev1.ServiceAffinityNone
	}
	return e.SessionAffinity
}

func affinityTimeout(e *v1alpha1.ExportRecordSpec) int32 {
	c := e.SessionAffinityConfig
	if c == nil || c.ClientIP == nil || c.ClientIP.TimeoutSeconds == nil {
		return corev1.DefaultClientIPServiceAffinitySeconds
	}
	return *c.ClientIP.TimeoutSeconds
}

func internalTrafficPolicy(e *v1alpha1.ExportRecordSpec) corev1.ServiceInternalTrafficPolicy {
	if e.InternalTrafficPolicy == nil {
		return corev1.ServiceInternalTrafficPolicyCluster
	}
	return *e.InternalTrafficPolicy
}

func trafficDistribution(e *v1alpha1.ExportRecordSpec) string {
	if e.TrafficDistribution == nil {
		return ""
	}
	return *e.TrafficDistribution
}

// scalar describes a conflict on a property with a short value:
// "type: cluster a exports ClusterSetIP, cluster b Headless; the oldest
// export (a) wins."
func scalar(noun string, show func(*v1alpha1.ExportRecordSpec) string) func(*v1alpha1.ExportRecordSpec, []*v1alpha1.ExportRecordSpec) string {
	return func(oldest *v1alpha1.ExportRecordSpec, losers []*v1alpha1.ExportRecordSpec) string {
		var b strings.Builder
		fmt.Fprintf(&b, "%s: cluster %s exports %s", noun, oldest.Cluster, show(oldest))
		for i, l := range losers {
			if i == maxListed {
				fmt.Fprintf(&b, " and %d more", len(losers)-maxListed)
				break
			}
			fmt.Fprintf(&b, ", cluster %s %s", l.Cluster, show(l))
		}
		fmt.Fprintf(&b, "; the oldest export (%s) wins.", oldest.Cluster)
		return b.String()
	}
}

// mapped describes a conflict on a map property by the keys that differ,
// since the values (annotations above all) may be long: "exported labels
// differ from the oldest export's (a): cluster b in "x", "y"; cluster c in
// "z"; a's win."
func mapped(noun string, get func(*v1alpha1.ExportRecordSpec) map[string]string) func(*v1alpha1.ExportRecordSpec, []*v1alpha1.ExportRecordSpec) string {
	return func(oldest *v1alpha1.ExportRecordSpec, losers []*v1alpha1.ExportRecordSpec) string {
		var b strings.Builder
		fmt.Fprintf(&b, "%s differ from the oldest export's (%s):", noun, oldest.Cluster)
		want := get(oldest)
		for i, l := range losers {
			if i == maxListed {
				fmt.Fprintf(&b, " %d more clusters;", len(losers)-maxListed)
				break
			}
			fmt.Fprintf(&b, " cluster %s in %s;", l.Cluster, listKeys(differentKeys(want, get(l))))
		}
		fmt.Fprintf(&b, " %s's win.", oldest.Cluster)
		return b.String()
	}
}

// differentKeys are the sorted keys whose values in a and b differ.
func differentKeys(a, b map[string]string) []string {
	var keys []string
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			keys = append(keys, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func listKeys(keys []string) string {
	quoted := make([]string, 0, min(len(keys), maxListed))
	for _, k := range keys[:min(len(keys), maxListed)] {
		quoted = append(quoted, strconv.Quote(k))
	}
	s := strings.Join(quoted, ", ")
	if len(keys) > maxListed {
		s += fmt.Sprintf(" and %d more keys", len(keys)-maxListed)
	}
	return s
}

func listClusters(exports []*v1alpha1.ExportRecordSpec) string {
	names := make([]string, 0, min(len(exports), maxListed))
	for _, e := range exports[:min(len(exports), maxListed)] {
		names = append(names, e.Cluster)
	}
	s := strings.Join(names, ", ")
	if len(exports) > maxListed {
		s += fmt.Sprintf(" and %d more", len(exports)-maxListed)
	}
	return s
}
