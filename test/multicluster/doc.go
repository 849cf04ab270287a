// Package multicluster holds the multi-cluster scenarios: user stories run
// against several real control planes (see the world sub-package), the real
// hub, agents, gateways and proxies, with real traffic and real faults.
package multicluster
