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

package aggregate_test

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/federation/aggregate"
)

// Reasons, in the order the package documents for a verdict.
var (
	portConflict      = string(mcsv1beta1.ServiceExportReasonPortConflict)
	typeConflict      = string(mcsv1beta1.ServiceExportReasonTypeConflict)
	affinityConflict  = string(mcsv1beta1.ServiceExportReasonSessionAffinityConflict)
	configConflict    = string(mcsv1beta1.ServiceExportReasonSessionAffinityConfigConflict)
	itpConflict       = string(mcsv1beta1.ServiceExportReasonInternalTrafficPolicyConflict)
	tdConflict        = string(mcsv1beta1.ServiceExportReasonTrafficDistributionConflict)
	labelsConflict    = string(mcsv1beta1.ServiceExportReasonLabelsConflict)
	annotationsConfl  = string(mcsv1beta1.ServiceExportReasonAnnotationsConflict)
	reasonOrder       = []string{portConflict, typeConflict, affinityConflict, configConflict, itpConflict, tdConflict, labelsConflict, annotationsConfl}
	epoch             = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	hello             = v1alpha1.ServiceRef{Namespace: "default", Name: "hello"}
	defaultMembers    = map[string]aggregate.Member{"a": {Region: "eu", Zone: "eu-1", Healthy: true}, "b": {Region: "eu", Zone: "eu-2", Healthy: true}, "c": {Region: "us", Zone: "us-1", Healthy: true}}
	tcp42             = port("tcp", corev1.ProtocolTCP, 42)
	defaultPorts      = []v1alpha1.ServicePort{tcp42}
	clientIP          = corev1.ServiceAffinityClientIP
	local             = corev1.ServiceInternalTrafficPolicyLocal
	clusterPolicy     = corev1.ServiceInternalTrafficPolicyCluster
	defaultTimeoutCfg = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To(corev1.DefaultClientIPServiceAffinitySeconds)}}
)

func port(name string, protocol corev1.Protocol, number int32) v1alpha1.ServicePort {
	return v1alpha1.ServicePort{Name: name, Protocol: protocol, Port: number}
}

func timeout(s int32) *corev1.SessionAffinityConfig {
	return &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To(s)}}
}

// slices of cluster's endpoints: one IPv4 slice with one endpoint whose
// address tells the cluster apart.
func endpointsOf(cluster string) []v1alpha1.ExportedEndpointSlice {
	return []v1alpha1.ExportedEndpointSlice{{
		AddressType: "IPv4",
		Ports:       []v1alpha1.EndpointPort{{Name: "tcp", Protocol: corev1.ProtocolTCP, Port: 8080}},
		Endpoints: []v1alpha1.ExportedEndpoint{{
			Addresses: []string{"10.0.0." + fmt.Sprint(int(cluster[0]))},
			Zone:      cluster + "-zone",
			TargetPod: "hello-" + cluster,
		}},
	}}
}

// rec is cluster's export of hello, created age seconds after the epoch,
// with defaults (ClusterSetIP, tcp 42/TCP, one endpoint) and the edits.
func rec(cluster string, age int, edits ...func(*v1alpha1.ExportRecordSpec)) v1alpha1.ExportRecordSpec {
	r := v1alpha1.ExportRecordSpec{
		Cluster:                 cluster,
		Service:                 hello,
		ExportCreationTimestamp: metav1.NewTime(epoch.Add(time.Duration(age) * time.Second)),
		ServiceProperties: v1alpha1.ServiceProperties{
			Type:  v1alpha1.ServiceTypeClusterSetIP,
			Ports: slices.Clone(defaultPorts),
		},
		EndpointSlices: endpointsOf(cluster),
	}
	for _, edit := range edits {
		edit(&r)
	}
	return r
}

// want is the merged hello with defaults, one healthy entry per cluster of
// defaultMembers, and the edits.
func want(clusters []string, edits ...func(*v1alpha1.GlobalServiceSpec)) v1alpha1.GlobalServiceSpec {
	s := v1alpha1.GlobalServiceSpec{
		Service: hello,
		ServiceProperties: v1alpha1.ServiceProperties{
			Type:  v1alpha1.ServiceTypeClusterSetIP,
			Ports: slices.Clone(defaultPorts),
		},
		Clusters: []v1alpha1.GlobalServiceCluster{},
	}
	for _, c := range clusters {
		m := defaultMembers[c]
		s.Clusters = append(s.Clusters, v1alpha1.GlobalServiceCluster{Name: c, Region: m.Region, Zone: m.Zone, EndpointSlices: endpointsOf(c)})
	}
	for _, edit := range edits {
		edit(&s)
	}
	return s
}

func withType(t v1alpha1.ServiceType) func(*v1alpha1.ExportRecordSpec) {
	return func(r *v1alpha1.ExportRecordSpec) { r.Type = t }
}

func withPorts(p ...v1alpha1.ServicePort) func(*v1alpha1.ExportRecordSpec) {
	return func(r *v1alpha1.ExportRecordSpec) { r.Ports = p }
}

func withAffinity(a corev1.ServiceAffinity, c *corev1.SessionAffinityConfig) func(*v1alpha1.ExportRecordSpec) {
	return func(r *v1alpha1.ExportRecordSpec) { r.SessionAffinity, r.SessionAffinityConfig = a, c }
}

