// Package proxybench measures causeway-proxy as a whole process against a
// direct connection and against nginx, in one run on one machine, so every
// figure is a ratio to a baseline measured under the same conditions. It
// holds only BenchmarkProxy; run it with
//
//	make bench
//	go test -run '^$' -bench BenchmarkProxy -benchtime 1x ./test/bench/proxybench/
//
// (one iteration is a whole measurement run of about 70 s;
// it needs `make build test-bins` and the Debian package nginx, and skips
// without nginx).
//
// # What runs
//
// Every component is a real process, a child of the benchmark, killed with
// it (Pdeathsig) and at the end of the run:
//
//   - the backend: this test binary re-executed, serving a fixed 1 KiB body
//     over HTTP/1.1 and h2c with net/http;
//   - bin/causeway-proxy in node mode with one explicit binding of the
//     explicit_http listener, configured over ADS by a go-control-plane
//     server in the benchmark process on a unix socket. The snapshot is what
//     the agent's translation makes for 100 HTTP services (a listener,
//     route configuration and cluster each, every service in the explicit
//     route configuration), so the proxy's memory is that of a realistic
//     mesh; the load uses one of the services;
//   - nginx with a generated configuration in a temporary directory: one
//     process (master_process off), HTTP/1.1 keep-alive to the backend
//     (upstream keepalive 32), no access log;
//   - bin/fortio as the client.
//
// # What is measured
//
//   - Latency: fortio at a fixed 1,000 requests/s over 4 connections for
//     10 s against each path (after a warm-up); the proxy's and nginx's
//     added p50 and p99 are their percentiles minus the direct ones.
//   - CPU: user+system time of the proxy process and of nginx (with any
//     children) over the latency run, per 1,000 requests.
//   - Memory: the proxy's VmRSS and VmHWM after the latency run.
//   - Throughput of one proxy core: a second proxy process with GOMAXPROCS=1
//     pinned to the last CPU, fortio at full speed (16 connections, 5 s)
//     over HTTP/1.1 and h2c, against the direct rate. The client and the
//     backend are pinned to the other CPUs in both runs, so the direct
//     and proxied runs give them the same CPU and the proxy has its own
//     core: a ratio below 1 means one proxy core is slower than the client
//     and backend together. nginx, pinned the same way, is measured too over
//     HTTP/1.1.
//
// The run prints a table with the goals beside the figures (added p99 at
// most 0.5 ms and at most nginx's; peak RSS at most 30 MiB; CPU at most
// 1.2× nginx's), PASS or MISS for each, and reports every figure with
// b.ReportMetric so runs compare with benchstat. A missed goal is reported,
// never a failure: performance goals live in benchmarks, whose numbers
// depend on the machine. Failures are reserved for a run that could not
// measure (a process that died, a request that failed).
//
// # Trade-offs
//
// fortio's histogram is kept at 10 µs resolution (-r 0.00001), since the
// differences measured are fractions of a millisecond. Percentiles of
// separate runs are subtracted, which is the usual reading of "added
// latency" but not a per-request difference. The machine is shared by
// client, proxy and backend; on two cores the latency runs leave them
// unpinned, as a sidecar would be, and only the throughput runs pin.
package proxybench
