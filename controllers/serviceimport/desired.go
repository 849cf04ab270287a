package serviceimport

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// LabelManagedBy marks the ServiceImports the agent owns.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	managedByValue = "causeway-agent"
)

// DesiredImport decides the ServiceImport for a GlobalService, with ip as
// its ClusterSetIP (ignored for Headless).
func DesiredImport(gs *causewayv1alpha1.GlobalService, ip netip.Addr) *mcsv1beta1.ServiceImport {
	spec := &gs.Spec
	si := &mcsv1beta1.ServiceImport{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   spec.Service.Namespace,
			Name:        spec.Service.Name,
			Labels:      map[string]string{},
			Annotations: map[string]string{},
		},
		Spec: mcsv1beta1.ServiceImportSpec{
			Type:                  mcsv1beta1.ServiceImportType(spec.Type),
			SessionAffinity:       spec.SessionAffinity,
			SessionAffinityConfig: spec.SessionAffinityConfig.DeepCopy(),
			InternalTrafficPolicy: spec.InternalTrafficPolicy,
			TrafficDistribution:   spec.TrafficDistribution,
		},
	}
	for k, v := range spec.ExportedLabels {
		si.Labels[k] = v
	}
	for k, v := range spec.ExportedAnnotations {
		si.Annotations[k] = v
	}
	si.Labels[LabelManagedBy] = managedByValue
	if len(si.Annotations) == 0 {
		si.Annotations = nil
	}
	for _, p := range spec.Ports {
		si.Spec.Ports = append(si.Spec.Ports, mcsv1beta1.ServicePort{Name: p.Name, Protocol: p.Protocol, AppProtocol: p.AppProtocol, Port: p.Port})
	}
	if spec.Type == causewayv1alpha1.ServiceTypeClusterSetIP && ip.IsValid() {
		si.Spec.IPs = []string{ip.String()}
		family := corev1.IPv4Protocol
		if ip.Is6() {
			family = corev1.IPv6Protocol
		}
		si.Spec.IPFamilies = []corev1.IPFamily{family}
	}
	hasEndpoints := false
	for _, c := range spec.Clusters {
		si.Status.Clusters = append(si.Status.Clusters, mcsv1beta1.ClusterStatus{Cluster: c.Name})
		if !c.Withdrawn && len(c.EndpointSlices) > 0 {
			hasEndpoints = true
		}
	}
	si.Status.EndpointSliceObjects = mcsv1beta1.EndpointSliceObjectsAbsent
	if hasEndpoints {
		si.Status.EndpointSliceObjects = mcsv1beta1.EndpointSliceObjectsPresent
	}
	si.Status.Conditions = []metav1.Condition{{
		Type: string(mcsv1beta1.ServiceImportConditionReady), Status: metav1.ConditionTrue,
		Reason: string(mcsv1beta1.ServiceImportReasonReady), Message: fmt.Sprintf("imported from %d cluster(s)", len(spec.Clusters)),
	}}
	return si
}

// DesiredSlices decides the EndpointSlices of an import: per source
// cluster and exported group of endpoints, one slice of the endpoints that
// take plain connections and one, labelled xdsconv.LabelTunnel=TunnelHBONE,
// of those whose pods accept HBONE tunnels (an EndpointSlice has no field
// per endpoint for it) — each only if it has endpoints, except that a group
// without endpoints still gets its plain slice. Slices are named
// deterministically, so a re-run yields the same objects. A slice is
// labelled topology.kubernetes.io/region with its source cluster's region,
// when the cluster has one. Tunnel values this version does not know count
// as plain.
func DesiredSlices(gs *causewayv1alpha1.GlobalService) []*discoveryv1.EndpointSlice {
	spec := &gs.Spec
	var out []*discoveryv1.EndpointSlice
	for _, c := range spec.Clusters {
		if c.Withdrawn {
			continue
		}
		for i, s := range c.EndpointSlices {
			var plain, hbone []causewayv1alpha1.ExportedEndpoint
			for _, e := range s.Endpoints {
				if e.Tunnel == causewayv1alpha1.EndpointTunnelHBONE {
					hbone = append(hbone, e)
				} else {
					plain = append(plain, e)
				}
			}
			if len(plain) > 0 || len(hbone) == 0 {
				out = append(out, importSlice(spec, &c, &s, sliceName(spec.Service.Name, c.Name, i), plain, false))
			}
			if len(hbone) > 0 {
				out = append(out, importSlice(spec, &c, &s, sliceName(spec.Service.Name, c.Name, i)+hboneSuffix, hbone, true))
			}
		}
	}
	return out
}

// hboneSuffix ends the names of the slices of HBONE-capable endpoints.
const hboneSuffix = ".hbone"

// importSlice is the slice named name of endpoints eps of group s of
// cluster c.
func importSlice(spec *causewayv1alpha1.GlobalServiceSpec, c *causewayv1alpha1.GlobalServiceCluster, s *causewayv1alpha1.ExportedEndpointSlice, name string, eps []causewayv1alpha1.ExportedEndpoint, hbone bool) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: spec.Service.Namespace,
			Name:      name,
			Labels: map[string]string{
				mcsv1beta1.LabelServiceName:   spec.Service.Name,
				mcsv1beta1.LabelSourceCluster: c.Name,
				discoveryv1.LabelManagedBy:    causewayv1alpha1.ManagedByAgent,
			},
		},
		AddressType: discoveryv1.AddressType(s.AddressType),
	}
	if c.Region != "" {
		// The xDS translation reads the source cluster's region here to
		// build localities; endpoints carry only zones.
		es.Labels[corev1.LabelTopologyRegion] = c.Region
	}
	if hbone {
		// The xDS translation marks these endpoints for HBONE.
		es.Labels[xdsconv.LabelTunnel] = xdsconv.TunnelHBONE
	}
	for _, p := range s.Ports {
		es.Ports = append(es.Ports, discoveryv1.EndpointPort{Name: new(p.Name), Protocol: new(p.Protocol), Port: new(p.Port), AppProtocol: p.AppProtocol})
	}
	for _, e := range eps {
		ep := discoveryv1.Endpoint{
			Addresses:  append([]string(nil), e.Addresses...),
			Conditions: discoveryv1.EndpointConditions{Ready: new(true), Serving: new(true), Terminating: new(false)},
		}
		if e.Hostname != "" {
			ep.Hostname = new(e.Hostname)
		}
		if e.Zone != "" {
			ep.Zone = new(e.Zone)
		}
		es.Endpoints = append(es.Endpoints, ep)
	}
	return es
}

// sliceName is "<service>.<cluster>.<i>" (the HBONE slice of a group adds
// hboneSuffix). Service and cluster names are DNS labels (no dots), so the
// name is a valid DNS subdomain, unique per service and source cluster, and
// never one the EndpointSlice controller generates (those have no dots).
func sliceName(service, cluster string, i int) string {
	return fmt.Sprintf("%s.%s.%d", service, cluster, i)
}