func withITP(p *corev1.ServiceInternalTrafficPolicy) func(*v1alpha1.ExportRecordSpec) {
	return func(r *v1alpha1.ExportRecordSpec) { r.InternalTrafficPolicy = p }
}

func withTD(d *string) func(*v1alpha1.ExportRecordSpec) {
	return func(r *v1alpha1.ExportRecordSpec) { r.TrafficDistribution = d }
}

func withLabels(l map[string]string) func(*v1alpha1.ExportRecordSpec) {
	return func(r *v1alpha1.ExportRecordSpec) { r.ExportedLabels = l }
}

func withAnnotations(a map[string]string) func(*v1alpha1.ExportRecordSpec) {
	return func(r *v1alpha1.ExportRecordSpec) { r.ExportedAnnotations = a }
}

func TestMerge(t *testing.T) {
	tests := map[string]struct {
		records []v1alpha1.ExportRecordSpec
		members map[string]aggregate.Member // nil: defaultMembers
		want    v1alpha1.GlobalServiceSpec
		notOK   bool
		// reasons every merged export gets.
		reasons []string
		// message every merged export gets, if set.
		message string
	}{
		"single export": {
			records: []v1alpha1.ExportRecordSpec{rec("a", 0)},
			want:    want([]string{"a"}),
		},
		"identical exports from three clusters": {
			records: []v1alpha1.ExportRecordSpec{rec("b", 1), rec("c", 2), rec("a", 0)},
			want:    want([]string{"a", "b", "c"}),
		},
		"clusters sorted by name, not by precedence": {
			records: []v1alpha1.ExportRecordSpec{rec("c", 0), rec("a", 2), rec("b", 1)},
			want:    want([]string{"a", "b", "c"}),
		},
		"no records": {
			records: nil,
			notOK:   true,
		},
		"only records of unknown clusters": {
			records: []v1alpha1.ExportRecordSpec{rec("x", 0), rec("y", 1)},
			notOK:   true,
		},
		"unknown cluster ignored, though older and conflicting": {
			records: []v1alpha1.ExportRecordSpec{rec("x", 0, withType(v1alpha1.ServiceTypeHeadless), withPorts(port("tcp", "TCP", 1))), rec("a", 1)},
			want:    want([]string{"a"}),
		},
		"one cluster twice: the older record is merged": {
			records: []v1alpha1.ExportRecordSpec{rec("a", 5, withType(v1alpha1.ServiceTypeHeadless)), rec("b", 1), rec("a", 0)},
			want:    want([]string{"a", "b"}),
		},

		// Each conflict reason alone.
		"type conflict": {
			records: []v1alpha1.ExportRecordSpec{rec("a", 0), rec("b", 1, withType(v1alpha1.ServiceTypeHeadless))},
			want:    want([]string{"a", "b"}),
			reasons: []string{typeConflict},
			message: "type: cluster a exports ClusterSetIP, cluster b Headless; the oldest export (a) wins.",
		},
		"session affinity conflict": {
			records: []v1alpha1.ExportRecordSpec{rec("a", 0, withAffinity(clientIP, timeout(60))), rec("b", 1, withAffinity(corev1.ServiceAffinityNone, nil))},
			want: want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) {
				s.SessionAffinity, s.SessionAffinityConfig = clientIP, timeout(60)
			}),
			reasons: []string{affinityConflict},
			message: "session affinity: cluster a exports ClientIP, cluster b None; the oldest export (a) wins.",
		},
		"session affinity config conflict": {
			records: []v1alpha1.ExportRecordSpec{rec("a", 0, withAffinity(clientIP, timeout(60))), rec("b", 1, withAffinity(clientIP, nil))},
			want: want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) {
				s.SessionAffinity, s.SessionAffinityConfig = clientIP, timeout(60)
			}),
			reasons: []string{configConflict},
			message: "session affinity config: cluster a exports timeoutSeconds 60, cluster b timeoutSeconds 10800; the oldest export (a) wins.",
		},
		"internal traffic policy conflict": {
			records: []v1alpha1.ExportRecordSpec{rec("a", 0, withITP(&local)), rec("b", 1)},
			want: want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) {
				s.InternalTrafficPolicy = &local
			}),
			reasons: []string{itpConflict},
			message: "internal traffic policy: cluster a exports Local, cluster b Cluster; the oldest export (a) wins.",
		},
		"traffic distribution conflict": {
			records: []v1alpha1.ExportRecordSpec{rec("a", 0), rec("b", 1, withTD(ptr.To("PreferClose")))},
			want:    want([]string{"a", "b"}),
			reasons: []string{tdConflict},
			message: `traffic distribution: cluster a exports "", cluster b "PreferClose"; the oldest export (a) wins.`,
		},
		"labels conflict (the suite's case)": {
			records: []v1alpha1.ExportRecordSpec{
				rec("a", 0, withLabels(map[string]string{"dummy-label": "true"})),
				rec("b", 1, withLabels(map[string]string{"dummy-label2": "true"})),
			},
			want: want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) {
				s.ExportedLabels = map[string]string{"dummy-label": "true"}
			}),
			reasons: []string{labelsConflict},
			message: `exported labels differ from the oldest export's (a): cluster b in "dummy-label", "dummy-label2"; a's win.`,
		},
		"annotations conflict on a value": {
			records: []v1alpha1.ExportRecordSpec{
				rec("a", 0, withAnnotations(map[string]string{"k": "1", "same": "x"})),
				rec("b", 1, withAnnotations(map[string]string{"k": "2", "same": "x"})),
			},
			want: want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) {
				s.ExportedAnnotations = map[string]string{"k": "1", "same": "x"}
			}),
			reasons: []string{annotationsConfl},
			message: `exported annotations differ from the oldest export's (a): cluster b in "k"; a's win.`,
		},
		"port conflict by name (the suite's case)": {
			records: []v1alpha1.ExportRecordSpec{
				rec("a", 0, withPorts(tcp42, port("udp", "UDP", 42))),
				rec("b", 1, withPorts(port("tcp", "TCP", 43))),
			},
			want: want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) {
				s.Ports = []v1alpha1.ServicePort{tcp42, port("udp", "UDP", 42)}
			}),
			reasons: []string{portConflict},
			message: `ports: cluster b exports other ports than the oldest export (a); their union is exported. ` +
				`port "tcp": cluster a exports 42/TCP, cluster b 43/TCP; the oldest export (a) wins.`,
		},
		"port union (the suite's case)": {
			records: []v1alpha1.ExportRecordSpec{
				rec("b", 1, withPorts(tcp42, port("stcp", "SCTP", 142))),
				rec("a", 0, withPorts(tcp42, port("udp", "UDP", 42))),
			},
			want: want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) {
				s.Ports = []v1alpha1.ServicePort{tcp42, port("udp", "UDP", 42), port("stcp", "SCTP", 142)}
			}),
			reasons: []string{portConflict},
			message: `ports: cluster b exports other ports than the oldest export (a); their union is exported.`,
		},
		"port conflict by protocol and port under another name": {
			records: []v1alpha1.ExportRecordSpec{
				rec("a", 0, withPorts(port("http", "TCP", 80))),
				rec("b", 1, withPorts(port("web", "TCP", 80))),
			},
			want: want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) {
				s.Ports = []v1alpha1.ServicePort{port("http", "TCP", 80)}
			}),
			reasons: []string{portConflict},
			message: `ports: cluster b exports other ports than the oldest export (a); their union is exported. ` +
				`port 80/TCP: cluster a names it "http", cluster b "web"; the oldest export (a) wins.`,
		},
		"unnamed ports clash by their empty name": {
			records: []v1alpha1.ExportRecordSpec{
				rec("a", 0, withPorts(port("", "TCP", 80))),
				rec("b", 1, withPorts(port("", "TCP", 8080))),
			},
			want: want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) {
				s.Ports = []v1alpha1.ServicePort{port("", "TCP", 80)}
			}),
			reasons: []string{portConflict},
		},
		"one port number under two protocols is two ports": {
			records: []v1alpha1.ExportRecordSpec{
				rec("a", 0, withPorts(port("dns", "UDP", 53))),
				rec("b", 1, withPorts(port("dns-tcp", "TCP", 53))),
			},
			want: want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) {
				s.Ports = []v1alpha1.ServicePort{port("dns", "UDP", 53), port("dns-tcp", "TCP", 53)}
			}),
			reasons: []string{portConflict},
		},
		"appProtocol conflict": {
			records: []v1alpha1.ExportRecordSpec{
				rec("a", 0, withPorts(v1alpha1.ServicePort{Name: "tcp", Protocol: "TCP", Port: 42, AppProtocol: ptr.To("http")})),
				rec("b", 1),
			},
			want: want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) {
				s.Ports = []v1alpha1.ServicePort{{Name: "tcp", Protocol: "TCP", Port: 42, AppProtocol: ptr.To("http")}}
			}),
			reasons: []string{portConflict},
			message: `ports: cluster b exports other ports than the oldest export (a); their union is exported. ` +
				`port "tcp": cluster a exports 42/TCP (appProtocol http), cluster b 42/TCP; the oldest export (a) wins.`,
		},
		"port clash with a port a younger export added": {
			records: []v1alpha1.ExportRecordSpec{
				rec("a", 0),
				rec("b", 1, withPorts(tcp42, port("web", "TCP", 80))),
				rec("c", 2, withPorts(tcp42, port("web", "TCP", 81))),
			},
			want: want([]string{"a", "b", "c"}, func(s *v1alpha1.GlobalServiceSpec) {
				s.Ports = []v1alpha1.ServicePort{tcp42, port("web", "TCP", 80)}
			}),
			reasons: []string{portConflict},
			message: `ports: clusters b, c export other ports than the oldest export (a); their union is exported. ` +
				`port "web": cluster b exports 80/TCP, cluster c 81/TCP; the older export (b) wins.`,
		},
		"ports in order of acceptance": {
			records: []v1alpha1.ExportRecordSpec{
				rec("b", 1, withPorts(port("z", "TCP", 3), port("y", "TCP", 2))),
				rec("a", 0, withPorts(port("y", "TCP", 2), port("x", "TCP", 1))),
			},
			want: want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) {
				s.Ports = []v1alpha1.ServicePort{port("y", "TCP", 2), port("x", "TCP", 1), port("z", "TCP", 3)}
			}),
			reasons: []string{portConflict},
		},
		"no ports anywhere": {
			records: []v1alpha1.ExportRecordSpec{rec("a", 0, withPorts()), rec("b", 1, withPorts())},
			want:    want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) { s.Ports = nil }),
		},

		// Several at once, in the documented order.
		"several conflicts at once": {
			records: []v1alpha1.ExportRecordSpec{
				rec("a", 0, withLabels(map[string]string{"x": "1"})),
				rec("b", 1, withType(v1alpha1.ServiceTypeHeadless), withPorts(port("tcp", "TCP", 43))),
			},
			want: want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) {
				s.ExportedLabels = map[string]string{"x": "1"}
			}),
			reasons: []string{portConflict, typeConflict, labelsConflict},
			message: `ports: cluster b exports other ports than the oldest export (a); their union is exported. ` +
				`port "tcp": cluster a exports 42/TCP, cluster b 43/TCP; the oldest export (a) wins. ` +
				`type: cluster a exports ClusterSetIP, cluster b Headless; the oldest export (a) wins. ` +
				`exported labels differ from the oldest export's (a): cluster b in "x"; a's win.`,
		},
		"every conflict at once": {
			records: []v1alpha1.ExportRecordSpec{
				rec("c", 2, withType(v1alpha1.ServiceTypeHeadless), withPorts(port("tcp", "TCP", 43)),
					withAffinity(clientIP, timeout(5)), withITP(&local), withTD(ptr.To("PreferClose")),
					withLabels(map[string]string{"l": "c"}), withAnnotations(map[string]string{"a": "c"})),
				rec("b", 1, withAffinity(corev1.ServiceAffinityNone, nil)),
				rec("a", 0, withAffinity(clientIP, nil)),
			},
			want: want([]string{"a", "b", "c"}, func(s *v1alpha1.GlobalServiceSpec) {
				s.SessionAffinity = clientIP
			}),
			reasons: reasonOrder,
		},
		"one dissenter among three flags all three": {
			records: []v1alpha1.ExportRecordSpec{rec("a", 0), rec("b", 1), rec("c", 2, withType(v1alpha1.ServiceTypeHeadless))},
			want:    want([]string{"a", "b", "c"}),
			reasons: []string{typeConflict},
			message: "type: cluster a exports ClusterSetIP, cluster c Headless; the oldest export (a) wins.",
		},

		// Precedence.
		"precedence by timestamp": {
			records: []v1alpha1.ExportRecordSpec{
				rec("a", 10, withLabels(map[string]string{"from": "a"})),
				rec("b", 3, withType(v1alpha1.ServiceTypeHeadless), withLabels(map[string]string{"from": "b"})),
			},
			want: want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) {
				s.Type, s.ExportedLabels = v1alpha1.ServiceTypeHeadless, map[string]string{"from": "b"}
			}),
			reasons: []string{typeConflict, labelsConflict},
		},
		"precedence by cluster name on a timestamp tie": {
			records: []v1alpha1.ExportRecordSpec{
				rec("b", 3, withType(v1alpha1.ServiceTypeHeadless), withPorts(port("tcp", "TCP", 43))),
				rec("a", 3),
			},
			want:    want([]string{"a", "b"}),
			reasons: []string{portConflict, typeConflict},
		},

		// Defaulting: equal after normalisation, and the oldest's value copied as given.
		"protocol empty equals TCP, written explicitly": {
			records: []v1alpha1.ExportRecordSpec{rec("a", 0, withPorts(port("tcp", "", 42))), rec("b", 1)},
			want:    want([]string{"a", "b"}),
		},
		"appProtocol unset equals empty": {
			records: []v1alpha1.ExportRecordSpec{
				rec("a", 0, withPorts(v1alpha1.ServicePort{Name: "tcp", Protocol: "TCP", Port: 42, AppProtocol: ptr.To("")})),
				rec("b", 1),
			},
			want: want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) {
				s.Ports = []v1alpha1.ServicePort{{Name: "tcp", Protocol: "TCP", Port: 42, AppProtocol: ptr.To("")}}
			}),
		},
		"session affinity empty equals None": {
			records: []v1alpha1.ExportRecordSpec{rec("a", 0), rec("b", 1, withAffinity(corev1.ServiceAffinityNone, nil))},
			want:    want([]string{"a", "b"}),
		},
		"session affinity config unset equals the default timeout": {
			records: []v1alpha1.ExportRecordSpec{rec("a", 0, withAffinity(clientIP, nil)), rec("b", 1, withAffinity(clientIP, defaultTimeoutCfg))},
			want:    want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) { s.SessionAffinity = clientIP }),
		},
		"session affinity config without ClientIP equals the default timeout": {
			records: []v1alpha1.ExportRecordSpec{
				rec("a", 0, withAffinity(clientIP, &corev1.SessionAffinityConfig{})),
				rec("b", 1, withAffinity(clientIP, defaultTimeoutCfg)),
			},
			want: want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) {
				s.SessionAffinity, s.SessionAffinityConfig = clientIP, &corev1.SessionAffinityConfig{}
			}),
		},
		"session affinity config without a timeout equals the default timeout": {
			records: []v1alpha1.ExportRecordSpec{
				rec("a", 0, withAffinity(clientIP, &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{}})),
				rec("b", 1, withAffinity(clientIP, nil)),
			},
			want: want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) {
				s.SessionAffinity = clientIP
				s.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{}}
			}),
		},
		"session affinity configs do not matter without ClientIP affinity": {
			records: []v1alpha1.ExportRecordSpec{rec("a", 0, withAffinity("", timeout(5))), rec("b", 1, withAffinity(corev1.ServiceAffinityNone, timeout(6)))},
			want:    want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) { s.SessionAffinityConfig = timeout(5) }),
		},
		"internal traffic policy unset equals Cluster": {
			records: []v1alpha1.ExportRecordSpec{rec("a", 0, withITP(&clusterPolicy)), rec("b", 1)},
			want:    want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) { s.InternalTrafficPolicy = &clusterPolicy }),
		},
		"traffic distribution unset equals empty": {
			records: []v1alpha1.ExportRecordSpec{rec("a", 0, withTD(ptr.To(""))), rec("b", 1)},
			want:    want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) { s.TrafficDistribution = ptr.To("") }),
		},
		"labels nil equal empty": {
			records: []v1alpha1.ExportRecordSpec{rec("a", 0, withLabels(map[string]string{})), rec("b", 1)},
			want:    want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) { s.ExportedLabels = map[string]string{} }),
		},
		"annotations nil equal empty": {
			records: []v1alpha1.ExportRecordSpec{rec("a", 0), rec("b", 1, withAnnotations(map[string]string{}))},
			want:    want([]string{"a", "b"}),
		},

		// Health.
		"unhealthy member withdrawn but still counted for conflicts and precedence": {
			records: []v1alpha1.ExportRecordSpec{rec("a", 1), rec("b", 0, withType(v1alpha1.ServiceTypeHeadless))},
			members: map[string]aggregate.Member{"a": defaultMembers["a"], "b": {Region: "eu", Zone: "eu-2"}},
			want: want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) {
				s.Type = v1alpha1.ServiceTypeHeadless
				s.Clusters[1].Withdrawn, s.Clusters[1].EndpointSlices = true, nil
			}),
			reasons: []string{typeConflict},
		},
		"healthy member without endpoints": {
			records: []v1alpha1.ExportRecordSpec{rec("a", 0, func(r *v1alpha1.ExportRecordSpec) { r.EndpointSlices = nil })},
			want:    want([]string{"a"}, func(s *v1alpha1.GlobalServiceSpec) { s.Clusters[0].EndpointSlices = nil }),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			members := tc.members
			if members == nil {
				members = defaultMembers
			}
			spec, verdicts, ok := aggregate.Merge(tc.records, members)
			if ok == tc.notOK {
				t.Fatalf("ok = %v, want %v", ok, !tc.notOK)
			}
			if tc.notOK {
				if !reflect.DeepEqual(spec, v1alpha1.GlobalServiceSpec{}) || verdicts != nil {
					t.Errorf("got spec %+v and verdicts %v with ok false, want zero values", spec, verdicts)
				}
				return
			}
			if !reflect.DeepEqual(spec, tc.want) {
				t.Errorf("spec:\n got  %+v\n want %+v", spec, tc.want)
			}
			if len(verdicts) != len(tc.want.Clusters) {
				t.Errorf("got %d verdicts (%v), want one per merged export (%d)", len(verdicts), verdicts, len(tc.want.Clusters))
			}
			for _, c := range tc.want.Clusters {
				v, found := verdicts[c.Name]
				if !found {
					t.Errorf("no verdict for cluster %s", c.Name)
					continue
				}
				if !slices.Equal(v.Reasons, tc.reasons) {
					t.Errorf("cluster %s: reasons %v, want %v", c.Name, v.Reasons, tc.reasons)
				}
				if (v.Message == "") != (len(tc.reasons) == 0) {
					t.Errorf("cluster %s: message %q with reasons %v", c.Name, v.Message, v.Reasons)
				}
				if tc.message != "" && v.Message != tc.message {
					t.Errorf("cluster %s: message\n got  %q\n want %q", c.Name, v.Message, tc.message)
				}
			}
		})
	}
}

