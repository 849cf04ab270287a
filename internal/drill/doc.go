// Package drill measures a failover across clusters: a steady load at a
// fixed rate against a service that several clusters serve, while one of
// those clusters fails and then comes back.
//
// A drill is Run with a Probe (one request over one of the load's
// connections, answering which cluster served it), a Fault (inject and
// restore: the cluster's workloads killed, its gateway partitioned, …) and
// Options. It proceeds in four steps:
//
//  1. warm-up: the load runs until the failing cluster has served traffic
//     and Options.Warmup has passed, with no request failing meanwhile (a
//     drill on a service that already fails measures nothing);
//  2. fault: the fault is injected; the drill waits until Options.Settle
//     consecutive requests have succeeded on other clusters (failover done),
//     then holds the fault for Options.Hold;
//  3. restore: the fault is undone; the drill waits until the cluster
//     serves a request again (failback), unless Options.NoFailback says it
//     is not expected to (a FailoverPolicy with manual failback);
//  4. the load stops and every request is accounted for in a Summary.
//
// What is measured, from every request's send time, end time, outcome and
// serving cluster (Analyze, a pure function of the records):
//
//   - failover time: from the fault to the first request of the run of
//     Settle consecutive successes elsewhere;
//   - error window: from the first failed request after the fault was
//     injected to the end of the last one (zero when none failed);
//   - failed requests, in total and at most on one connection (a
//     connection's in-flight request may be lost when its cluster
//     vanishes; more than one per connection means the data plane kept
//     sending to a dead cluster);
//   - failback time: from the restore to the first request the cluster
//     serves again.
//
// The load is paced per connection: each of Options.Connections sends one
// request every Connections/Rate seconds, or as soon as the previous one
// ends when that is later (a connection never has two requests in flight,
// so "failed requests per connection" means what it says).
//
// The causeway CLI (`causeway drill failover`) and the multi-cluster test
// suite both drive this package; they differ only in their probe and their
// faults.
package drill
