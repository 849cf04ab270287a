package multicluster_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"
)

func tcpPort(name string, port int32, proto corev1.Protocol) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: port, Protocol: proto}
}

// exportBoth creates svcA in east and, a little over a second later (export
// timestamps have one-second resolution), svcB in west, and exports both.
func exportBoth(t *testing.T, ctx context.Context, ns string, svcA, svcB *corev1.Service) {
	t.Helper()
	for _, m := range members {
		ensureNamespace(t, ctx, m, ns)
	}
	if _, err := kube("east").CoreV1().Services(ns).Create(ctx, svcA, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	export(t, ctx, "east", ns, svcA.Name)
	eventually(t, 20*time.Second, "first export imported in west", func(ctx context.Context) error {
		_, err := getImport(ctx, "west", ns, svcA.Name)
		return err
	})
	time.Sleep(1100 * time.Millisecond) // creationTimestamp has 1 s resolution
	if _, err := kube("west").CoreV1().Services(ns).Create(ctx, svcB, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	export(t, ctx, "west", ns, svcB.Name)
}

func importPorts(si *mcsv1beta1.ServiceImport) []string {
	var out []string
	for _, p := range si.Spec.Ports {
		out = append(out, fmt.Sprintf("%s/%d/%s", p.Name, p.Port, p.Protocol))
	}
	slices.Sort(out)
	return out
}

// TestPortConflict: ports are merged as a union; a port of the same name
// with another number is a conflict, the oldest export wins, and both
// exports carry Conflict=True with reason PortConflict.
func TestPortConflict(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	ns := uniqueNS(t)
	exportBoth(t, ctx, ns,
		svcWithPorts(ns, "pay", tcpPort("tcp", 42, corev1.ProtocolTCP), tcpPort("udp", 42, corev1.ProtocolUDP)),
		svcWithPorts(ns, "pay", tcpPort("tcp", 43, corev1.ProtocolTCP), tcpPort("stcp", 142, corev1.ProtocolSCTP)))
	for _, c := range []string{"east", "west"} {
		cond := waitExportCondition(t, c, ns, "pay", string(mcsv1beta1.ServiceExportConditionConflict), metav1.ConditionTrue, string(mcsv1beta1.ServiceExportReasonPortConflict))
		if !strings.Contains(cond.Message, `port "tcp"`) {
			t.Errorf("cluster %s: conflict message %q does not name the port", c, cond.Message)
		}
	}
	want := []string{"stcp/142/SCTP", "tcp/42/TCP", "udp/42/UDP"}
	for _, m := range members {
		eventually(t, 20*time.Second, "merged ports in "+m, func(ctx context.Context) error {
			si, err := getImport(ctx, m, ns, "pay")
			if err != nil {
				return err
			}
			if got := importPorts(si); !slices.Equal(got, want) {
				return fmt.Errorf("ports %v, want %v", got, want)
			}
			if len(si.Status.Clusters) != 2 {
				return fmt.Errorf("status.clusters %+v, want east and west", si.Status.Clusters)
			}
			return nil
		})
	}
	// The newer export goes: no conflict is left on the older one.
	unexport(t, ctx, "west", ns, "pay")
	waitExportCondition(t, "east", ns, "pay", string(mcsv1beta1.ServiceExportConditionConflict), metav1.ConditionFalse, string(mcsv1beta1.ServiceExportReasonNoConflicts))
}

// TestTypeAndAffinityConflicts: a headless export and a ClusterSetIP
// export with different session affinity conflict; the oldest (ClusterSetIP,
// ClientIP affinity) wins, and both exports say why.
func TestTypeAndAffinityConflicts(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	ns := uniqueNS(t)
	a := svcWithPorts(ns, "auth", tcpPort("http", 80, corev1.ProtocolTCP))
	a.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
	a.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: new(int32(10))}}
	b := svcWithPorts(ns, "auth", tcpPort("http", 80, corev1.ProtocolTCP))
	b.Spec.ClusterIP = corev1.ClusterIPNone
	exportBoth(t, ctx, ns, a, b)
	for _, c := range []string{"east", "west"} {
		cond := waitExportCondition(t, c, ns, "auth", string(mcsv1beta1.ServiceExportConditionConflict), metav1.ConditionTrue, "")
		for _, reason := range []mcsv1beta1.ServiceExportConditionReason{mcsv1beta1.ServiceExportReasonTypeConflict, mcsv1beta1.ServiceExportReasonSessionAffinityConflict} {
			if !strings.Contains(cond.Reason, string(reason)) {
				t.Errorf("cluster %s: Conflict reason %q lacks %s", c, cond.Reason, reason)
			}
		}
	}
	for _, m := range members {
		eventually(t, 20*time.Second, "winning properties in "+m, func(ctx context.Context) error {
			si, err := getImport(ctx, m, ns, "auth")
			if err != nil {
				return err
			}
			if si.Spec.Type != mcsv1beta1.ClusterSetIP || si.Spec.SessionAffinity != corev1.ServiceAffinityClientIP ||
				si.Spec.SessionAffinityConfig == nil || si.Spec.SessionAffinityConfig.ClientIP == nil || *si.Spec.SessionAffinityConfig.ClientIP.TimeoutSeconds != 10 {
				return fmt.Errorf("type %s affinity %s config %+v, want the oldest export's", si.Spec.Type, si.Spec.SessionAffinity, si.Spec.SessionAffinityConfig)
			}
			return nil
		})
	}
}

// TestHeadlessExport: a headless Service is imported as Headless, with no
// ClusterSetIP, and its endpoints keep their hostnames.
func TestHeadlessExport(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	ns := uniqueNS(t)
	deployEcho(t, ctx, "north", ns, "db", 2)
	for _, m := range members {
		ensureNamespace(t, ctx, m, ns)
	}
	hl := svcWithPorts(ns, "db-headless", tcpPort("http", 8080, corev1.ProtocolTCP))
	hl.Spec.Selector = map[string]string{"app": "db"}
	hl.Spec.ClusterIP = corev1.ClusterIPNone
	if _, err := kube("north").CoreV1().Services(ns).Create(ctx, hl, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want := readyEndpointIPs(t, ctx, "north", ns, "db-headless", 2)
	export(t, ctx, "north", ns, "db-headless")
	for _, m := range members {
		eventually(t, 20*time.Second, "headless import in "+m, func(ctx context.Context) error {
			si, err := getImport(ctx, m, ns, "db-headless")
			if err != nil {
				return err
			}
			if si.Spec.Type != mcsv1beta1.Headless || len(si.Spec.IPs) != 0 {
				return fmt.Errorf("type %s ips %v, want Headless without IPs", si.Spec.Type, si.Spec.IPs)
			}
			eps, err := importSlices(ctx, m, ns, "db-headless")
			if err != nil {
				return err
			}
			if !slices.Equal(eps["north"], want) {
				return fmt.Errorf("endpoints %v, want %v", eps, want)
			}
			return nil
		})
	}
}