// allFieldsSet is an export with every pointer, map and slice field set,
// so that aliasing anywhere shows.
func allFieldsSet(cluster string, age int) v1alpha1.ExportRecordSpec {
	return rec(cluster, age,
		withPorts(v1alpha1.ServicePort{Name: "tcp", Port: 42, AppProtocol: ptr.To("http")}, port("udp", "", 53)),
		withAffinity(clientIP, timeout(60)), withITP(ptr.To(local)), withTD(ptr.To("PreferClose")),
		withLabels(map[string]string{"l": cluster}), withAnnotations(map[string]string{"a": cluster}),
		func(r *v1alpha1.ExportRecordSpec) {
			r.EndpointSlices[0].Ports[0].AppProtocol = ptr.To("http")
		})
}

func TestMergeDoesNotModifyOrAliasInput(t *testing.T) {
	records := []v1alpha1.ExportRecordSpec{allFieldsSet("b", 1), allFieldsSet("a", 0), allFieldsSet("x", 0)}
	before := make([]v1alpha1.ExportRecordSpec, len(records))
	for i := range records {
		records[i].DeepCopyInto(&before[i])
	}

	spec, _, ok := aggregate.Merge(records, defaultMembers)
	if !ok {
		t.Fatal("ok = false, want true")
	}
	if !reflect.DeepEqual(records, before) {
		t.Fatalf("Merge modified its input:\n got  %+v\n want %+v", records, before)
	}

	// Scribble over everything the result holds; the records must not change.
	*spec.Ports[0].AppProtocol = "changed"
	spec.Ports[0].Name = "changed"
	*spec.SessionAffinityConfig.ClientIP.TimeoutSeconds = 1
	*spec.InternalTrafficPolicy = "changed"
	*spec.TrafficDistribution = "changed"
	spec.ExportedLabels["l"] = "changed"
	spec.ExportedAnnotations["a"] = "changed"
	for i := range spec.Clusters {
		s := &spec.Clusters[i].EndpointSlices[0]
		s.Endpoints[0].Addresses[0] = "changed"
		*s.Ports[0].AppProtocol = "changed"
		s.Ports[0].Port = 1
	}
	if !reflect.DeepEqual(records, before) {
		t.Errorf("the result aliases the input:\n got  %+v\n want %+v", records, before)
	}

	// Verdicts do not share their reasons either.
	if _, _, ok := aggregate.Merge(records, defaultMembers); !ok {
		t.Fatal("ok = false, want true")
	}
	records[0].Type = v1alpha1.ServiceTypeHeadless
	_, verdicts, _ := aggregate.Merge(records, defaultMembers)
	verdicts["a"].Reasons[0] = "changed"
	if got := verdicts["b"].Reasons[0]; got != typeConflict {
		t.Errorf("verdicts share reasons: b's first reason is %q after editing a's", got)
	}
}

