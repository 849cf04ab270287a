package membership

import (
	"context"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/federation/linkplan"
	"github.com/causeway-mesh/causeway/internal/linkapi"
)

var statusNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func memberCluster(name, region string, conds map[string]metav1.ConditionStatus) causewayv1alpha1.MemberCluster {
	mc := causewayv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: name}}
	mc.Spec.Region = causewayv1alpha1.LocalityName(region)
	for _, t := range slices.Sorted(maps.Keys(conds)) {
		mc.Status.Conditions = append(mc.Status.Conditions, metav1.Condition{
			Type: t, Status: conds[t], Reason: "Test", LastTransitionTime: metav1.NewTime(statusNow),
		})
	}
	return mc
}

func agentLease(cluster string, renewedAgo time.Duration, namespaces string) coordinationv1.Lease {
	renew := metav1.NewMicroTime(statusNow.Add(-renewedAgo))
	return coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: causewayv1alpha1.MemberNamespace(cluster), Name: causewayv1alpha1.AgentLeaseName,
			Annotations: map[string]string{causewayv1alpha1.AnnotationNamespaces: namespaces, causewayv1alpha1.AnnotationAgentVersion: "v0.1.0"},
		},
		Spec: coordinationv1.LeaseSpec{RenewTime: &renew},
	}
}

func conflicted(r *causewayv1alpha1.ExportRecord, status metav1.ConditionStatus, reason, msg string) causewayv1alpha1.ExportRecord {
	r.Status.Conditions = []metav1.Condition{{
		Type: causewayv1alpha1.ExportRecordConflict, Status: status, Reason: reason, Message: msg, LastTransitionTime: metav1.NewTime(statusNow),
	}}
	return *r
}

func globalService(namespace, name string, t causewayv1alpha1.ServiceType, clusters ...causewayv1alpha1.GlobalServiceCluster) causewayv1alpha1.GlobalService {
	return causewayv1alpha1.GlobalService{
		ObjectMeta: metav1.ObjectMeta{Namespace: causewayv1alpha1.SystemNamespace, Name: causewayv1alpha1.ServiceKeyName(namespace, name)},
		Spec: causewayv1alpha1.GlobalServiceSpec{
			Service: causewayv1alpha1.ServiceRef{Namespace: namespace, Name: name},
			ServiceProperties: causewayv1alpha1.ServiceProperties{
				Type:  t,
				Ports: []causewayv1alpha1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}},
			},
			Clusters: clusters,
		},
	}
}

