// Package xdsclient is the xDS client of causeway-proxy: it keeps one
// Aggregated Discovery Service stream (Envoy xDS v3, state of the world,
// envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources)
// open to the agent's control plane and hands every response to an Applier.
//
// # Usage
//
//	c := xdsclient.New(xdsclient.Config{
//		ServerAddress: "unix:///var/run/causeway/xds.sock",
//		DialOptions:   []grpc.DialOption{grpc.WithTransportCredentials(creds)},
//		Node:          &corev3.Node{Id: podName + "." + namespace, Cluster: "causeway-proxy"},
//		Applier:       store,
//		Logger:        logger,
//	})
//	go func() { _ = c.Run(ctx) }() // returns when ctx is done
//	...
//	dump := c.Status() // for the admin config dump
//
// # Subscriptions
//
// The client subscribes the way Envoy does: listeners (LDS) and clusters
// (CDS) by wildcard, then route configurations (RDS) and cluster load
// assignments (EDS) by name. Which names is the Applier's decision, since
// only it knows which route configurations the accepted listeners use and
// which accepted clusters are of type EDS: after every LDS or CDS response
// the client asks Applier.Names and, when the set changed, sends a new RDS
// or EDS request carrying the last accepted version and the last nonce of
// that type, as the protocol requires.
//
// Wildcard subscriptions use an empty resource_names list (the "legacy"
// wildcard), not an explicit "*": go-control-plane's snapshot cache in ADS
// mode filters responses by the requested names and never answers a request
// naming "*". RDS and EDS are not requested at all on a stream until they
// have a name, because an empty first request would be read as a wildcard.
//
// # Secrets (SDS)
//
// With Config.Service ServiceSDS the client speaks the Secret Discovery
// Service instead (SecretDiscoveryService/StreamSecrets, state of the
// world), with the same protocol rules: it subscribes to SecretType by the
// names Applier.Names returns, one stream for all of them (Envoy opens a
// stream per secret; a server keyed by node answers either), and never
// subscribes by wildcard. What decides those names (the TLS contexts of
// the xDS configuration) lives outside the SDS stream, so the owner calls
// Resubscribe when it may have changed. Per-stream credentials (a bearer
// token that rotates) belong in DialOptions as grpc.WithPerRPCCredentials:
// gRPC asks them for every stream, so each reconnection sends the token
// as it is then.
//
// # ACK, NACK and bad input
//
// A response is acknowledged with its version and nonce. A response that
// the Applier rejects, whose type URL the client does not know, or whose
// resources are not of the response's type is NACKed: version_info is the
// last accepted version of the type, response_nonce the rejected nonce, and
// error_detail an INVALID_ARGUMENT status with the reason. The previous
// configuration stays in force; the client never panics or drops the stream
// on bad input. Resources wrapped in envoy.service.discovery.v3.Resource
// (TTLs, heartbeats) are not supported and are NACKed as a type mismatch.
//
// go-control-plane's snapshot cache answers a NACK by resending the same
// rejected version at once, for ever
// (https://github.com/envoyproxy/go-control-plane/issues/962). The first
// NACK of a version is sent immediately; identical rejections that follow
// are paced with the same exponential bounds as reconnects (a delay drawn
// from the upper half of the bound), which bounds the loop without
// delaying a corrected version by more than the maximum backoff: the
// server holds its next response of the type until the NACK arrives.
//
// # Disconnection
//
// A stream error never clears configuration: what was accepted keeps
// serving while the server is away. The client reconnects with full-jitter
// exponential backoff (200ms doubling to 10s by default), reset after a
// stream that delivered at least one response, and resumes every
// subscription with the last accepted version so the server may skip
// resending identical state. The gRPC channel's own connection backoff is
// set to the same bounds so that the two do not compound. Only the first
// request of each stream carries the node, as the ADS protocol allows.
//
// # Concurrency
//
// One goroutine, the one running Run, calls the Applier and the Hooks,
// never concurrently. Status may be called from any goroutine.
package xdsclient
