// Package capture makes a workload's TCP traffic flow through the Causeway
// sidecar proxy without the workload knowing: it is Causeway's minimal
// counterpart of Istio's istio-init.
//
// # Usage
//
// Run Install inside the workload's network namespace (an init container,
// or a CNI plugin that has entered the namespace on a locked OS thread),
// before the workload starts:
//
//	err := capture.Install(ctx, capture.Config{
//		ProxyUIDs:            []uint32{1337}, // the proxy's own connections
//		ExcludeOutboundPorts: []uint16{53},
//	})
//
// From then on every outbound TCP connection of the workload is redirected
// to the proxy's outbound port (15001 by default). The proxy accepts it and
// asks OriginalDst where the workload meant to go:
//
//	dst, err := capture.OriginalDst(conn.(*net.TCPConn))
//
// Uninstall removes the rules again. Script returns the iptables argument
// lists Install would apply to an empty nat table, for dry runs and review.
//
// # What Install programs
//
// Everything lives in the nat table, in chains of Causeway's own:
//
//	OUTPUT          -p tcp -j CAUSEWAY_OUTPUT
//	CAUSEWAY_OUTPUT  RETURN for the proxy's UIDs and GIDs (-m owner), for
//	                 127.0.0.1, for the excluded ports and CIDRs; then
//	                 -d <included CIDR> -j CAUSEWAY_REDIRECT
//	CAUSEWAY_REDIRECT -p tcp -j REDIRECT --to-ports <ProxyPort>
//
// and, with CaptureInbound:
//
//	PREROUTING          -p tcp -j CAUSEWAY_INBOUND
//	CAUSEWAY_INBOUND     RETURN for the excluded inbound ports, then
//	                     -p tcp -j CAUSEWAY_IN_REDIRECT
//	CAUSEWAY_IN_REDIRECT -p tcp -j REDIRECT --to-ports <InboundPort>
//
// # Design trade-offs
//
//   - The iptables command is run rather than netlink spoken directly: it is
//     what every node already has, it hides the legacy (x_tables) versus
//     nf_tables split, and `iptables-save` shows an operator exactly what was
//     done. Whichever variant `iptables` names (Debian's alternatives) is
//     used; Config.Command picks another. A missing binary is reported as
//     ErrIPTablesNotFound, naming the Debian package.
//   - Install is level-triggered: it makes the nat table hold exactly the
//     rules of the given Config, whatever an earlier Install left. Chains of
//     its own are created or flushed and refilled, the jump from a built-in
//     chain is added only when it is missing, and the inbound chains are
//     removed when CaptureInbound is off. It is not atomic: while it runs
//     (a few milliseconds) new connections may bypass the proxy. Running it
//     before the workload starts, as intended, makes that moot; a run that
//     failed half-way is completed by running it again.
//   - Uninstall deletes only the jumps and chains named above; rules and
//     chains of anybody else are left alone.
//   - IPv4 only: the rules are programmed with iptables, not ip6tables.
//     OriginalDst understands IPv6 connections too, so a proxy can serve
//     connections redirected by ip6tables rules of someone else's making.
//   - Loopback is excluded by destination (127.0.0.1/32), as istio-init
//     does by default; a workload calling its own non-loopback address is
//     captured like any other destination.
//   - Install acts on the calling thread's network namespace: the iptables
//     processes are forked from it. Callers that switch namespaces must
//     lock the goroutine to its OS thread first.
package capture
