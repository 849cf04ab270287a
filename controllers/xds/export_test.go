package xds

import cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"

// ProxyCache exposes the proxies' snapshot cache to the package's
// external tests.
func (s *Server) ProxyCache() cachev3.SnapshotCache { return s.proxyCache }
