// Package echo is Causeway's test workload, the process behind the test
// image causeway.dev/echo. The test world simulates pods with kwok; for a pod
// running that image it starts cmd/causeway-echo on the pod's IP, and this
// package is everything that process does. Multi-cluster tests send traffic
// through the mesh to it and read back which pod, in which cluster, answered
// and what the request looked like on arrival.
//
// # Usage
//
//	err := echo.Run(ctx, echo.Config{
//		Identity:  echo.Identity{Pod: "web-0", Namespace: "demo", Cluster: "east", IP: "10.0.0.7"},
//		Listeners: []echo.Listener{{Addr: "10.0.0.7:8080", Protocol: echo.ProtocolHTTP}},
//	})
//
// Run returns when ctx is done and every listener has stopped. Tests that
// bind port 0 call Listen, read Server.Addrs, then Serve.
//
// # Protocols
//
// http serves HTTP/1.1 and cleartext HTTP/2 with prior knowledge on one port.
// Every path but /ws answers with an HTTPReport as JSON, carrying the
// identity and the request as received, and the headers X-Causeway-Pod and
// X-Causeway-Cluster. Query controls: status=N (200–599) sets the status,
// delay=D (a Go duration, at most 30s) waits first, size=N (at most 10 MiB)
// adds N bytes of padding. /ws accepts a WebSocket and echoes each message.
//
// grpc serves the interop suite's grpc.testing.TestService (SimpleResponse
// carries Hostname=pod and ServerId=cluster/pod), grpc.health.v1 reporting
// SERVING, and server reflection: enough for grpcurl and for proxyless gRPC
// xDS clients.
//
// tcp writes "causeway-echo <cluster>/<pod>\n" and then echoes bytes until the
// client closes.
//
// # Design trade-offs
//
// Bad input is refused, not repaired. Invalid listeners fail Run before any
// port is bound; a control out of range gets 400 rather than being clamped,
// so a test learns at once that it did not get what it asked for.
//
// h2c is prior knowledge only, via net/http's Protocols. The HTTP/1.1
// Upgrade: h2c path is deprecated by RFC 9113 section 3.1, unsupported by
// net/http and only available from the deprecated x/net/http2/h2c; clients
// that try it are answered over HTTP/1.1.
//
// Stopping is graceful but bounded (Config.ShutdownGrace, 5 s by default):
// gRPC health turns NOT_SERVING and in-flight calls finish, HTTP drains,
// WebSockets get a going-away close, idle TCP echoes end at once. Whatever
// remains when the grace runs out is closed.
//
// Nothing is logged per request at Info; per-request logs are Debug.
package echo
