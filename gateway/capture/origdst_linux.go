package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// ip6tSOOriginalDst is IP6T_SO_ORIGINAL_DST from
// <linux/netfilter_ipv6/ip6_tables.h>, which golang.org/x/sys lacks. It has
// the same value as SO_ORIGINAL_DST but is asked at level SOL_IPV6.
const ip6tSOOriginalDst = 80

// Sizes of the kernel's struct sockaddr_in and struct sockaddr_in6.
const (
	sizeofSockaddrInet4 = 16
	sizeofSockaddrInet6 = 28
)

// OriginalDst returns where the peer of conn meant to connect before a NAT
// rule such as REDIRECT (Install's, or anybody's) sent the connection to
// this socket. It asks the kernel's connection tracking with
// getsockopt(SO_ORIGINAL_DST), or IP6T_SO_ORIGINAL_DST for IPv6
// connections; IPv4 connections accepted by a dual-stack listener are
// handled as IPv4 and return a plain IPv4 address. A connection that was
// not translated at all yields its own local address if connection
// tracking knows it, and an error wrapping unix.ENOENT if not.
//
// The socket is used in place, through conn.SyscallConn: it is neither
// duplicated nor switched to blocking mode, so conn stays fully usable.
func OriginalDst(conn *net.TCPConn) (netip.AddrPort, error) {
	if conn == nil {
		return netip.AddrPort{}, errors.New("get original destination: nil connection")
	}
	local, ok := conn.LocalAddr().(*net.TCPAddr)
	if !ok || local == nil {
		return netip.AddrPort{}, errors.New("get original destination: connection has no local TCP address")
	}
	v4 := local.AddrPort().Addr().Unmap().Is4()
	rc, err := conn.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("get original destination of %s: %w", local, err)
	}
	var raw []byte
	var sockErr error
	if err := rc.Control(func(fd uintptr) { raw, sockErr = getsockoptOriginalDst(int(fd), v4) }); err != nil {
		return netip.AddrPort{}, fmt.Errorf("get original destination of %s: %w", local, err)
	}
	if sockErr != nil {
		return netip.AddrPort{}, fmt.Errorf("get original destination of %s: %w", local, sockErr)
	}
	dst, err := parseSockaddr(raw)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("get original destination of %s: %w", local, err)
	}
	return dst, nil
}

// getsockoptOriginalDst returns the raw sockaddr bytes the kernel wrote.
//
// golang.org/x/sys offers no getsockopt into a plain byte buffer, so this
// borrows two typed getters whose structs start with a buffer at least as
// large as the sockaddr: IPv6Mreq (20 bytes, starting with 16 raw bytes)
// for sockaddr_in, and IPv6MTUInfo (32 bytes, starting with a
// RawSockaddrInet6) for sockaddr_in6. The kernel accepts any buffer at
// least as large as the sockaddr and writes exactly the sockaddr; the
// fields are then turned back into the bytes the kernel wrote, and only
// parseSockaddr interprets them.
func getsockoptOriginalDst(fd int, v4 bool) ([]byte, error) {
	if v4 {
		m, err := unix.GetsockoptIPv6Mreq(fd, unix.SOL_IP, unix.SO_ORIGINAL_DST)
		if err != nil {
			return nil, fmt.Errorf("getsockopt SO_ORIGINAL_DST: %w", err)
		}
		return m.Multiaddr[:sizeofSockaddrInet4], nil
	}
	info, err := unix.GetsockoptIPv6MTUInfo(fd, unix.SOL_IPV6, ip6tSOOriginalDst)
	if err != nil {
		return nil, fmt.Errorf("getsockopt IP6T_SO_ORIGINAL_DST: %w", err)
	}
	sa := info.Addr
	b := make([]byte, sizeofSockaddrInet6)
	// Port and Flowinfo hold network-order bytes read as native integers;
	// writing them back in native order restores those bytes.
	binary.NativeEndian.PutUint16(b[0:2], sa.Family)
	binary.NativeEndian.PutUint16(b[2:4], sa.Port)
	binary.NativeEndian.PutUint32(b[4:8], sa.Flowinfo)
	copy(b[8:24], sa.Addr[:])
	binary.NativeEndian.PutUint32(b[24:28], sa.Scope_id)
	return b, nil
}

// parseSockaddr decodes a struct sockaddr_in or sockaddr_in6 as the kernel
// lays it out: the family in host byte order, then the port in network
// byte order, then (for IPv6 after the flow label) the address. The IPv6
// scope ID is dropped: an original destination is not link-local in any
// setup this package supports.
func parseSockaddr(b []byte) (netip.AddrPort, error) {
	if len(b) < 2 {
		return netip.AddrPort{}, fmt.Errorf("sockaddr of %d bytes is too short", len(b))
	}
	switch family := binary.NativeEndian.Uint16(b[0:2]); family {
	case unix.AF_INET:
		if len(b) < 8 {
			return netip.AddrPort{}, fmt.Errorf("sockaddr_in of %d bytes is too short", len(b))
		}
		addr := netip.AddrFrom4([4]byte(b[4:8]))
		return netip.AddrPortFrom(addr, binary.BigEndian.Uint16(b[2:4])), nil
	case unix.AF_INET6:
		if len(b) < 24 {
			return netip.AddrPort{}, fmt.Errorf("sockaddr_in6 of %d bytes is too short", len(b))
		}
		addr := netip.AddrFrom16([16]byte(b[8:24]))
		return netip.AddrPortFrom(addr, binary.BigEndian.Uint16(b[2:4])), nil
	default:
		return netip.AddrPort{}, fmt.Errorf("sockaddr of unexpected address family %d", family)
	}
}
