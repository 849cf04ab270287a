package membership

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
)

// ConditionUnknown is reported for a MemberCluster condition the hub has not
// set (yet).
const ConditionUnknown = string(metav1.ConditionUnknown)

// Status is the cluster set as the hub sees it.
type Status struct {
	// Clusters are the member clusters, sorted by name.
	Clusters []ClusterStatus `json:"clusters"`
	// Services are the multi-cluster services (the hub's GlobalServices),
	// sorted by namespace and name.
	Services []ServiceStatus `json:"services"`
}

// ClusterStatus is one member cluster.
type ClusterStatus struct {
	Name   string `json:"name"`
	Region string `json:"region,omitempty"`
	Zone   string `json:"zone,omitempty"`

	// Joined, Healthy and Ready are the statuses ("True", "False" or
	// "Unknown") of the MemberCluster's conditions of those types.
	Joined  string `json:"joined"`
	Healthy string `json:"healthy"`
	Ready   string `json:"ready"`

	// LeaseAge is the time since the agent last renewed its Lease; nil if
	// the agent has never renewed one.
	LeaseAge *metav1.Duration `json:"leaseAge"`

	// AgentVersion is the version the agent records on its Lease.
	AgentVersion string `json:"agentVersion,omitempty"`

	// Exports is the number of services the cluster exports (its
	// ExportRecords on the hub).
	Exports int `json:"exports"`

	// Imports is the number of multi-cluster services the cluster imports:
	// by namespace sameness, those in the namespaces its agent reports.
	Imports int `json:"imports"`
}

// ServiceStatus is one multi-cluster service.
type ServiceStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Type      string `json:"type"`

	// ExportedFrom are the exporting clusters, sorted by name.
	ExportedFrom []ExportingCluster `json:"exportedFrom"`

	// ImportedInto are the member clusters, healthy or not, whose agent
	// reports the service's namespace, sorted.
	ImportedInto []string `json:"importedInto"`

	// Conflicts are the exports whose properties conflict with the winning
	// export's, sorted by cluster.
	Conflicts []ExportConflict `json:"conflicts,omitempty"`
}

// ExportingCluster is one cluster exporting a service.
type ExportingCluster struct {
	Name string `json:"name"`
	// Withdrawn is true when the cluster's endpoints have been withdrawn
	// because its agent stopped renewing its lease.
	Withdrawn bool `json:"withdrawn,omitempty"`
}

// ExportConflict is a True Conflict condition on a cluster's export.
type ExportConflict struct {
	Cluster string `json:"cluster"`
	Reason  string `json:"reason"`
	Message string `json:"message,omitempty"`
}

// GetStatus reads the cluster set's state from the hub: the MemberClusters
// and their agents' Leases, the ExportRecords and the GlobalServices.
func GetStatus(ctx context.Context, hub *rest.Config) (*Status, error) {
	return getStatus(ctx, hub, clock.RealClock{})
}

func getStatus(ctx context.Context, hub *rest.Config, clk clock.PassiveClock) (*Status, error) {
	c, err := newClient(hub, "hub")
	if err != nil {
		return nil, err
	}
	var in statusInputs
	if err := c.List(ctx, &in.clusters); err != nil {
		return nil, fmt.Errorf("list MemberClusters on the hub: %w", explainNoMatch(err, "MemberClusters", "hub"))
	}
	leaseByName := client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", causewayv1alpha1.AgentLeaseName)}
	if err := c.List(ctx, &in.leases, leaseByName); err != nil {
		return nil, fmt.Errorf("list the agents' Leases on the hub: %w", err)
	}
	if err := c.List(ctx, &in.records); err != nil {
		return nil, fmt.Errorf("list ExportRecords on the hub: %w", explainNoMatch(err, "ExportRecords", "hub"))
	}
	if err := c.List(ctx, &in.services, client.InNamespace(causewayv1alpha1.SystemNamespace)); err != nil {
		return nil, fmt.Errorf("list GlobalServices on the hub: %w", explainNoMatch(err, "GlobalServices", "hub"))
	}
	return buildStatus(&in, clk.Now()), nil
}

// statusInputs is everything GetStatus reads from the hub.
type statusInputs struct {
	clusters causewayv1alpha1.MemberClusterList
	leases   coordinationv1.LeaseList
	records  causewayv1alpha1.ExportRecordList
	services causewayv1alpha1.GlobalServiceList
}

