// Package hub is the hub controller: it merges the members' ExportRecords
// into GlobalServices by the Multi-Cluster Services rules, reports each
// export's conflicts back on its record, tracks member health from the
// agents' leases, and plans the east-west links between the members'
// gateways.
//
// Three reconcilers run in the hub cluster's manager:
//
//   - ServiceReconciler, keyed by the service's namespace/name (not by the
//     location of any object): it gathers every ExportRecord of the service
//     (a field index) and every MemberCluster, decides the merged service
//     with aggregate.Merge (a pure function), and acts by creating, updating
//     or deleting the GlobalService and patching the records' Conflict
//     conditions — each only when it differs, so a resync after a restart
//     writes nothing.
//   - MemberClusterReconciler, keyed by cluster name: it reads the agent's
//     Lease in the member's hub namespace and sets the Joined, Healthy and
//     Ready conditions. A member is healthy until its lease's renew time
//     plus its duration plus the grace period; the reconciler requeues for
//     exactly that moment (with an injected clock, so tests need no
//     sleeping). When health changes, every service the member exports is
//     re-merged, which withdraws (or restores) its endpoints everywhere.
//   - LinkPlanReconciler, keyed by cluster name: it decides every member's
//     east-west links with linkplan.Compute (pure) and writes the member's
//     part into the ConfigMap causeway-link-plan of its hub namespace
//     (key plan.json), only when it differs. Any MemberCluster gateway
//     change wakes every member; a member's namespace appearing, or its
//     plan ConfigMap changing, wakes that member. A paused member's plan
//     is left as last written.
//
// Run also starts federation/trust's reconcilers in the same manager: they
// hold the cluster set's root CA, issue each member's intermediate CA into
// its hub namespace and publish the trust bundle.
//
// The hub holds no member credentials: agents connect to the hub and write
// only in their own namespace. Records are trusted only for their own
// namespace: a record whose spec names another cluster than its namespace's
// member is ignored.
package hub