func TestMergeIndependentOfOrder(t *testing.T) {
	records := []v1alpha1.ExportRecordSpec{
		rec("c", 0, withPorts(port("web", "TCP", 80), tcp42)),
		rec("a", 0, withType(v1alpha1.ServiceTypeHeadless), withPorts(port("web", "TCP", 81))),
		rec("b", 0, withLabels(map[string]string{"b": "1"})),
		allFieldsSet("a", 1), // a second record of a, younger: ignored
	}
	wantSpec, wantVerdicts, _ := aggregate.Merge(records, defaultMembers)
	perm := slices.Clone(records)
	for i := range 50 {
		r := rand.New(rand.NewPCG(uint64(i), 0))
		r.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		spec, verdicts, _ := aggregate.Merge(perm, defaultMembers)
		if !reflect.DeepEqual(spec, wantSpec) || !reflect.DeepEqual(verdicts, wantVerdicts) {
			t.Fatalf("order %v changed the result:\n got  %+v %v\n want %+v %v", clustersOf(perm), spec, verdicts, wantSpec, wantVerdicts)
		}
	}
}

func TestMergeMessageListsAtMostFiveClusters(t *testing.T) {
	members := map[string]aggregate.Member{}
	records := []v1alpha1.ExportRecordSpec{rec("c00", 0)}
	members["c00"] = aggregate.Member{Healthy: true}
	for i := 1; i <= 8; i++ {
		name := fmt.Sprintf("c%02d", i)
		members[name] = aggregate.Member{Healthy: true}
		records = append(records, rec(name, i, withType(v1alpha1.ServiceTypeHeadless)))
	}
	_, verdicts, _ := aggregate.Merge(records, members)
	const want = "type: cluster c00 exports ClusterSetIP, cluster c01 Headless, cluster c02 Headless, cluster c03 Headless, " +
		"cluster c04 Headless, cluster c05 Headless and 3 more; the oldest export (c00) wins."
	if got := verdicts["c08"].Message; got != want {
		t.Errorf("message\n got  %q\n want %q", got, want)
	}
}

