// Package serviceimport is the agent's import controller: it realises each
// GlobalService of the hub in its member cluster as an MCS ServiceImport
// (type, union of ports, session affinity, a ClusterSetIP from the agent's
// range, status.clusters) and EndpointSlices per source cluster,
// labelled multicluster.kubernetes.io/service-name and
// multicluster.kubernetes.io/source-cluster and managed by the agent. The
// endpoints whose pods accept HBONE tunnels (ExportedEndpoint.Tunnel) are
// kept in slices of their own, labelled causeway.dev/tunnel=hbone, which
// the xDS translation turns into endpoint metadata.
//
// Namespace sameness: a service is imported only where its namespace
// exists, and appears when the namespace is created.
//
// The reconciler is keyed by the service's namespace/name; GlobalService
// events from the hub's cache, namespace events and changes to the
// ServiceImport or its slices all map to that key, so a hand edit is
// healed. Decide is pure (DesiredImport, DesiredSlices); act writes only on
// a difference. ClusterSetIPs already on ServiceImports are reserved before
// the first reconcile (Prime), so a restarted agent writes nothing.
//
// When the hub is unreachable, the hub cache keeps its last state and
// nothing is removed: traffic keeps flowing on the last realised imports.
package serviceimport
