package serviceexport

import (
	"cmp"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
)

// Validate decides the Valid condition of an export of svc (nil when the
// Service does not exist): the reason and a message for people.
func Validate(svc *corev1.Service) (valid bool, reason mcsv1beta1.ServiceExportConditionReason, message string) {
	switch {
	case svc == nil:
		return false, mcsv1beta1.ServiceExportReasonNoService, "no Service with this name exists in the namespace"
	case svc.DeletionTimestamp != nil:
		return false, mcsv1beta1.ServiceExportReasonNoService, "the Service is being deleted"
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		return false, mcsv1beta1.ServiceExportReasonInvalidServiceType, "a Service of type ExternalName cannot be exported (KEP-1645)"
	}
	return true, mcsv1beta1.ServiceExportReasonValid, "the Service can be exported"
}

// BuildRecord decides the ExportRecord spec for an export of svc in cluster,
// with the service's EndpointSlices. hbone tells whether a pod
// (namespace, name) accepts HBONE tunnels; its endpoints are marked
// Tunnel=HBONE. A nil hbone marks none. The result is deterministic
// (sorted), so an unchanged Service yields an identical record.
func BuildRecord(cluster string, se *mcsv1beta1.ServiceExport, svc *corev1.Service, eps []discoveryv1.EndpointSlice, hbone func(namespace, pod string) bool) causewayv1alpha1.ExportRecordSpec {
	spec := causewayv1alpha1.ExportRecordSpec{
		Cluster:                 cluster,
		Service:                 causewayv1alpha1.ServiceRef{Namespace: svc.Namespace, Name: svc.Name},
		ExportCreationTimestamp: se.CreationTimestamp,
		ServiceProperties: causewayv1alpha1.ServiceProperties{
			Type:                  causewayv1alpha1.ServiceTypeClusterSetIP,
			SessionAffinity:       svc.Spec.SessionAffinity,
			SessionAffinityConfig: svc.Spec.SessionAffinityConfig.DeepCopy(),
			InternalTrafficPolicy: svc.Spec.InternalTrafficPolicy,
			TrafficDistribution:   svc.Spec.TrafficDistribution,
			ExportedLabels:        copyMap(se.Spec.ExportedLabels),
			ExportedAnnotations:   copyMap(se.Spec.ExportedAnnotations),
		},
	}
	if spec.SessionAffinity == "" {
		spec.SessionAffinity = corev1.ServiceAffinityNone
	}
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		spec.Type = causewayv1alpha1.ServiceTypeHeadless
	}
	for _, p := range svc.Spec.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		spec.Ports = append(spec.Ports, causewayv1alpha1.ServicePort{Name: p.Name, Protocol: proto, AppProtocol: p.AppProtocol, Port: p.Port})
	}
	for _, s := range eps {
		if s.DeletionTimestamp != nil {
			continue
		}
		if s.AddressType != discoveryv1.AddressTypeIPv4 && s.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		out := causewayv1alpha1.ExportedEndpointSlice{AddressType: string(s.AddressType)}
		for _, p := range s.Ports {
			if p.Port == nil {
				continue
			}
			ep := causewayv1alpha1.EndpointPort{Port: *p.Port, AppProtocol: p.AppProtocol}
			if p.Name != nil {
				ep.Name = *p.Name
			}
			if p.Protocol != nil {
				ep.Protocol = *p.Protocol
			}
			out.Ports = append(out.Ports, ep)
		}
		slices.SortFunc(out.Ports, func(a, b causewayv1alpha1.EndpointPort) int { return cmp.Compare(a.Name, b.Name) })
		for _, e := range s.Endpoints {
			// Ready is nil for "unknown", which consumers treat as ready.
			if (e.Conditions.Ready != nil && !*e.Conditions.Ready) || len(e.Addresses) == 0 {
				continue
			}
			x := causewayv1alpha1.ExportedEndpoint{Addresses: slices.Clone(e.Addresses)}
			if e.Hostname != nil {
				x.Hostname = *e.Hostname
			}
			if e.Zone != nil {
				x.Zone = *e.Zone
			}
			if ns, pod, ok := targetPod(&s, &e); ok {
				x.TargetPod = pod
				if hbone != nil && hbone(ns, pod) {
					x.Tunnel = causewayv1alpha1.EndpointTunnelHBONE
				}
			}
			out.Endpoints = append(out.Endpoints, x)
		}
		if len(out.Endpoints) == 0 {
			continue
		}
		spec.EndpointSlices = mergeSlice(spec.EndpointSlices, out)
	}
	slices.SortFunc(spec.EndpointSlices, func(a, b causewayv1alpha1.ExportedEndpointSlice) int {
		return cmp.Or(cmp.Compare(a.AddressType, b.AddressType), cmp.Compare(portsKey(a.Ports), portsKey(b.Ports)))
	})
	return spec
}

// mergeSlice adds s to slices, joining it with a slice of the same address
// type and ports: the EndpointSlice controller may split one group of
// endpoints over several slices, and how it splits must not matter.
func mergeSlice(all []causewayv1alpha1.ExportedEndpointSlice, s causewayv1alpha1.ExportedEndpointSlice) []causewayv1alpha1.ExportedEndpointSlice {
	key := portsKey(s.Ports)
	for i := range all {
		if all[i].AddressType == s.AddressType && portsKey(all[i].Ports) == key {
			all[i].Endpoints = sortEndpoints(append(all[i].Endpoints, s.Endpoints...))
			return all
		}
	}
	s.Endpoints = sortEndpoints(s.Endpoints)
	return append(all, s)
}

// sortEndpoints orders endpoints by everything they carry and drops exact
// duplicates: the EndpointSlice API allows one address in two slices (the
// controller may list an endpoint twice while it moves it), and neither
// that nor the order of the slices may change the record.
func sortEndpoints(eps []causewayv1alpha1.ExportedEndpoint) []causewayv1alpha1.ExportedEndpoint {
	slices.SortFunc(eps, compareEndpoints)
	return slices.CompactFunc(eps, func(a, b causewayv1alpha1.ExportedEndpoint) bool { return compareEndpoints(a, b) == 0 })
}

func compareEndpoints(a, b causewayv1alpha1.ExportedEndpoint) int {
	return cmp.Or(
		slices.Compare(a.Addresses, b.Addresses),
		cmp.Compare(a.Hostname, b.Hostname),
		cmp.Compare(a.Zone, b.Zone),
		cmp.Compare(a.TargetPod, b.TargetPod),
		cmp.Compare(a.Tunnel, b.Tunnel),
	)
}

// targetPod is the namespace and name of the pod behind e, an endpoint of
// s, if there is one. A targetRef without a namespace is in the slice's.
func targetPod(s *discoveryv1.EndpointSlice, e *discoveryv1.Endpoint) (namespace, name string, ok bool) {
	if e.TargetRef == nil || e.TargetRef.Kind != "Pod" || e.TargetRef.Name == "" {
		return "", "", false
	}
	namespace = e.TargetRef.Namespace
	if namespace == "" {
		namespace = s.Namespace
	}
	return namespace, e.TargetRef.Name, true
}

func portsKey(ps []causewayv1alpha1.EndpointPort) string {
	k := ""
	for _, p := range ps {
		app := ""
		if p.AppProtocol != nil {
			app = *p.AppProtocol
		}
		k += fmt.Sprintf("%s/%s/%d/%s;", p.Name, p.Protocol, p.Port, app)
	}
	return k
}

func copyMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