func TestEqualSpec(t *testing.T) {
	base := want([]string{"a", "b"})
	tests := map[string]struct {
		a, b *v1alpha1.GlobalServiceSpec
		want bool
	}{
		"both nil":                {want: true},
		"nil and not nil":         {a: &base, want: false},
		"same":                    {a: &base, b: ptr.To(want([]string{"a", "b"})), want: true},
		"nil and empty labels":    {a: &base, b: ptr.To(want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) { s.ExportedLabels = map[string]string{} })), want: true},
		"nil and empty clusters":  {a: ptr.To(want(nil)), b: ptr.To(want(nil, func(s *v1alpha1.GlobalServiceSpec) { s.Clusters = nil })), want: true},
		"another port":            {a: &base, b: ptr.To(want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) { s.Ports[0].Port = 43 })), want: false},
		"a withdrawn cluster":     {a: &base, b: ptr.To(want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) { s.Clusters[1].Withdrawn = true })), want: false},
		"another endpoint":        {a: &base, b: ptr.To(want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) { s.Clusters[0].EndpointSlices[0].Endpoints[0].Zone = "z" })), want: false},
		"another affinity config": {a: &base, b: ptr.To(want([]string{"a", "b"}, func(s *v1alpha1.GlobalServiceSpec) { s.SessionAffinityConfig = timeout(1) })), want: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := aggregate.EqualSpec(tc.a, tc.b); got != tc.want {
				t.Errorf("EqualSpec = %v, want %v", got, tc.want)
			}
			if got := aggregate.EqualSpec(tc.b, tc.a); got != tc.want {
				t.Errorf("EqualSpec reversed = %v, want %v", got, tc.want)
			}
		})
	}
}

