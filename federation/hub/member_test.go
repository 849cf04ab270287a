package hub

import (
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/federation/aggregate"
)

var renewed = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func lease(renew *time.Time, seconds *int32) *coordinationv1.Lease {
	l := &coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{LeaseDurationSeconds: seconds}}
	if renew != nil {
		l.Spec.RenewTime = &metav1.MicroTime{Time: *renew}
	}
	return l
}

func TestLeaseHealth(t *testing.T) {
	tests := map[string]struct {
		lease       *coordinationv1.Lease
		grace       time.Duration
		now         time.Time
		wantHealthy bool
		wantExpires time.Time // zero: no lease to expire
	}{
		"no lease":                         {lease: nil, now: renewed},
		"lease never renewed":              {lease: lease(nil, ptr.To[int32](10)), now: renewed},
		"no duration: expires at renewal":  {lease: lease(&renewed, nil), now: renewed, wantExpires: renewed},
		"no duration, grace":               {lease: lease(&renewed, nil), grace: 5 * time.Second, now: renewed.Add(4 * time.Second), wantHealthy: true, wantExpires: renewed.Add(5 * time.Second)},
		"just renewed":                     {lease: lease(&renewed, ptr.To[int32](10)), now: renewed, wantHealthy: true, wantExpires: renewed.Add(10 * time.Second)},
		"just before expiry":               {lease: lease(&renewed, ptr.To[int32](10)), now: renewed.Add(10*time.Second - time.Nanosecond), wantHealthy: true, wantExpires: renewed.Add(10 * time.Second)},
		"exactly at expiry":                {lease: lease(&renewed, ptr.To[int32](10)), now: renewed.Add(10 * time.Second), wantExpires: renewed.Add(10 * time.Second)},
		"grace keeps it healthy":           {lease: lease(&renewed, ptr.To[int32](10)), grace: 30 * time.Second, now: renewed.Add(39 * time.Second), wantHealthy: true, wantExpires: renewed.Add(40 * time.Second)},
		"unhealthy at expiry plus grace":   {lease: lease(&renewed, ptr.To[int32](10)), grace: 30 * time.Second, now: renewed.Add(40 * time.Second), wantExpires: renewed.Add(40 * time.Second)},
		"renewal in the future is healthy": {lease: lease(&renewed, ptr.To[int32](10)), now: renewed.Add(-time.Minute), wantHealthy: true, wantExpires: renewed.Add(10 * time.Second)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h := leaseHealth(tc.lease, tc.grace, tc.now)
			if h.healthy != tc.wantHealthy || !h.expires.Equal(tc.wantExpires) {
				t.Errorf("leaseHealth = healthy %v, expires %s; want %v, %s", h.healthy, h.expires, tc.wantHealthy, tc.wantExpires)
			}
			if h.message == "" {
				t.Error("empty message")
			}
		})
	}
}

