// Package clustersetdns is the agent's authoritative DNS server for the
// clusterset zone (clusterset.local by default), as the Multi-Cluster
// Services DNS specification (KEP-1645, DNS schema version 1.0.0) defines
// it. In-cluster resolvers (CoreDNS with a forward stanza for the zone)
// send it their clusterset queries.
//
// # Data
//
// The zone is read, per query, from what the agent already keeps in the
// member cluster: MCS ServiceImports, and for headless imports the
// EndpointSlices labelled multicluster.kubernetes.io/service-name,
// multicluster.kubernetes.io/source-cluster and managed by
// agent.causeway.dev. There is no copy of the zone to keep in sync: the
// Reader is the agent's informer cache, so an answer reflects the cache at
// the moment of the query, and a lookup is a map access plus a deep copy.
//
// # Names
//
//	<svc>.<ns>.svc.<zone>                      A/AAAA: ClusterSetIP import's IPs, or
//	                                           every ready endpoint of a headless one
//	_<port>._<proto>.<svc>.<ns>.svc.<zone>     SRV per named port
//	<svc>.<ns>.svc.<zone> (SRV)                SRV for every named port
//	<host>.<clusterid>.<svc>.<ns>.svc.<zone>   A/AAAA of a headless endpoint; host is
//	                                           its hostname or dashed IP (10-1-0-5)
//	dns-version.<zone>                         TXT "1.0.0"
//
// <clusterid>.<svc>.<ns>.svc.<zone> does not exist, as the specification
// requires. Everything is authoritative (AA set); NXDOMAIN and NODATA carry
// the zone's SOA so resolvers cache them for one TTL (RFC 2308); names
// outside the zone are REFUSED; a malformed query gets FORMERR.
//
// # Trade-offs
//
//   - An import that exists but has nothing to answer with (a ClusterSetIP
//     import without an IP yet, a headless import without a ready
//     endpoint) is NXDOMAIN, like a service that does not exist: clients
//     see one failure mode, and the short negative TTL bounds how long it
//     is cached after the import becomes usable.
//   - svc.<zone>, <ns>.svc.<zone> while the namespace has an import, and
//     _<proto>.<svc>.<ns>.svc.<zone> while the service has a named port of
//     that protocol are empty non-terminals (NODATA, not NXDOMAIN), so
//     resolvers that prune below an NXDOMAIN (RFC 8020) keep resolving the
//     names under them. <clusterid> names are the exception the
//     specification imposes.
//   - A Reader failure (an informer cache not synced within 2 s) is
//     SERVFAIL, which resolvers retry, never an NXDOMAIN they would cache.
//   - UDP answers are capped at 1232 bytes and truncated (TC) beyond it or
//     beyond the client's EDNS size; TCP carries the rest. Zone transfers
//     are refused: secondaries would serve stale endpoints.
//   - The server logs lookup failures, never one line per query; the
//     causeway_dns_queries_total{rcode} counter is the per-query signal.
//
// # Use
//
//	srv := &clustersetdns.Server{Reader: mgr.GetCache(), Logger: logger, Registerer: metrics.Registry}
//	if err := mgr.Add(srv.Runnable(":5353")); err != nil { ... }
//
// Runnable serves on every replica, not only the leader. Listen returns a
// Running server bound to its TCP and UDP sockets (one port, port 0
// allowed) for tests and for callers that manage the lifetime themselves.
package clustersetdns
