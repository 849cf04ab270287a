package proxy

import (
	"net"

	"github.com/causeway-mesh/causeway/gateway/h1guard"
)

// maxHeaderBytes bounds a request head (HTTP/1) and a header list
// (HTTP/2). The guard and net/http use the same bound, so the guard is the
// one that answers 431.
const maxHeaderBytes = h1guard.DefaultMaxHeaderBytes

// guardHTTP1 wraps a downstream connection in the HTTP/1 framing guard:
// ambiguous framing (request smuggling) gets 400 before net/http sees a
// byte of it. HTTP/2 connections pass through it untouched.
func guardHTTP1(c net.Conn, onReject func(reason string)) net.Conn {
	return h1guard.Wrap(c, h1guard.Options{MaxHeaderBytes: maxHeaderBytes, OnReject: onReject})
}