func clustersOf(records []v1alpha1.ExportRecordSpec) []string {
	names := make([]string, len(records))
	for i, r := range records {
		names[i] = fmt.Sprintf("%s@%d", r.Cluster, r.ExportCreationTimestamp.Unix()-epoch.Unix())
	}
	return names
}

// fuzzSource hands out choices from the fuzzer's bytes, then zeros.
type fuzzSource []byte

func (s *fuzzSource) pick(n int) int {
	if len(*s) == 0 {
		return 0
	}
	b := (*s)[0]
	*s = (*s)[1:]
	return int(b) % n
}

func pickOf[T any](s *fuzzSource, choices ...T) T { return choices[s.pick(len(choices))] }

// fuzzRecords builds up to eight records of clusters a-d (members) and x
// (unknown) from small sets of values, so that clashes are frequent.
func fuzzRecords(s *fuzzSource) ([]v1alpha1.ExportRecordSpec, map[string]aggregate.Member) {
	members := map[string]aggregate.Member{}
	for _, c := range []string{"a", "b", "c", "d"} {
		members[c] = aggregate.Member{Region: "r-" + c, Zone: "z-" + c, Healthy: s.pick(4) != 0}
	}
	records := make([]v1alpha1.ExportRecordSpec, s.pick(9))
	for i := range records {
		r := &records[i]
		r.Cluster = pickOf(s, "a", "b", "c", "d", "x")
		r.Service = hello
		r.ExportCreationTimestamp = metav1.NewTime(epoch.Add(time.Duration(s.pick(3)) * time.Second))
		r.Type = pickOf(s, v1alpha1.ServiceTypeClusterSetIP, v1alpha1.ServiceTypeHeadless)
		for range s.pick(4) {
			r.Ports = append(r.Ports, v1alpha1.ServicePort{
				Name:        pickOf(s, "", "tcp", "udp", "web"),
				Protocol:    pickOf[corev1.Protocol](s, "", "TCP", "UDP", "SCTP"),
				Port:        pickOf[int32](s, 42, 43, 80),
				AppProtocol: pickOf(s, nil, ptr.To(""), ptr.To("http")),
			})
		}
		r.SessionAffinity = pickOf[corev1.ServiceAffinity](s, "", "None", "ClientIP")
		r.SessionAffinityConfig = pickOf(s, nil, &corev1.SessionAffinityConfig{}, &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{}}, timeout(10800), timeout(100))
		r.InternalTrafficPolicy = pickOf(s, nil, ptr.To(clusterPolicy), ptr.To(local))
		r.TrafficDistribution = pickOf(s, nil, ptr.To(""), ptr.To("PreferClose"))
		r.ExportedLabels = pickOf(s, nil, map[string]string{}, map[string]string{"k": "1"}, map[string]string{"k": "2"})
		r.ExportedAnnotations = pickOf(s, nil, map[string]string{}, map[string]string{"k": "1"}, map[string]string{"j": "1"})
		for range s.pick(3) {
			r.EndpointSlices = append(r.EndpointSlices, endpointsOf(r.Cluster)...)
		}
	}
	return records, members
}

