// Package federation is the home of the hub: the cluster registry and its
// health leases, export aggregation by the Multi-Cluster Services rules (a
// pure function of the export records), the trust root and per-cluster
// intermediate CAs, the topology, and the agent's link to the hub. Each of
// these lives in a sub-package named for what it does.
//
// This package itself holds no code; the sub-packages depend on apis/,
// never on controllers/ or gateway/.
package federation