// memberOf returns the member cluster whose hub namespace is ns.
func memberOf(ns string) (string, bool) {
	return strings.CutPrefix(ns, causewayv1alpha1.MemberNamespacePrefix)
}

// buildStatus summarises the hub's objects as of now.
func buildStatus(in *statusInputs, now time.Time) *Status {
	leases := map[string]*coordinationv1.Lease{}
	for i := range in.leases.Items {
		l := &in.leases.Items[i]
		if cluster, ok := memberOf(l.Namespace); ok && l.Name == causewayv1alpha1.AgentLeaseName {
			leases[cluster] = l
		}
	}
	exports := map[string]int{}
	conflicts := map[causewayv1alpha1.ServiceRef][]ExportConflict{}
	for _, r := range in.records.Items {
		cluster, ok := memberOf(r.Namespace)
		if !ok {
			continue
		}
		exports[cluster]++
		if c := meta.FindStatusCondition(r.Status.Conditions, causewayv1alpha1.ExportRecordConflict); c != nil && c.Status == metav1.ConditionTrue {
			conflicts[r.Spec.Service] = append(conflicts[r.Spec.Service], ExportConflict{Cluster: cluster, Reason: c.Reason, Message: c.Message})
		}
	}

	st := &Status{Clusters: []ClusterStatus{}, Services: []ServiceStatus{}}
	importers := map[string][]string{} // namespace → clusters
	for _, mc := range in.clusters.Items {
		cs := ClusterStatus{
			Name:    mc.Name,
			Region:  string(mc.Spec.Region),
			Zone:    string(mc.Spec.Zone),
			Joined:  conditionStatus(mc.Status.Conditions, causewayv1alpha1.MemberClusterJoined),
			Healthy: conditionStatus(mc.Status.Conditions, causewayv1alpha1.MemberClusterHealthy),
			Ready:   conditionStatus(mc.Status.Conditions, causewayv1alpha1.MemberClusterReady),
			Exports: exports[mc.Name],
		}
		if l := leases[mc.Name]; l != nil {
			if l.Spec.RenewTime != nil {
				cs.LeaseAge = &metav1.Duration{Duration: max(now.Sub(l.Spec.RenewTime.Time), 0).Truncate(time.Second)}
			}
			cs.AgentVersion = l.Annotations[causewayv1alpha1.AnnotationAgentVersion]
			for ns := range strings.SplitSeq(l.Annotations[causewayv1alpha1.AnnotationNamespaces], ",") {
				if ns = strings.TrimSpace(ns); ns != "" {
					importers[ns] = append(importers[ns], mc.Name)
				}
			}
		}
		st.Clusters = append(st.Clusters, cs)
	}

	for _, gs := range in.services.Items {
		svc := ServiceStatus{
			Namespace:    gs.Spec.Service.Namespace,
			Name:         gs.Spec.Service.Name,
			Type:         string(gs.Spec.Type),
			ExportedFrom: []ExportingCluster{},
			ImportedInto: slices.Sorted(slices.Values(importers[gs.Spec.Service.Namespace])),
			Conflicts:    conflicts[gs.Spec.Service],
		}
		if svc.ImportedInto == nil {
			svc.ImportedInto = []string{}
		}
		for _, c := range gs.Spec.Clusters {
			svc.ExportedFrom = append(svc.ExportedFrom, ExportingCluster{Name: c.Name, Withdrawn: c.Withdrawn})
		}
		slices.SortFunc(svc.ExportedFrom, func(a, b ExportingCluster) int { return cmp.Compare(a.Name, b.Name) })
		slices.SortFunc(svc.Conflicts, func(a, b ExportConflict) int { return cmp.Compare(a.Cluster, b.Cluster) })
		st.Services = append(st.Services, svc)
	}
	slices.SortFunc(st.Clusters, func(a, b ClusterStatus) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(st.Services, func(a, b ServiceStatus) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	for i := range st.Clusters {
		cs := &st.Clusters[i]
		for _, svc := range st.Services {
			if slices.Contains(svc.ImportedInto, cs.Name) {
				cs.Imports++
			}
		}
	}
	return st
}

// conditionStatus returns the status of the condition of type t, or
// "Unknown" if there is none.
func conditionStatus(conds []metav1.Condition, t string) string {
	if c := meta.FindStatusCondition(conds, t); c != nil {
		return string(c.Status)
	}
	return ConditionUnknown
}
