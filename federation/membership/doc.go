// Package membership joins Kubernetes clusters to a Causeway hub, removes
// them again, and reports the cluster set's state: the logic behind
// `causeway join`, `causeway unjoin` and `causeway status`.
//
// # Usage
//
//	err := membership.Join(ctx, membership.JoinOptions{
//		Name: "eu-1", Region: "eu-west-1",
//		Hub: hubConfig, Member: memberConfig, // admin access to both
//	})
//	st, err := membership.GetStatus(ctx, hubConfig)
//	err = membership.Unjoin(ctx, hubConfig, memberConfig, "eu-1")
//
// # What a join creates
//
// On the hub: the MemberCluster (its locality and, with gateway
// addresses, how other clusters reach its east-west gateway), the
// member's namespace causeway-member-<name> (labelled
// causeway.dev/cluster=<name>), a ServiceAccount there whose Role allows
// exactly the agent's work in that namespace (ExportRecords, the health
// Lease, and reading the Secret in which the hub issues the member's
// intermediate CA and the ConfigMap in which it writes its gateway's link
// plan, and writing the ConfigMap causeway-link-status, where the agent
// reports its links), and a RoleBinding in causeway-system that lets it
// read GlobalServices. In the member: the
// Secret causeway-system/causeway-hub holding a kubeconfig for that
// ServiceAccount, and the KEP-2149 ClusterProperties cluster.clusterset.k8s.io
// (the name) and clusterset.k8s.io (the cluster set).
//
// Credentials flow one way only: the member receives a token for the hub,
// and the hub never stores anything that grants access to a member. The
// token comes from the TokenRequest API, bound to the ServiceAccount, so
// deleting the ServiceAccount (as Unjoin does) revokes it at once; it is
// valid for a year, and running the same join again issues a fresh one when
// the old one is invalid or has less than a month left.
//
// # Design trade-offs
//
//   - Identity is the UID of each cluster's kube-system namespace: it
//     survives renames of kubeconfig contexts and API addresses, and it
//     changes when a cluster is rebuilt, which is exactly when a new join is
//     wanted. The member's UID is recorded on its MemberCluster, the hub's on
//     the member's credentials Secret, so one cluster cannot be joined under
//     two names nor to two hubs.
//   - Join checks everything before it writes anything: a refused join
//     leaves both clusters as they were. Each write then creates or updates
//     only on a difference, so a repeated identical join writes nothing, and
//     a join interrupted half-way is completed by running it again.
//   - The join is driven from a person's terminal with admin access to both
//     clusters, not by a handshake between agent and hub: it needs no
//     bootstrap token and no hub endpoint open to unauthenticated members.
//   - Unjoin deletes the member's hub objects one by one instead of relying
//     on namespace deletion alone, so the token stops working immediately;
//     it does not wait for the namespace to finish terminating.
package membership
