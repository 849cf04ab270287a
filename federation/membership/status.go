package membership

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	utilduration "k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/federation/linkplan"
	"github.com/causeway-mesh/causeway/internal/linkapi"
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
	// Links are the cluster links of the hub's link plan with their state
	// as the gateways report it, sorted by dialer and acceptor.
	Links []LinkStatus `json:"links"`
	// Warnings are hub objects that could not be used (a link plan or
	// link status that does not decode, ConfigMaps the caller may not
	// read), sorted.
	Warnings []string `json:"warnings,omitempty"`
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
// and their agents' Leases, the ExportRecords, the GlobalServices, and the
// ConfigMaps causeway-link-plan (the hub's) and causeway-link-status (the
// agents') of the members' namespaces.
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
	for _, l := range []struct {
		name string
		into *corev1.ConfigMapList
	}{{linkplan.ConfigMapName, &in.linkPlans}, {linkapi.StatusConfigMap, &in.linkStatuses}} {
		byName := client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", l.name)}
		switch err := c.List(ctx, l.into, byName); {
		case apierrors.IsForbidden(err):
			// A user who may read the cluster set but not ConfigMaps
			// still gets the rest.
			in.warnings = append(in.warnings, fmt.Sprintf("cannot read the ConfigMaps %s on the hub: %v", l.name, err))
		case err != nil:
			return nil, fmt.Errorf("list the ConfigMaps %s on the hub: %w", l.name, err)
		}
	}
	return buildStatus(&in, clk.Now()), nil
}

// statusInputs is everything GetStatus reads from the hub.
type statusInputs struct {
	clusters causewayv1alpha1.MemberClusterList
	leases   coordinationv1.LeaseList
	records  causewayv1alpha1.ExportRecordList
	services causewayv1alpha1.GlobalServiceList
	// linkPlans and linkStatuses are the ConfigMaps causeway-link-plan
	// (written by the hub) and causeway-link-status (written by each
	// member's agent) of every namespace.
	linkPlans, linkStatuses corev1.ConfigMapList
	// warnings found while reading.
	warnings []string
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
	st.Links, st.Warnings = buildLinks(in, now)
	st.Warnings = append(st.Warnings, in.warnings...)
	slices.Sort(st.Warnings)
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

// Link states of LinkStatus beyond the gateways' own (linkapi.StateUp,
// StateDown, StateConnecting).
const (
	// LinkStateDegraded: the reporting side has several gateways and the
	// link is up on some of them only.
	LinkStateDegraded = "degraded"
	// LinkStateStale: the only report of the link is older than
	// LinkReportStaleAfter; its values are the last known.
	LinkStateStale = "stale"
	// LinkStateUnknown: no gateway of either side reports the link.
	LinkStateUnknown = "unknown"
)

// LinkReportStaleAfter is the age after which a member's link report no
// longer counts as current: agents refresh it at least every 30 s while
// the member has a gateway.
const LinkReportStaleAfter = 60 * time.Second

// LinkStatus is one planned cluster link.
type LinkStatus struct {
	// From is the dialing cluster, To the accepting one.
	From string `json:"from"`
	To   string `json:"to"`
	// PlannedTransport is the link plan's transport: QUIC or TCP.
	PlannedTransport string `json:"plannedTransport,omitempty"`
	// State is up, down or connecting as the gateways report it;
	// degraded, stale or unknown as defined by the LinkState constants.
	State string `json:"state"`
	// ReportedBy is the cluster whose gateways' report the values come
	// from: From when it has a current one, else To; empty when unknown.
	ReportedBy string `json:"reportedBy,omitempty"`
	// Gateways is the number of ReportedBy's gateways that report the
	// link.
	Gateways int `json:"gateways,omitempty"`
	// Transport is the transport in use (quic or tcp); several joined by
	// commas when the gateways differ.
	Transport string `json:"transport,omitempty"`
	// RTT is the largest round-trip time among the gateways where the link
	// is up.
	RTT *metav1.Duration `json:"rtt,omitempty"`
	// OpenStreams, BytesSent and BytesReceived are summed over the
	// gateways; bytes are counted in the direction From → To (sent) and
	// To → From (received), whichever side reported.
	OpenStreams   int64  `json:"openStreams"`
	BytesSent     uint64 `json:"bytesSent"`
	BytesReceived uint64 `json:"bytesReceived"`
	// LastError is the link's last connection error as a gateway reports
	// it.
	LastError string `json:"lastError,omitempty"`
	// Detail says why the state is stale or unknown: which reports are
	// missing, old, or from gateways that could not be asked.
	Detail string `json:"detail,omitempty"`
	// ReportAge is the age of the report the values come from.
	ReportAge *metav1.Duration `json:"reportAge,omitempty"`
}

// buildLinks lists the links of every member's plan with the state their
// ends report, and the warnings about ConfigMaps that do not decode.
func buildLinks(in *statusInputs, now time.Time) ([]LinkStatus, []string) {
	var warnings []string
	type pair struct{ from, to string }
	planned := map[pair]string{} // → transport
	for _, cm := range in.linkPlans.Items {
		member, ok := memberOf(cm.Namespace)
		if !ok {
			continue
		}
		plan, err := linkplan.Parse([]byte(cm.Data[linkplan.ConfigMapKey]))
		if err == nil && plan.Cluster != member {
			err = fmt.Errorf("it is the plan of cluster %q", plan.Cluster)
		}
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("ConfigMap %s/%s: %v", cm.Namespace, cm.Name, err))
			continue
		}
		for _, peer := range plan.Peers {
			p := pair{member, peer.Cluster}
			if peer.Role != linkplan.RoleDial {
				p = pair{peer.Cluster, member}
			}
			// The dialer's entry names the transport it will try.
			if _, seen := planned[p]; !seen || peer.Role == linkplan.RoleDial {
				planned[p] = string(peer.Transport)
			}
		}
	}
	reports := map[string]*linkapi.Status{}
	for _, cm := range in.linkStatuses.Items {
		member, ok := memberOf(cm.Namespace)
		if !ok {
			continue
		}
		st, err := linkapi.DecodeStatus([]byte(cm.Data[linkapi.StatusKey]))
		if err == nil && st.Cluster != member {
			err = fmt.Errorf("it is the link status of cluster %q", st.Cluster)
		}
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("ConfigMap %s/%s: %v", cm.Namespace, cm.Name, err))
			continue
		}
		reports[member] = st
	}
	links := make([]LinkStatus, 0, len(planned))
	for p, transport := range planned {
		links = append(links, linkStatus(p.from, p.to, transport, reports, now))
	}
	slices.SortFunc(links, func(a, b LinkStatus) int { return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To)) })
	return links, warnings
}