func TestSetMemberStatus(t *testing.T) {
	healthy := health{healthy: true, expires: renewed.Add(time.Minute), message: "renewed"}
	expired := health{expires: renewed, message: "expired"}
	noLease := health{message: "no lease"}
	type cond struct {
		status metav1.ConditionStatus
		reason string
	}
	tests := map[string]struct {
		joined, paused             bool
		h                          health
		wantJoined, healthy, ready cond
	}{
		"joined and healthy": {joined: true, h: healthy,
			wantJoined: cond{metav1.ConditionTrue, "NamespaceFound"}, healthy: cond{metav1.ConditionTrue, "LeaseRenewed"}, ready: cond{metav1.ConditionTrue, "Healthy"}},
		"joined, lease expired": {joined: true, h: expired,
			wantJoined: cond{metav1.ConditionTrue, "NamespaceFound"}, healthy: cond{metav1.ConditionFalse, "LeaseExpired"}, ready: cond{metav1.ConditionFalse, "LeaseExpired"}},
		"joined, no lease": {joined: true, h: noLease,
			wantJoined: cond{metav1.ConditionTrue, "NamespaceFound"}, healthy: cond{metav1.ConditionFalse, "NoLease"}, ready: cond{metav1.ConditionFalse, "NoLease"}},
		"namespace missing, healthy": {h: healthy,
			wantJoined: cond{metav1.ConditionFalse, "NamespaceMissing"}, healthy: cond{metav1.ConditionTrue, "LeaseRenewed"}, ready: cond{metav1.ConditionFalse, "NamespaceMissing"}},
		"namespace missing, no lease": {h: noLease,
			wantJoined: cond{metav1.ConditionFalse, "NamespaceMissing"}, healthy: cond{metav1.ConditionFalse, "NoLease"}, ready: cond{metav1.ConditionFalse, "NamespaceMissing"}},
		"paused and healthy": {joined: true, paused: true, h: healthy,
			wantJoined: cond{metav1.ConditionTrue, "NamespaceFound"}, healthy: cond{metav1.ConditionTrue, "LeaseRenewed"}, ready: cond{metav1.ConditionFalse, "Paused"}},
		"paused wins over a missing namespace and an expired lease": {paused: true, h: expired,
			wantJoined: cond{metav1.ConditionFalse, "NamespaceMissing"}, healthy: cond{metav1.ConditionFalse, "LeaseExpired"}, ready: cond{metav1.ConditionFalse, "Paused"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var st causewayv1alpha1.MemberClusterStatus
			setMemberStatus(&st, 3, "causeway-member-east", tc.joined, tc.paused, tc.h, memberCounts{exports: 2, imports: 1, version: "v1.2.3"})
			if st.ObservedGeneration != 3 || st.ExportCount != 2 || st.ImportCount != 1 || st.AgentVersion != "v1.2.3" {
				t.Errorf("status fields = %+v", st)
			}
			if len(st.Conditions) != 3 {
				t.Errorf("%d conditions, want 3: %+v", len(st.Conditions), st.Conditions)
			}
			for typ, want := range map[string]cond{
				causewayv1alpha1.MemberClusterJoined:  tc.wantJoined,
				causewayv1alpha1.MemberClusterHealthy: tc.healthy,
				causewayv1alpha1.MemberClusterReady:   tc.ready,
			} {
				c := meta.FindStatusCondition(st.Conditions, typ)
				if c == nil {
					t.Errorf("no %s condition", typ)
					continue
				}
				if c.Status != want.status || c.Reason != want.reason {
					t.Errorf("%s = %s/%s, want %s/%s", typ, c.Status, c.Reason, want.status, want.reason)
				}
				if c.Message == "" || c.ObservedGeneration != 3 || c.LastTransitionTime.IsZero() {
					t.Errorf("%s: message %q, observedGeneration %d, lastTransitionTime %s", typ, c.Message, c.ObservedGeneration, c.LastTransitionTime)
				}
			}
			if c := meta.FindStatusCondition(st.Conditions, causewayv1alpha1.MemberClusterJoined); !tc.joined && (!strings.Contains(c.Message, "causeway join") || !strings.Contains(c.Message, "causeway-member-east")) {
				t.Errorf("Joined message %q does not say how to fix it", c.Message)
			}
		})
	}
}

func TestSetMemberStatusTransitionTimes(t *testing.T) {
	long := metav1.NewTime(renewed.Add(-time.Hour))
	healthy := health{healthy: true, expires: renewed.Add(time.Minute), message: "renewed"}
	var st causewayv1alpha1.MemberClusterStatus
	setMemberStatus(&st, 1, "causeway-member-east", true, false, healthy, memberCounts{})
	for i := range st.Conditions {
		st.Conditions[i].LastTransitionTime = long
	}

	// Nothing changes but the generation and a message: times are kept.
	healthy.message = "renewed again"
	setMemberStatus(&st, 2, "causeway-member-east", true, false, healthy, memberCounts{})
	for _, c := range st.Conditions {
		if !c.LastTransitionTime.Equal(&long) {
			t.Errorf("%s: lastTransitionTime moved to %s without a status change", c.Type, c.LastTransitionTime)
		}
		if c.ObservedGeneration != 2 {
			t.Errorf("%s: observedGeneration %d, want 2", c.Type, c.ObservedGeneration)
		}
	}
	if c := meta.FindStatusCondition(st.Conditions, causewayv1alpha1.MemberClusterHealthy); c.Message != "renewed again" {
		t.Errorf("Healthy message = %q, want the new one", c.Message)
	}

	// The lease expires: Healthy and Ready transition, Joined does not.
	setMemberStatus(&st, 2, "causeway-member-east", true, false, health{expires: renewed, message: "expired"}, memberCounts{})
	for typ, moved := range map[string]bool{
		causewayv1alpha1.MemberClusterJoined:  false,
		causewayv1alpha1.MemberClusterHealthy: true,
		causewayv1alpha1.MemberClusterReady:   true,
	} {
		c := meta.FindStatusCondition(st.Conditions, typ)
		if got := !c.LastTransitionTime.Equal(&long); got != moved {
			t.Errorf("%s: lastTransitionTime moved = %v, want %v", typ, got, moved)
		}
	}
}

