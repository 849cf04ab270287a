//go:build !linux

package capture

import (
	"errors"
	"net"
	"net/netip"
)

// OriginalDst returns where the peer of conn meant to connect before a NAT
// rule redirected it. Only Linux has the SO_ORIGINAL_DST socket option;
// elsewhere it returns errors.ErrUnsupported.
func OriginalDst(conn *net.TCPConn) (netip.AddrPort, error) {
	return netip.AddrPort{}, errors.ErrUnsupported
}
