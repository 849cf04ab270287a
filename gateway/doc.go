// Package gateway is the home of the data plane: the causeway-proxy L4/L7
// engine, its xDS client, the HBONE and cluster-link tunnels (QUIC, with
// HTTP/2 CONNECT over TCP+TLS as the fallback) and the east-west gateway.
// Each lives in a sub-package named for what it does.
//
// The data plane is configured only over xDS: this tree never imports
// controllers/ or controller-runtime (make verify enforces it).
package gateway
