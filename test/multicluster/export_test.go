package multicluster_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/causeway-mesh/causeway/controllers/agent"
)

// TestExportImportRoundTrip: a Service exported in east appears in every
// member where its namespace exists (east included) as a ClusterSetIP
// ServiceImport with the Service's ports and an allocated IP, and an
// EndpointSlice from east listing east's ready pods; unexporting removes it
// everywhere.
func TestExportImportRoundTrip(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	ns := uniqueNS(t)
	deployEcho(t, ctx, "east", ns, "checkout", 2)
	for _, m := range members {
		ensureNamespace(t, ctx, m, ns)
	}
	want := readyEndpointIPs(t, ctx, "east", ns, "checkout", 2)
	start := time.Now()
	export(t, ctx, "east", ns, "checkout")

	ipRange := netip.MustParsePrefix(agent.DefaultClusterSetIPRange)
	for _, m := range members {
		eventually(t, 20*time.Second, "import of checkout in "+m, func(ctx context.Context) error {
			si, err := getImport(ctx, m, ns, "checkout")
			if err != nil {
				return err
			}
			if si.Spec.Type != mcsv1beta1.ClusterSetIP {
				return fmt.Errorf("type %s", si.Spec.Type)
			}
			if len(si.Spec.IPs) != 1 || !ipRange.Contains(netip.MustParseAddr(si.Spec.IPs[0])) {
				return fmt.Errorf("ips %v, want one in %s", si.Spec.IPs, ipRange)
			}
			var names []string
			for _, p := range si.Spec.Ports {
				names = append(names, fmt.Sprintf("%s/%d/%s", p.Name, p.Port, p.Protocol))
			}
			slices.Sort(names)
			if !slices.Equal(names, []string{"grpc/9090/TCP", "http/8080/TCP", "tcp-echo/7070/TCP"}) {
				return fmt.Errorf("ports %v", names)
			}
			if len(si.Status.Clusters) != 1 || si.Status.Clusters[0].Cluster != "east" {
				return fmt.Errorf("status.clusters %+v", si.Status.Clusters)
			}
			eps, err := importSlices(ctx, m, ns, "checkout")
			if err != nil {
				return err
			}
			if len(eps) != 1 || !slices.Equal(eps["east"], want) {
				return fmt.Errorf("endpoints by source cluster %v, want east: %v", eps, want)
			}
			return nil
		})
	}
	t.Logf("imported in %d members %s after the export", len(members), time.Since(start).Round(time.Millisecond))
	waitExportCondition(t, "east", ns, "checkout", string(mcsv1beta1.ServiceExportConditionValid), metav1.ConditionTrue, string(mcsv1beta1.ServiceExportReasonValid))
	waitExportCondition(t, "east", ns, "checkout", string(mcsv1beta1.ServiceExportConditionReady), metav1.ConditionTrue, string(mcsv1beta1.ServiceExportReasonExported))
	waitExportCondition(t, "east", ns, "checkout", string(mcsv1beta1.ServiceExportConditionConflict), metav1.ConditionFalse, string(mcsv1beta1.ServiceExportReasonNoConflicts))

	// Scale up in east: the new endpoint reaches every member.
	dep, err := kube("east").AppsV1().Deployments(ns).Get(ctx, "checkout", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dep.Spec.Replicas = new(int32(3))
	if _, err := kube("east").AppsV1().Deployments(ns).Update(ctx, dep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	want = readyEndpointIPs(t, ctx, "east", ns, "checkout", 3)
	for _, m := range members {
		eventually(t, 20*time.Second, "3 endpoints in "+m, func(ctx context.Context) error {
			eps, err := importSlices(ctx, m, ns, "checkout")
			if err != nil {
				return err
			}
			if !slices.Equal(eps["east"], want) {
				return fmt.Errorf("endpoints %v, want %v", eps["east"], want)
			}
			return nil
		})
	}

	unexport(t, ctx, "east", ns, "checkout")
	for _, m := range members {
		eventually(t, 20*time.Second, "import of checkout gone from "+m, func(ctx context.Context) error {
			if _, err := getImport(ctx, m, ns, "checkout"); !apierrors.IsNotFound(err) {
				return fmt.Errorf("still there (err=%w)", err)
			}
			eps, err := importSlices(ctx, m, ns, "checkout")
			if err != nil {
				return err
			}
			if len(eps) != 0 {
				return fmt.Errorf("EndpointSlices left: %v", eps)
			}
			return nil
		})
	}
}

// TestNamespaceSameness: no import where the namespace is missing; it
// appears when the namespace is created.
func TestNamespaceSameness(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	ns := uniqueNS(t)
	deployEcho(t, ctx, "west", ns, "catalog", 1)
	export(t, ctx, "west", ns, "catalog")
	eventually(t, 20*time.Second, "import in west", func(ctx context.Context) error {
		_, err := getImport(ctx, "west", ns, "catalog")
		return err
	})
	// north has no such namespace: nothing may appear there.
	if _, err := kube("north").CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("namespace %s unexpectedly exists in north: %v", ns, err)
	}
	ensureNamespace(t, ctx, "north", ns)
	eventually(t, 20*time.Second, "import in north once the namespace exists", func(ctx context.Context) error {
		_, err := getImport(ctx, "north", ns, "catalog")
		return err
	})
}

// TestInvalidExports: an export of a missing Service and of an
// ExternalName Service get Valid=False with the mcs-api reasons and are not
// imported anywhere; creating the Service later makes the first valid.
func TestInvalidExports(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	ns := uniqueNS(t)
	for _, m := range members {
		ensureNamespace(t, ctx, m, ns)
	}
	ext := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "external"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"},
	}
	if _, err := kube("east").CoreV1().Services(ns).Create(ctx, ext, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	export(t, ctx, "east", ns, "external")
	export(t, ctx, "east", ns, "missing")
	waitExportCondition(t, "east", ns, "external", string(mcsv1beta1.ServiceExportConditionValid), metav1.ConditionFalse, string(mcsv1beta1.ServiceExportReasonInvalidServiceType))
	waitExportCondition(t, "east", ns, "missing", string(mcsv1beta1.ServiceExportConditionValid), metav1.ConditionFalse, string(mcsv1beta1.ServiceExportReasonNoService))
	// Neither may be imported anywhere, for a while.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range members {
			for _, name := range []string{"external", "missing"} {
				if _, err := getImport(ctx, m, ns, name); !apierrors.IsNotFound(err) {
					t.Fatalf("invalid export %s imported in %s (err=%v)", name, m, err)
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The Service appears: the export becomes valid and is imported.
	deployEcho(t, ctx, "east", ns, "missing", 1)
	waitExportCondition(t, "east", ns, "missing", string(mcsv1beta1.ServiceExportConditionValid), metav1.ConditionTrue, "")
	eventually(t, 20*time.Second, "import of the now-valid export in north", func(ctx context.Context) error {
		_, err := getImport(ctx, "north", ns, "missing")
		return err
	})
}