func FuzzMerge(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{3, 1, 1, 1, 1, 4, 0, 0, 0, 2, 1, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13})
	f.Add([]byte("the quick brown fox jumps over the lazy dog, twice: the quick brown fox jumps over the lazy dog"))
	f.Fuzz(func(t *testing.T, data []byte) {
		src := fuzzSource(data)
		records, members := fuzzRecords(&src)
		before := make([]v1alpha1.ExportRecordSpec, len(records))
		for i := range records {
			records[i].DeepCopyInto(&before[i])
		}

		spec, verdicts, ok := aggregate.Merge(records, members)

		if !reflect.DeepEqual(records, before) {
			t.Fatalf("Merge modified its input")
		}
		// Every known cluster's records yield exactly one entry and one verdict.
		var known []string
		oldest := -1
		for i, r := range records {
			if _, found := members[r.Cluster]; !found {
				continue
			}
			known = append(known, r.Cluster)
			if oldest < 0 || precedes(&r, &records[oldest]) {
				oldest = i
			}
		}
		slices.Sort(known)
		known = slices.Compact(known)
		if ok != (len(known) > 0) {
			t.Fatalf("ok = %v with known clusters %v", ok, known)
		}
		if !ok {
			return
		}
		var names []string
		for _, c := range spec.Clusters {
			names = append(names, c.Name)
			m := members[c.Name]
			if c.Region != m.Region || c.Zone != m.Zone || c.Withdrawn == m.Healthy || (c.Withdrawn && c.EndpointSlices != nil) {
				t.Errorf("cluster entry %+v does not match member %+v", c, m)
			}
		}
		if !slices.Equal(names, known) {
			t.Errorf("cluster entries %v, want one per known cluster, sorted: %v", names, known)
		}
		if len(verdicts) != len(known) {
			t.Errorf("verdicts for %d clusters, want %d", len(verdicts), len(known))
		}

		// The oldest record (one of them, if its cluster has twins) wins the type.
		if o := records[oldest]; !slices.ContainsFunc(records, func(r v1alpha1.ExportRecordSpec) bool {
			return r.Cluster == o.Cluster && r.ExportCreationTimestamp.Equal(&o.ExportCreationTimestamp) && r.Type == spec.Type
		}) {
			t.Errorf("type %s is not the oldest export's (%s)", spec.Type, o.Cluster)
		}

		// Ports are unique by name and by (protocol, port), explicit about
		// their protocol, and cover every merged port.
		for i, p := range spec.Ports {
			if p.Protocol == "" {
				t.Errorf("port %+v has no protocol", p)
			}
			for _, q := range spec.Ports[:i] {
				if p.Name == q.Name || (p.Protocol == q.Protocol && p.Port == q.Port) {
					t.Errorf("ports %+v and %+v clash", q, p)
				}
			}
		}
		for i, r := range records {
			if _, found := members[r.Cluster]; !found || !surelyMerged(records, i) {
				continue
			}
			for _, p := range r.Ports {
				protocol := cmpOr(p.Protocol, corev1.ProtocolTCP)
				if !slices.ContainsFunc(spec.Ports, func(q v1alpha1.ServicePort) bool {
					return q.Name == p.Name || (q.Protocol == protocol && q.Port == p.Port)
				}) {
					t.Errorf("port %+v of cluster %s is neither merged nor clashes with a merged port", p, r.Cluster)
				}
			}
		}

		// Every export gets the same verdict, with known reasons in order.
		var first *aggregate.Conflict
		for c, v := range verdicts {
			if first == nil {
				first = &v
			} else if !reflect.DeepEqual(v, *first) {
				t.Errorf("verdict of %s %+v differs from another's %+v", c, v, *first)
			}
			last := -1
			for _, reason := range v.Reasons {
				i := slices.Index(reasonOrder, reason)
				if i <= last {
					t.Errorf("reasons %v unknown or out of order", v.Reasons)
				}
				last = i
			}
			if (v.Message == "") != (len(v.Reasons) == 0) {
				t.Errorf("message %q with reasons %v", v.Message, v.Reasons)
			}
			if len(known) == 1 && len(v.Reasons) > 0 {
				t.Errorf("a single export conflicts: %v", v.Reasons)
			}
		}

		// The order of the records does not matter. Two records of one
		// cluster with one timestamp are ranked by their JSON, which does
		// not tell nil from empty maps, so then compare semantically.
		twins := hasTwins(records)
		seed := fnv.New64a()
		seed.Write(data)
		rnd := rand.New(rand.NewPCG(seed.Sum64(), 1))
		for range 3 {
			perm := slices.Clone(records)
			rnd.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
			spec2, verdicts2, ok2 := aggregate.Merge(perm, members)
			same := aggregate.EqualSpec(&spec, &spec2)
			if !twins {
				same = reflect.DeepEqual(spec, spec2)
			}
			if !ok2 || !same || !reflect.DeepEqual(verdicts, verdicts2) {
				t.Fatalf("order %v changed the result:\n got  %+v %v\n want %+v %v", clustersOf(perm), spec2, verdicts2, spec, verdicts)
			}
		}
	})
}