// linkSide is one end's view of a link: the member, the peer and role its
// gateways list the link under, and whether its sent bytes go From → To.
type linkSide struct {
	member, peer, role string
	forward            bool
}

// linkStatus decides a link's row from both ends' reports, preferring the
// dialer's current one, then the acceptor's current one, then the newer
// stale one.
func linkStatus(from, to, transport string, reports map[string]*linkapi.Status, now time.Time) LinkStatus {
	ls := LinkStatus{From: from, To: to, PlannedTransport: transport, State: LinkStateUnknown}
	sides := []linkSide{{from, to, linkapi.RoleDial, true}, {to, from, linkapi.RoleAccept, false}}
	var details []string
	var stale *LinkStatus
	for _, side := range sides {
		rep := reports[side.member]
		if rep == nil {
			details = append(details, side.member+": no link report")
			continue
		}
		age := max(now.Sub(rep.Updated), 0).Truncate(time.Second)
		row, gwErrs := fromReport(ls, side, rep)
		row.ReportAge = &metav1.Duration{Duration: age}
		switch {
		case row.Gateways == 0 && len(gwErrs) > 0:
			details = append(details, side.member+": "+strings.Join(gwErrs, "; "))
		case row.Gateways == 0 && len(rep.Gateways) == 0:
			details = append(details, side.member+": no gateway")
		case row.Gateways == 0:
			details = append(details, side.member+": its gateways do not list the link")
		case age > LinkReportStaleAfter:
			details = append(details, fmt.Sprintf("%s: report %s old", side.member, utilduration.ShortHumanDuration(age)))
			if stale == nil || age < stale.ReportAge.Duration {
				stale = &row
			}
		default:
			// A fallback to the acceptor says why the dialer's report
			// was not used.
			row.Detail = strings.Join(slices.DeleteFunc(append(details, row.Detail), func(s string) bool { return s == "" }), "; ")
			return row
		}
	}
	if stale != nil {
		ls = *stale
		ls.State = LinkStateStale
	}
	ls.Detail = strings.Join(details, "; ")
	return ls
}

// fromReport sums what side's gateways report of the link into a copy of
// ls, and returns the errors of the gateways that could not be asked.
func fromReport(ls LinkStatus, side linkSide, rep *linkapi.Status) (LinkStatus, []string) {
	var gwErrs, transports []string
	states := map[string]int{}
	var rtt time.Duration
	for _, g := range rep.Gateways {
		if g.Error != "" {
			gwErrs = append(gwErrs, "gateway "+g.Node+": "+g.Error)
			continue
		}
		for _, l := range g.Links {
			if l.Peer != side.peer || l.Role != side.role {
				continue
			}
			ls.Gateways++
			states[l.State]++
			if l.Transport != "" && !slices.Contains(transports, l.Transport) {
				transports = append(transports, l.Transport)
			}
			if l.State == linkapi.StateUp {
				rtt = max(rtt, l.RTT())
			}
			ls.OpenStreams += l.OpenStreams
			if side.forward {
				ls.BytesSent += l.BytesSent
				ls.BytesReceived += l.BytesReceived
			} else {
				ls.BytesSent += l.BytesReceived
				ls.BytesReceived += l.BytesSent
			}
			if ls.LastError == "" {
				ls.LastError = l.LastError
			}
		}
	}
	if ls.Gateways == 0 {
		return ls, gwErrs
	}
	ls.ReportedBy = side.member
	slices.Sort(transports)
	ls.Transport = strings.Join(transports, ",")
	if rtt > 0 {
		ls.RTT = &metav1.Duration{Duration: rtt}
	}
	switch {
	case states[linkapi.StateUp] == ls.Gateways:
		ls.State = linkapi.StateUp
	case states[linkapi.StateUp] > 0:
		ls.State = LinkStateDegraded
	case states[linkapi.StateConnecting] > 0:
		ls.State = linkapi.StateConnecting
	default:
		ls.State = linkapi.StateDown
	}
	if len(gwErrs) > 0 {
		// Some gateways answered, others could not be asked.
		ls.Detail = strings.Join(gwErrs, "; ")
	}
	return ls, gwErrs
}
