package translate

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	cachetypes "github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ktypes "k8s.io/apimachinery/pkg/types"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// targetKind tells a Service from a ServiceImport.
type targetKind int

const (
	kindService targetKind = iota
	kindServiceImport
)

func (k targetKind) String() string {
	if k == kindServiceImport {
		return "ServiceImport"
	}
	return "Service"
}

// targetKey names a Service or ServiceImport.
type targetKey struct {
	kind            targetKind
	namespace, name string
}

func (k targetKey) String() string { return k.kind.String() + " " + k.namespace + "/" + k.name }

// target is a translated Service or ServiceImport: traffic to its host and
// addresses is routed by the mesh.
type target struct {
	key  targetKey
	host string
	// vips are the service's virtual IPs (ClusterIPs or ClusterSetIPs),
	// canonical and sorted.
	vips []netip.Addr
	// ports are the TCP ports, sorted by number.
	ports []*targetPort
	// policy is the TrafficPolicy in force, if any.
	policy *causewayv1alpha1.TrafficPolicy
	// routes are the HTTPRoute and GRPCRoute rules attached, by port
	// number.
	routes map[int32][]*ruleIR
	// attached reports, by port number, whether any route is attached
	// (even one whose rules produce no Envoy route).
	attached map[int32]bool
}

// targetPort is one port of a target.
type targetPort struct {
	name     string
	number   int32
	protocol xdsconv.Protocol
	// cluster is the xDS cluster name for the port.
	cluster    string
	assignment *endpointv3.ClusterLoadAssignment
}

// port returns the target's port with the number, or nil.
func (tg *target) port(number int32) *targetPort {
	for _, p := range tg.ports {
		if p.number == number {
			return p
		}
	}
	return nil
}

// collectTargets finds the Services and ServiceImports to translate and
// builds their endpoints.
func (t *translator) collectTargets() {
	for _, es := range t.in.EndpointSlices {
		if name := es.Labels[mcsv1beta1.LabelServiceName]; name != "" {
			k := ktypes.NamespacedName{Namespace: es.Namespace, Name: name}
			t.importSlices[k] = append(t.importSlices[k], es)
		} else if name := es.Labels[discoveryv1.LabelServiceName]; name != "" {
			k := ktypes.NamespacedName{Namespace: es.Namespace, Name: name}
			t.localSlices[k] = append(t.localSlices[k], es)
		}
	}
	for _, svc := range t.in.Services {
		key := targetKey{kindService, svc.Namespace, svc.Name}
		if reason := skipService(svc); reason != "" {
			t.skipped[key] = reason
			continue
		}
		tg := &target{key: key, host: xdsconv.ServiceHost(svc.Name, svc.Namespace), vips: parseIPs(svc.Spec.ClusterIPs, svc.Spec.ClusterIP)}
		for _, p := range svc.Spec.Ports {
			if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
				continue // UDP and SCTP are not proxied.
			}
			tg.ports = append(tg.ports, &targetPort{name: p.Name, number: p.Port, protocol: xdsconv.ProtocolFor(p.AppProtocol, p.Name)})
		}
		t.addTarget(tg, t.localSlices[ktypes.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}], false)
	}
	for _, si := range t.in.ServiceImports {
		key := targetKey{kindServiceImport, si.Namespace, si.Name}
		if si.Spec.Type != mcsv1beta1.ClusterSetIP {
			t.skipped[key] = "ServiceImports of type " + string(si.Spec.Type) + " are not supported yet; only ClusterSetIP"
			continue
		}
		tg := &target{key: key, host: xdsconv.ClusterSetHost(si.Name, si.Namespace), vips: parseIPs(si.Spec.IPs, "")}
		for _, p := range si.Spec.Ports {
			if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
				continue
			}
			tg.ports = append(tg.ports, &targetPort{name: p.Name, number: p.Port, protocol: xdsconv.ProtocolFor(p.AppProtocol, p.Name)})
		}
		t.addTarget(tg, t.importSlices[ktypes.NamespacedName{Namespace: si.Namespace, Name: si.Name}], true)
	}
	slices.SortFunc(t.targets, func(a, b *target) int { return cmp.Compare(a.host, b.host) })
}

// skipService says why a Service is not translated, or "".
func skipService(svc *corev1.Service) string {
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		return "ExternalName Services are not supported yet"
	case svc.Spec.ClusterIP == corev1.ClusterIPNone:
		return "headless Services are not supported yet"
	case svc.Spec.ClusterIP == "":
		return "the Service has no cluster IP"
	}
	return ""
}

func (t *translator) addTarget(tg *target, eps []*discoveryv1.EndpointSlice, imported bool) {
	// Ports are unique by number in a valid object; keep the first of any
	// duplicate so that names stay unique.
	seen := map[int32]bool{}
	ports := tg.ports[:0]
	for _, p := range tg.ports {
		if p.number <= 0 || p.number > 65535 || seen[p.number] {
			continue
		}
		seen[p.number] = true
		p.cluster = xdsconv.ClusterName(p.number, "", tg.host)
		p.assignment = t.assignment(p, eps, imported)
		ports = append(ports, p)
	}
	slices.SortFunc(ports, func(a, b *targetPort) int { return cmp.Compare(a.number, b.number) })
	tg.ports = ports
	tg.routes = map[int32][]*ruleIR{}
	tg.attached = map[int32]bool{}
	t.targets = append(t.targets, tg)
	t.byKey[tg.key] = tg
}

// parseIPs returns the valid addresses among ips (and extra), canonical,
// deduplicated and sorted.
func parseIPs(ips []string, extra string) []netip.Addr {
	var out []netip.Addr
	for _, s := range append(slices.Clone(ips), extra) {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" || a.IsUnspecified() {
			continue
		}
		out = append(out, a.Unmap())
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// hostPort joins an address and a port the way a Host header carries them.
func hostPort(a netip.Addr, port int32) string {
	return netip.AddrPortFrom(a, uint16(port)).String()
}

// hostOnly is the address as a Host header carries it without a port.
func hostOnly(a netip.Addr) string {
	if a.Is6() {
		return "[" + a.String() + "]"
	}
	return a.String()
}

// resourceName is the xDS name of a resource.
func resourceName(r cachetypes.Resource) string { return cachev3.GetResourceName(r) }

// olderFirst orders objects by creation time, then namespace/name: the
// order the Gateway API and Causeway's policies use to break ties.
func olderFirst(a, b metav1.Object) int {
	if c := a.GetCreationTimestamp().Compare(b.GetCreationTimestamp().Time); c != 0 {
		return c
	}
	if c := cmp.Compare(a.GetNamespace(), b.GetNamespace()); c != 0 {
		return c
	}
	return cmp.Compare(a.GetName(), b.GetName())
}

// itoa formats a port number.
func itoa(n int32) string { return strconv.Itoa(int(n)) }