func TestConflictCondition(t *testing.T) {
	tests := map[string]struct {
		v          aggregate.Conflict
		wantStatus metav1.ConditionStatus
		wantReason string
		wantMsg    string
	}{
		"no conflict": {
			v:          aggregate.Conflict{},
			wantStatus: metav1.ConditionFalse, wantReason: string(mcsv1beta1.ServiceExportReasonNoConflicts),
			wantMsg: "the export agrees with every other export of the service",
		},
		"one reason": {
			v:          aggregate.Conflict{Reasons: []string{"PortConflict"}, Message: "ports differ"},
			wantStatus: metav1.ConditionTrue, wantReason: "PortConflict", wantMsg: "ports differ",
		},
		"several reasons are joined with commas": {
			v:          aggregate.Conflict{Reasons: []string{"PortConflict", "TypeConflict"}, Message: "both"},
			wantStatus: metav1.ConditionTrue, wantReason: "PortConflict,TypeConflict", wantMsg: "both",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := conflictCondition(tc.v, 7)
			if c.Type != causewayv1alpha1.ExportRecordConflict || c.Status != tc.wantStatus || c.Reason != tc.wantReason || c.Message != tc.wantMsg || c.ObservedGeneration != 7 {
				t.Errorf("conflictCondition = %+v, want %s/%s %q at generation 7", c, tc.wantStatus, tc.wantReason, tc.wantMsg)
			}
		})
	}
}

func TestTrustedRecords(t *testing.T) {
	deleting := metav1.NewTime(renewed)
	record := func(name, namespace, cluster string, del *metav1.Time) causewayv1alpha1.ExportRecord {
		return causewayv1alpha1.ExportRecord{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, DeletionTimestamp: del},
			Spec:       causewayv1alpha1.ExportRecordSpec{Cluster: cluster},
		}
	}
	members := map[string]aggregate.Member{"east": {Healthy: true}, "west": {}}
	tests := map[string]struct {
		records []causewayv1alpha1.ExportRecord
		want    []string
	}{
		"own namespace, known members": {
			records: []causewayv1alpha1.ExportRecord{record("a", "causeway-member-east", "east", nil), record("b", "causeway-member-west", "west", nil)},
			want:    []string{"a", "b"},
		},
		"record in another member's namespace": {
			records: []causewayv1alpha1.ExportRecord{record("a", "causeway-member-west", "east", nil), record("b", "causeway-member-west", "west", nil)},
			want:    []string{"b"},
		},
		"record in the system namespace": {
			records: []causewayv1alpha1.ExportRecord{record("a", "causeway-system", "east", nil)},
		},
		"unknown member": {
			records: []causewayv1alpha1.ExportRecord{record("a", "causeway-member-north", "north", nil), record("b", "causeway-member-east", "east", nil)},
			want:    []string{"b"},
		},
		"record being deleted": {
			records: []causewayv1alpha1.ExportRecord{record("a", "causeway-member-east", "east", &deleting), record("b", "causeway-member-west", "west", nil)},
			want:    []string{"b"},
		},
		"none": {},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, r := range trustedRecords(tc.records, members) {
				got = append(got, r.Name)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("trustedRecords = %v, want %v", got, tc.want)
			}
		})
	}
}
