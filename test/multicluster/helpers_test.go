package multicluster_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"
)

// eventually polls cond every 100 ms until it returns nil or the timeout
// passes; then the test fails with the last error.
func eventually(t testing.TB, timeout time.Duration, what string, cond func(ctx context.Context) error) {
	t.Helper()
	var last error
	start := time.Now()
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		last = cond(ctx)
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("%s: not true after %s: %v", what, time.Since(start).Round(time.Millisecond), last)
	}
}

// uniqueNS returns a namespace name for one test.
func uniqueNS(t testing.TB) string {
	t.Helper()
	n := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(n) > 40 {
		n = n[:40]
	}
	return strings.Trim(n, "-") + fmt.Sprintf("-%d", time.Now().UnixNano()%100000)
}

// deployEcho creates namespace ns and the echo app in cluster.
func deployEcho(t testing.TB, ctx context.Context, cluster, ns, name string, replicas int32) {
	t.Helper()
	if err := w.Cluster(cluster).CreateEchoApp(ctx, ns, name, replicas); err != nil {
		t.Fatal(err)
	}
}

func ensureNamespace(t testing.TB, ctx context.Context, cluster, ns string) {
	t.Helper()
	if err := w.Cluster(cluster).EnsureNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
}

func export(t testing.TB, ctx context.Context, cluster, ns, name string) {
	t.Helper()
	se := &mcsv1beta1.ServiceExport{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := clients[cluster].Create(ctx, se); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("cluster %s: create ServiceExport %s/%s: %v", cluster, ns, name, err)
	}
}

func unexport(t *testing.T, ctx context.Context, cluster, ns, name string) {
	t.Helper()
	se := &mcsv1beta1.ServiceExport{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := clients[cluster].Delete(ctx, se); client.IgnoreNotFound(err) != nil {
		t.Fatalf("cluster %s: delete ServiceExport %s/%s: %v", cluster, ns, name, err)
	}
}

func getImport(ctx context.Context, cluster, ns, name string) (*mcsv1beta1.ServiceImport, error) {
	var si mcsv1beta1.ServiceImport
	if err := clients[cluster].Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &si); err != nil {
		return nil, fmt.Errorf("cluster %s: get ServiceImport %s/%s: %w", cluster, ns, name, err)
	}
	return &si, nil
}

// importSlices returns the MCS EndpointSlices of ns/name in cluster, by
// source cluster: the sorted ready addresses.
func importSlices(ctx context.Context, cluster, ns, name string) (map[string][]string, error) {
	var list discoveryv1.EndpointSliceList
	if err := clients[cluster].List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{mcsv1beta1.LabelServiceName: name}); err != nil {
		return nil, fmt.Errorf("cluster %s: list EndpointSlices: %w", cluster, err)
	}
	out := map[string][]string{}
	for _, s := range list.Items {
		src := s.Labels[mcsv1beta1.LabelSourceCluster]
		for _, ep := range s.Endpoints {
			out[src] = append(out[src], ep.Addresses...)
		}
	}
	for k := range out {
		sort.Strings(out[k])
	}
	return out, nil
}

// readyEndpointIPs returns the ready endpoint IPs of a local Service.
func readyEndpointIPs(t testing.TB, ctx context.Context, cluster, ns, name string, n int) []string {
	t.Helper()
	eps, err := w.Cluster(cluster).WaitReadyEndpoints(ctx, ns, name, n, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ips := make([]string, len(eps))
	for i, e := range eps {
		ips[i] = e.IP
	}
	sort.Strings(ips)
	return ips
}

func exportCondition(ctx context.Context, cluster, ns, name, condType string) (*metav1.Condition, error) {
	var se mcsv1beta1.ServiceExport
	if err := clients[cluster].Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &se); err != nil {
		return nil, fmt.Errorf("cluster %s: get ServiceExport: %w", cluster, err)
	}
	c := meta.FindStatusCondition(se.Status.Conditions, condType)
	if c == nil {
		return nil, fmt.Errorf("cluster %s: ServiceExport %s/%s has no %s condition yet (conditions: %+v)", cluster, ns, name, condType, se.Status.Conditions)
	}
	return c, nil
}

func waitExportCondition(t *testing.T, cluster, ns, name, condType string, status metav1.ConditionStatus, reason string) *metav1.Condition {
	t.Helper()
	var got *metav1.Condition
	eventually(t, 20*time.Second, fmt.Sprintf("cluster %s: ServiceExport %s/%s %s=%s (%s)", cluster, ns, name, condType, status, reason), func(ctx context.Context) error {
		c, err := exportCondition(ctx, cluster, ns, name, condType)
		if err != nil {
			return err
		}
		if c.Status != status || (reason != "" && c.Reason != reason) {
			return fmt.Errorf("%s=%s reason %s: %s", condType, c.Status, c.Reason, c.Message)
		}
		got = c
		return nil
	})
	return got
}

func svcWithPorts(ns, name string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: ports},
	}
}
