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

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
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
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"clusters":[{"name":"a","joined":"True","healthy":"True","ready":"True","leaseAge":null,"exports":0,"imports":0}],` +
		`"services":[{"namespace":"shop","name":"cart","type":"ClusterSetIP","exportedFrom":[{"name":"a","withdrawn":true}],"importedInto":["a"],"conflicts":[{"cluster":"a","reason":"PortConflict"}]}]}`
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
