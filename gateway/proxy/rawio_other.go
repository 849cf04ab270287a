//go:build !linux

package proxy

import "net"

// rawConn is the identity where raw system calls are not used.
func rawConn(c net.Conn) net.Conn { return c }