func duration(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

// TestBuildStatus covers the summary rules on hand-made hub objects.
func TestBuildStatus(t *testing.T) {
	healthy := map[string]metav1.ConditionStatus{"Joined": "True", "Healthy": "True", "Ready": "True"}
	cases := map[string]struct {
		in   statusInputs
		want *Status
	}{
		"empty hub": {
			want: &Status{Clusters: []ClusterStatus{}, Services: []ServiceStatus{}},
		},
		"cluster without conditions or lease": {
			in:   statusInputs{clusters: causewayv1alpha1.MemberClusterList{Items: []causewayv1alpha1.MemberCluster{memberCluster("new", "", nil)}}},
			want: &Status{Clusters: []ClusterStatus{{Name: "new", Joined: "Unknown", Healthy: "Unknown", Ready: "Unknown"}}, Services: []ServiceStatus{}},
		},
		"lease without renew time has no age": {
			in: statusInputs{
				clusters: causewayv1alpha1.MemberClusterList{Items: []causewayv1alpha1.MemberCluster{memberCluster("x", "", nil)}},
				leases:   coordinationv1.LeaseList{Items: []coordinationv1.Lease{{ObjectMeta: metav1.ObjectMeta{Namespace: "causeway-member-x", Name: "causeway-agent"}}}},
			},
			want: &Status{Clusters: []ClusterStatus{{Name: "x", Joined: "Unknown", Healthy: "Unknown", Ready: "Unknown"}}, Services: []ServiceStatus{}},
		},
		"two clusters exporting, importing and conflicting": {
			in: statusInputs{
				clusters: causewayv1alpha1.MemberClusterList{Items: []causewayv1alpha1.MemberCluster{
					memberCluster("west", "us-west-2", map[string]metav1.ConditionStatus{"Joined": "True", "Healthy": "False", "Ready": "False"}),
					memberCluster("east", "us-east-1", healthy),
					memberCluster("idle", "", healthy),
				}},
				leases: coordinationv1.LeaseList{Items: []coordinationv1.Lease{
					agentLease("east", 3*time.Second+400*time.Millisecond, "default,shop"),
					agentLease("west", 10*time.Minute, "shop,kube-system"),
					agentLease("gone", time.Second, "shop"), // no MemberCluster: ignored
					{ObjectMeta: metav1.ObjectMeta{Namespace: "causeway-member-idle", Name: "other-lease"}},
				}},
				records: causewayv1alpha1.ExportRecordList{Items: []causewayv1alpha1.ExportRecord{
					conflicted(exportRecord("east", "shop", "cart"), metav1.ConditionFalse, "NoConflicts", ""),
					conflicted(exportRecord("west", "shop", "cart"), metav1.ConditionTrue, "PortConflict", "port http is 8080 in the oldest export"),
					conflicted(exportRecord("east", "shop", "checkout"), metav1.ConditionTrue, "TypeConflict", "type is Headless in the oldest export"),
					*exportRecord("west", "shop", "checkout"),
				}},
				services: causewayv1alpha1.GlobalServiceList{Items: []causewayv1alpha1.GlobalService{
					globalService("shop", "checkout", causewayv1alpha1.ServiceTypeHeadless,
						causewayv1alpha1.GlobalServiceCluster{Name: "west", Withdrawn: true}, causewayv1alpha1.GlobalServiceCluster{Name: "east"}),
					globalService("shop", "cart", causewayv1alpha1.ServiceTypeClusterSetIP,
						causewayv1alpha1.GlobalServiceCluster{Name: "east"}, causewayv1alpha1.GlobalServiceCluster{Name: "west"}),
					globalService("payments", "api", causewayv1alpha1.ServiceTypeClusterSetIP),
				}},
			},
			want: &Status{
				Clusters: []ClusterStatus{
					{Name: "east", Region: "us-east-1", Joined: "True", Healthy: "True", Ready: "True", LeaseAge: duration(3 * time.Second), AgentVersion: "v0.1.0", Exports: 2, Imports: 2},
					{Name: "idle", Joined: "True", Healthy: "True", Ready: "True"},
					{Name: "west", Region: "us-west-2", Joined: "True", Healthy: "False", Ready: "False", LeaseAge: duration(10 * time.Minute), AgentVersion: "v0.1.0", Exports: 2, Imports: 2},
				},
				Services: []ServiceStatus{
					{Namespace: "payments", Name: "api", Type: "ClusterSetIP", ExportedFrom: []ExportingCluster{}, ImportedInto: []string{}},
					{Namespace: "shop", Name: "cart", Type: "ClusterSetIP",
						ExportedFrom: []ExportingCluster{{Name: "east"}, {Name: "west"}},
						ImportedInto: []string{"east", "west"},
						Conflicts:    []ExportConflict{{Cluster: "west", Reason: "PortConflict", Message: "port http is 8080 in the oldest export"}}},
					{Namespace: "shop", Name: "checkout", Type: "Headless",
						ExportedFrom: []ExportingCluster{{Name: "east"}, {Name: "west", Withdrawn: true}},
						ImportedInto: []string{"east", "west"},
						Conflicts:    []ExportConflict{{Cluster: "east", Reason: "TypeConflict", Message: "type is Headless in the oldest export"}}},
				},
			},
		},
		"a lease renewed in the future (clock skew) is zero old": {
			in: statusInputs{
				clusters: causewayv1alpha1.MemberClusterList{Items: []causewayv1alpha1.MemberCluster{memberCluster("skew", "", nil)}},
				leases:   coordinationv1.LeaseList{Items: []coordinationv1.Lease{agentLease("skew", -time.Minute, "")}},
			},
			want: &Status{Clusters: []ClusterStatus{{Name: "skew", Joined: "Unknown", Healthy: "Unknown", Ready: "Unknown", LeaseAge: duration(0), AgentVersion: "v0.1.0"}}, Services: []ServiceStatus{}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tc.want.Links = []LinkStatus{} // no plans in these cases: TestBuildLinks
			got := buildStatus(&tc.in, statusNow)
			if !reflect.DeepEqual(got, tc.want) {
				g, _ := json.MarshalIndent(got, "", "  ")
				w, _ := json.MarshalIndent(tc.want, "", "  ")
				t.Errorf("got\n%s\nwant\n%s", g, w)
			}
		})
	}
}

// TestStatusJSON pins the JSON field names that scripts read.
func TestStatusJSON(t *testing.T) {
	st := Status{
		Clusters: []ClusterStatus{{Name: "a", Joined: "True", Healthy: "True", Ready: "True"}},
		Services: []ServiceStatus{{Namespace: "shop", Name: "cart", Type: "ClusterSetIP", ExportedFrom: []ExportingCluster{{Name: "a", Withdrawn: true}}, ImportedInto: []string{"a"},
			Conflicts: []ExportConflict{{Cluster: "a", Reason: "PortConflict"}}}},
		Links: []LinkStatus{
			{From: "a", To: "b", PlannedTransport: "QUIC", State: "up", ReportedBy: "a", Gateways: 1, Transport: "quic", RTT: duration(1200 * time.Microsecond),
				OpenStreams: 3, BytesSent: 123, BytesReceived: 456, ReportAge: duration(5 * time.Second)},
			{From: "a", To: "c", State: "unknown", Detail: "a: no link report"},
		},
		Warnings: []string{"w"},
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"clusters":[{"name":"a","joined":"True","healthy":"True","ready":"True","leaseAge":null,"exports":0,"imports":0}],` +
		`"services":[{"namespace":"shop","name":"cart","type":"ClusterSetIP","exportedFrom":[{"name":"a","withdrawn":true}],"importedInto":["a"],"conflicts":[{"cluster":"a","reason":"PortConflict"}]}],` +
		`"links":[{"from":"a","to":"b","plannedTransport":"QUIC","state":"up","reportedBy":"a","gateways":1,"transport":"quic","rtt":"1.2ms",` +
		`"openStreams":3,"bytesSent":123,"bytesReceived":456,"reportAge":"5s"},` +
		`{"from":"a","to":"c","state":"unknown","openStreams":0,"bytesSent":0,"bytesReceived":0,"detail":"a: no link report"}],"warnings":["w"]}`
	if string(b) != want {
		t.Errorf("JSON\n got %s\nwant %s", b, want)
	}
}

// TestGetStatus reads hand-made hub objects from a real API server, as the
// hub and the agents would have written them.
func TestGetStatus(t *testing.T) {
	ctx := testContext(t)
	hub := clientFor(t, hubCluster)
	create := func(obj client.Object) {
		t.Helper()
		status := obj.DeepCopyObject().(client.Object)
		if err := client.IgnoreAlreadyExists(hub.Create(ctx, obj)); err != nil {
			t.Fatalf("create %s: %v", describe(obj), err)
		}
		if _, isNS := obj.(*corev1.Namespace); !isNS { // envtest never finalizes a deleted namespace
			t.Cleanup(func() { _ = hub.Delete(context.WithoutCancel(ctx), obj) })
		}
		switch s := status.(type) {
		case *causewayv1alpha1.MemberCluster:
			s.ResourceVersion = obj.GetResourceVersion()
			if err := hub.Status().Update(ctx, s); err != nil {
				t.Fatalf("status of %s: %v", describe(obj), err)
			}
		case *causewayv1alpha1.ExportRecord:
			s.ResourceVersion = obj.GetResourceVersion()
			if err := hub.Status().Update(ctx, s); err != nil {
				t.Fatalf("status of %s: %v", describe(obj), err)
			}
		}
	}
	for _, ns := range []string{causewayv1alpha1.SystemNamespace, "causeway-member-st-east", "causeway-member-st-west"} {
		create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	east := memberCluster("st-east", "us-east-1", map[string]metav1.ConditionStatus{"Joined": "True", "Healthy": "True", "Ready": "True"})
	west := memberCluster("st-west", "us-west-2", nil)
	create(&east)
	create(&west)
	renewed := time.Now().Add(-90 * time.Second)
	lease := agentLease("st-east", 0, "st-shop")
	lease.Spec.RenewTime = &metav1.MicroTime{Time: renewed}
	create(&lease)
	r1 := conflicted(exportRecord("st-east", "st-shop", "cart"), metav1.ConditionFalse, "NoConflicts", "")
	r2 := conflicted(exportRecord("st-west", "st-shop", "cart"), metav1.ConditionTrue, "PortConflict", "port http differs")
	create(&r1)
	create(&r2)
	gs := globalService("st-shop", "cart", causewayv1alpha1.ServiceTypeClusterSetIP,
		causewayv1alpha1.GlobalServiceCluster{Name: "st-east"}, causewayv1alpha1.GlobalServiceCluster{Name: "st-west", Withdrawn: true})
	create(&gs)

	clk := clocktesting.NewFakePassiveClock(renewed.Add(90 * time.Second))
	st, err := getStatus(ctx, hubCluster.config(), clk)
	if err != nil {
		t.Fatal(err)
	}
	var clusters []ClusterStatus
	for _, c := range st.Clusters {
		if strings.HasPrefix(c.Name, "st-") {
			clusters = append(clusters, c)
		}
	}
	wantClusters := []ClusterStatus{
		{Name: "st-east", Region: "us-east-1", Joined: "True", Healthy: "True", Ready: "True", LeaseAge: duration(90 * time.Second), AgentVersion: "v0.1.0", Exports: 1, Imports: 1},
		{Name: "st-west", Region: "us-west-2", Joined: "Unknown", Healthy: "Unknown", Ready: "Unknown", Exports: 1},
	}
	if !reflect.DeepEqual(clusters, wantClusters) {
		t.Errorf("clusters:\n got %+v\nwant %+v", clusters, wantClusters)
	}
	var svc *ServiceStatus
	for i := range st.Services {
		if st.Services[i].Namespace == "st-shop" {
			svc = &st.Services[i]
		}
	}
	wantSvc := &ServiceStatus{
		Namespace: "st-shop", Name: "cart", Type: "ClusterSetIP",
		ExportedFrom: []ExportingCluster{{Name: "st-east"}, {Name: "st-west", Withdrawn: true}},
		ImportedInto: []string{"st-east"},
		Conflicts:    []ExportConflict{{Cluster: "st-west", Reason: "PortConflict", Message: "port http differs"}},
	}
	if !reflect.DeepEqual(svc, wantSvc) {
		t.Errorf("service st-shop/cart:\n got %+v\nwant %+v", svc, wantSvc)
	}
}

// configMap is a hub ConfigMap of a member's namespace with one key.
func configMap(member, name, key, value string) corev1.ConfigMap {
	return corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: causewayv1alpha1.MemberNamespace(member), Name: name},
		Data:       map[string]string{key: value},
	}
}

func linkPlan(member, plan string) corev1.ConfigMap {
	return configMap(member, linkplan.ConfigMapName, linkplan.ConfigMapKey, plan)
}

// linkReport is a member's link status written age before statusNow.
func linkReport(t *testing.T, member string, age time.Duration, gateways ...linkapi.GatewayReport) corev1.ConfigMap {
	t.Helper()
	b, err := json.Marshal(linkapi.Status{Cluster: member, Updated: statusNow.Add(-age), Gateways: gateways})
	if err != nil {
		t.Fatal(err)
	}
	return configMap(member, linkapi.StatusConfigMap, linkapi.StatusKey, string(b))
}

func gw(node string, links ...linkapi.Link) linkapi.GatewayReport {
	return linkapi.GatewayReport{Node: node, Admin: "10.0.0.1:15000", Links: links}
}

func dial(peer, state, transport string, rttMs float64, streams int64, sent, received uint64, lastErr string) linkapi.Link {
	return linkapi.Link{Peer: peer, Role: linkapi.RoleDial, State: state, Transport: transport, RTTSeconds: rttMs / 1000,
		OpenStreams: streams, BytesSent: sent, BytesReceived: received, LastError: lastErr}
}

func accept(peer, state, transport string, sent, received uint64) linkapi.Link {
	return linkapi.Link{Peer: peer, Role: linkapi.RoleAccept, State: state, Transport: transport, BytesSent: sent, BytesReceived: received}
}

// TestBuildLinks covers how each planned link's row is chosen from both
// ends' reports.
func TestBuildLinks(t *testing.T) {
	in := statusInputs{}
	in.linkPlans.Items = []corev1.ConfigMap{
		linkPlan("a", `{"cluster":"a","peers":[{"cluster":"b","role":"dial","addresses":["10.2.0.1:15443"],"transport":"QUIC"},`+
			`{"cluster":"c","role":"accept","transport":"TCP"},{"cluster":"d","role":"dial","addresses":["10.4.0.1:15443"],"transport":"QUIC"},`+
			`{"cluster":"f","role":"accept","transport":"QUIC"},{"cluster":"g","role":"accept","transport":"QUIC"}]}`),
		linkPlan("b", `{"cluster":"b","peers":[{"cluster":"a","role":"accept","transport":"QUIC"}]}`),
		linkPlan("c", `{"cluster":"c","peers":[{"cluster":"a","role":"dial","addresses":["10.1.0.1:15443"],"transport":"TCP"}]}`),
		// e's plan names a, a's does not name e (the hub has not got
		// round to a yet): the link is listed from e's.
		linkPlan("e", `{"cluster":"e","peers":[{"cluster":"a","role":"dial","addresses":["10.1.0.1:15443"],"transport":"QUIC"}]}`),
		linkPlan("f", `{"cluster":"f","peers":[{"cluster":"a","role":"dial","addresses":["10.1.0.1:15443"],"transport":"QUIC"}]}`),
		linkPlan("g", `{"cluster":"g","peers":[{"cluster":"a","role":"dial","addresses":["10.1.0.1:15443"],"transport":"QUIC"}]}`),
		linkPlan("h", `{"cluster":"h","peers":[{"cluster":"a","role":"both"}]}`),
		linkPlan("i", `{"cluster":"a","peers":[]}`),
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: linkplan.ConfigMapName}}, // not a member's: ignored
	}
	in.linkStatuses.Items = []corev1.ConfigMap{
		linkReport(t, "a", 3*time.Second,
			gw("gw-a1", dial("b", "up", "quic", 1, 2, 100, 200, ""), accept("c", "up", "tcp", 5, 7)),
			gw("gw-a2", dial("b", "up", "quic", 3, 1, 10, 20, "")),
		),
		linkReport(t, "c", 2*time.Minute, gw("gw-c", dial("a", "down", "tcp", 0, 0, 1, 1, "old error"))),
		linkReport(t, "e", time.Second, linkapi.GatewayReport{Node: "gw-e", Admin: "10.5.0.1:15000", Error: "GET http://10.5.0.1:15000/links: connection refused", Links: []linkapi.Link{}}),
		linkReport(t, "f", time.Second,
			gw("gw-f1", dial("a", "up", "quic", 2, 4, 40, 41, "")),
			gw("gw-f2", dial("a", "connecting", "", 0, 0, 0, 0, "handshake timeout")),
			linkapi.GatewayReport{Node: "gw-f3", Error: "HTTP 503 Service Unavailable", Links: []linkapi.Link{}},
		),
		linkReport(t, "g", 5*time.Minute, gw("gw-g", dial("a", "up", "tcp", 9, 1, 900, 901, ""))),
		configMap("j", linkapi.StatusConfigMap, linkapi.StatusKey, `{"cluster":"j"`),
	}
	links, warnings := buildLinks(&in, statusNow)
	want := []LinkStatus{
		{From: "a", To: "b", PlannedTransport: "QUIC", State: "up", ReportedBy: "a", Gateways: 2, Transport: "quic",
			RTT: duration(3 * time.Millisecond), OpenStreams: 3, BytesSent: 110, BytesReceived: 220, ReportAge: duration(3 * time.Second)},
		{From: "a", To: "d", PlannedTransport: "QUIC", State: "unknown", Detail: "a: its gateways do not list the link; d: no link report"},
		// c's report is old: a's (the acceptor's) is used, bytes seen
		// from c.
		{From: "c", To: "a", PlannedTransport: "TCP", State: "up", ReportedBy: "a", Gateways: 1, Transport: "tcp",
			BytesSent: 7, BytesReceived: 5, Detail: "c: report 2m old", ReportAge: duration(3 * time.Second)},
		{From: "e", To: "a", PlannedTransport: "QUIC", State: "unknown",
			Detail: "e: gateway gw-e: GET http://10.5.0.1:15000/links: connection refused; a: its gateways do not list the link"},
		{From: "f", To: "a", PlannedTransport: "QUIC", State: "degraded", ReportedBy: "f", Gateways: 2, Transport: "quic",
			RTT: duration(2 * time.Millisecond), OpenStreams: 4, BytesSent: 40, BytesReceived: 41, LastError: "handshake timeout",
			Detail: "gateway gw-f3: HTTP 503 Service Unavailable", ReportAge: duration(time.Second)},
		// Only an old report: its values, marked stale.
		{From: "g", To: "a", PlannedTransport: "QUIC", State: "stale", ReportedBy: "g", Gateways: 1, Transport: "tcp",
			RTT: duration(9 * time.Millisecond), OpenStreams: 1, BytesSent: 900, BytesReceived: 901,
			Detail: "g: report 5m old; a: its gateways do not list the link", ReportAge: duration(5 * time.Minute)},
	}
	if g, w := mustJSON(t, links), mustJSON(t, want); g != w {
		t.Errorf("links\n got %s\nwant %s", g, w)
	}
	wantWarnings := []string{
		`ConfigMap causeway-member-h/causeway-link-plan: link plan of h: peers[0]:`,
		`ConfigMap causeway-member-i/causeway-link-plan: it is the plan of cluster "a"`,
		`ConfigMap causeway-member-j/causeway-link-status: decode link status: unexpected end of JSON input`,
	}
	slices.Sort(warnings)
	if len(warnings) != len(wantWarnings) {
		t.Fatalf("warnings %q", warnings)
	}
	for i, w := range wantWarnings {
		if !strings.HasPrefix(warnings[i], w) {
			t.Errorf("warning %q, want it to start with %q", warnings[i], w)
		}
	}
}

func TestLinkStates(t *testing.T) {
	plan := []corev1.ConfigMap{linkPlan("a", `{"cluster":"a","peers":[{"cluster":"b","role":"dial","addresses":["10.2.0.1:15443"],"transport":"TCP"}]}`)}
	cases := map[string]struct {
		reports    []corev1.ConfigMap
		state      string
		detail     string
		reportedBy string
	}{
		"no reports":                {state: "unknown", detail: "a: no link report; b: no link report"},
		"dialer without gateways":   {reports: []corev1.ConfigMap{linkReport(t, "a", 0)}, state: "unknown", detail: "a: no gateway; b: no link report"},
		"connecting":                {reports: []corev1.ConfigMap{linkReport(t, "a", 0, gw("g", dial("b", "connecting", "", 0, 0, 0, 0, "")))}, state: "connecting"},
		"down on every gateway":     {reports: []corev1.ConfigMap{linkReport(t, "a", 0, gw("g1", dial("b", "down", "", 0, 0, 0, 0, "refused")), gw("g2", dial("b", "connecting", "", 0, 0, 0, 0, "")))}, state: "connecting"},
		"down":                      {reports: []corev1.ConfigMap{linkReport(t, "a", 0, gw("g1", dial("b", "down", "", 0, 0, 0, 0, "refused")))}, state: "down"},
		"exactly at the stale age":  {reports: []corev1.ConfigMap{linkReport(t, "a", LinkReportStaleAfter, gw("g", dial("b", "up", "tcp", 1, 0, 0, 0, "")))}, state: "up"},
		"just past the stale age":   {reports: []corev1.ConfigMap{linkReport(t, "a", LinkReportStaleAfter+time.Second, gw("g", dial("b", "up", "tcp", 1, 0, 0, 0, "")))}, state: "stale", detail: "a: report 1m old; b: no link report"},
		"report from the future":    {reports: []corev1.ConfigMap{linkReport(t, "a", -time.Hour, gw("g", dial("b", "up", "tcp", 1, 0, 0, 0, "")))}, state: "up"},
		"the newer of two stale":    {reports: []corev1.ConfigMap{linkReport(t, "a", 10*time.Minute, gw("g", dial("b", "down", "", 0, 0, 0, 0, ""))), linkReport(t, "b", 2*time.Minute, gw("g", accept("a", "up", "tcp", 0, 0)))}, state: "stale", detail: "a: report 10m old; b: report 2m old", reportedBy: "b"},
		"acceptor lists it as dial": {reports: []corev1.ConfigMap{linkReport(t, "b", 0, gw("g", dial("a", "up", "tcp", 0, 0, 0, 0, "")))}, state: "unknown", detail: "a: no link report; b: its gateways do not list the link"},
	}
	for name, tc := range cases {
		in := statusInputs{}
		in.linkPlans.Items, in.linkStatuses.Items = plan, tc.reports
		links, warnings := buildLinks(&in, statusNow)
		if len(links) != 1 || len(warnings) != 0 {
			t.Fatalf("%s: links %+v, warnings %q", name, links, warnings)
		}
		if l := links[0]; l.State != tc.state || l.Detail != tc.detail || (tc.reportedBy != "" && l.ReportedBy != tc.reportedBy) {
			t.Errorf("%s: state %q detail %q reported by %q, want %q, %q and %q", name, l.State, l.Detail, l.ReportedBy, tc.state, tc.detail, tc.reportedBy)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestGetStatusLinks reads link plans and reports from a real API server,
// as the hub and the agents write them, and degrades to a warning for a
// user who may not read ConfigMaps.
func TestGetStatusLinks(t *testing.T) {
	ctx := testContext(t)
	hub := clientFor(t, hubCluster)
	for _, ns := range []string{"causeway-member-lk-east", "causeway-member-lk-west"} {
		if err := client.IgnoreAlreadyExists(hub.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})); err != nil {
			t.Fatal(err)
		}
	}
	eastReport := linkReport(t, "lk-east", 0, gw("gw-east", dial("lk-west", "up", "quic", 1.5, 2, 1000, 2000, "")))
	westReport := linkReport(t, "lk-west", 0, gw("gw-west", accept("lk-east", "up", "quic", 1999, 999)))
	for _, cm := range []corev1.ConfigMap{
		linkPlan("lk-east", `{"cluster":"lk-east","peers":[{"cluster":"lk-west","role":"dial","addresses":["10.2.0.1:15443"],"transport":"QUIC"}]}`),
		linkPlan("lk-west", `{"cluster":"lk-west","peers":[{"cluster":"lk-east","role":"accept","transport":"QUIC"}]}`),
		eastReport, westReport,
		configMap("lk-west", "unrelated", "plan.json", "{"), // another name: not read
	} {
		if err := hub.Create(ctx, &cm); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = hub.Delete(context.WithoutCancel(ctx), &cm) })
	}

	st, err := getStatus(ctx, hubCluster.config(), clocktesting.NewFakePassiveClock(statusNow.Add(10*time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	var got []LinkStatus
	for _, l := range st.Links {
		if strings.HasPrefix(l.From, "lk-") {
			got = append(got, l)
		}
	}
	want := []LinkStatus{{From: "lk-east", To: "lk-west", PlannedTransport: "QUIC", State: "up", ReportedBy: "lk-east", Gateways: 1, Transport: "quic",
		RTT: duration(1500 * time.Microsecond), OpenStreams: 2, BytesSent: 1000, BytesReceived: 2000, ReportAge: duration(10 * time.Second)}}
	if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
		t.Errorf("links\n got %s\nwant %s", g, w)
	}
	for _, w := range st.Warnings {
		if strings.Contains(w, "lk-") {
			t.Errorf("warning %q", w)
		}
	}

	// Both reports old: stale, the dialer's values (equally old).
	st, err = getStatus(ctx, hubCluster.config(), clocktesting.NewFakePassiveClock(statusNow.Add(LinkReportStaleAfter+time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range st.Links {
		if l.From == "lk-east" && (l.State != "stale" || l.ReportedBy != "lk-east" || l.BytesSent != 1000 || l.Detail != "lk-east: report 1m old; lk-west: report 1m old") {
			t.Errorf("both reports old: %+v", l)
		}
	}
	// The dialer's agent stopped reporting, the acceptor's did not: the
	// acceptor's report is used, bytes seen from the dialer.
	westReport.Data[linkapi.StatusKey] = strings.Replace(westReport.Data[linkapi.StatusKey], statusNow.Format(time.RFC3339), statusNow.Add(time.Minute).Format(time.RFC3339), 1)
	if err := hub.Update(ctx, &westReport); err != nil {
		t.Fatal(err)
	}
	st, err = getStatus(ctx, hubCluster.config(), clocktesting.NewFakePassiveClock(statusNow.Add(LinkReportStaleAfter+time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range st.Links {
		if l.From == "lk-east" {
			found = true
			if l.State != "up" || l.ReportedBy != "lk-west" || l.BytesSent != 999 || l.BytesReceived != 1999 || l.Detail != "lk-east: report 1m old" {
				t.Errorf("fallback to the acceptor's report: %+v", l)
			}
		}
	}
	if !found {
		t.Error("the link is gone")
	}

	// A user who may read the cluster set's objects but no ConfigMap.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceDefault, Name: "status-reader"}}
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "status-reader"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{causewayv1alpha1.GroupName}, Resources: []string{"memberclusters", "exportrecords", "globalservices"}, Verbs: []string{"list"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"list"}},
	}}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "status-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "status-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: sa.Namespace, Name: sa.Name}},
	}
	for _, obj := range []client.Object{sa, role, binding} {
		if err := hub.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = hub.Delete(context.WithoutCancel(ctx), obj) })
	}
	tr := &authenticationv1.TokenRequest{}
	if err := hub.SubResource("token").Create(ctx, sa, tr); err != nil {
		t.Fatal(err)
	}
	cfg := rest.AnonymousClientConfig(hubCluster.config())
	cfg.BearerToken = tr.Status.Token
	deadline := time.Now().Add(10 * time.Second) // RBAC applies asynchronously
	for {
		st, err = getStatus(ctx, cfg, clocktesting.NewFakePassiveClock(statusNow))
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("status as a user who may not read ConfigMaps: %v", err)
	}
	if len(st.Links) != 0 || len(st.Warnings) != 2 || !strings.Contains(st.Warnings[0], "cannot read the ConfigMaps causeway-link-") {
		t.Errorf("links %+v, warnings %q", st.Links, st.Warnings)
	}
}