func precedes(a, b *v1alpha1.ExportRecordSpec) bool {
	if !a.ExportCreationTimestamp.Equal(&b.ExportCreationTimestamp) {
		return a.ExportCreationTimestamp.Before(&b.ExportCreationTimestamp)
	}
	return a.Cluster < b.Cluster
}

// surelyMerged reports whether records[i] is its cluster's oldest record,
// and the only one of that age.
func surelyMerged(records []v1alpha1.ExportRecordSpec, i int) bool {
	r := &records[i]
	for j := range records {
		o := &records[j]
		if j != i && o.Cluster == r.Cluster && !r.ExportCreationTimestamp.Before(&o.ExportCreationTimestamp) {
			return false
		}
	}
	return true
}

func hasTwins(records []v1alpha1.ExportRecordSpec) bool {
	for i, r := range records {
		for _, o := range records[:i] {
			if r.Cluster == o.Cluster && r.ExportCreationTimestamp.Equal(&o.ExportCreationTimestamp) {
				return true
			}
		}
	}
	return false
}

func cmpOr[T comparable](v, fallback T) T {
	var zero T
	if v == zero {
		return fallback
	}
	return v
}

func benchmarkRecords(clusters, endpoints int) ([]v1alpha1.ExportRecordSpec, map[string]aggregate.Member) {
	members := map[string]aggregate.Member{}
	var records []v1alpha1.ExportRecordSpec
	for c := range clusters {
		name := fmt.Sprintf("cluster-%d", c)
		members[name] = aggregate.Member{Region: "r", Zone: fmt.Sprintf("z-%d", c), Healthy: true}
		slice := v1alpha1.ExportedEndpointSlice{
			AddressType: "IPv4",
			Ports:       []v1alpha1.EndpointPort{{Name: "http", Protocol: "TCP", Port: 8080}, {Name: "grpc", Protocol: "TCP", Port: 9090}},
		}
		for e := range endpoints {
			slice.Endpoints = append(slice.Endpoints, v1alpha1.ExportedEndpoint{
				Addresses: []string{fmt.Sprintf("10.%d.%d.%d", c, e/256, e%256)},
				Zone:      fmt.Sprintf("z-%d", c),
				TargetPod: fmt.Sprintf("hello-%d", e),
			})
		}
		records = append(records, rec(name, c,
			withPorts(v1alpha1.ServicePort{Name: "http", Protocol: "TCP", Port: 80, AppProtocol: ptr.To("http")}, port("grpc", "TCP", 9090)),
			withLabels(map[string]string{"app": "hello"}),
			func(r *v1alpha1.ExportRecordSpec) { r.EndpointSlices = []v1alpha1.ExportedEndpointSlice{slice} }))
	}
	return records, members
}

func BenchmarkMerge(b *testing.B) {
	for _, size := range []struct{ clusters, endpoints int }{{3, 2}, {3, 100}} {
		records, members := benchmarkRecords(size.clusters, size.endpoints)
		b.Run(fmt.Sprintf("clusters=%d/endpoints=%d", size.clusters, size.endpoints), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, ok := aggregate.Merge(records, members); !ok {
					b.Fatal("ok = false")
				}
			}
		})
	}
}
