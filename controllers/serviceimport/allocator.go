package serviceimport

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/big"
	"net/netip"
	"sync"
)

// ErrRangeFull means every address of the ClusterSetIP range is taken.
var ErrRangeFull = errors.New("the ClusterSetIP range is full")

// Allocator hands out ClusterSetIPs from a range. A service's first choice
// is derived from a hash of its name, so the same service usually gets the
// same address in every member; collisions probe onward. It is safe for
// concurrent use.
type Allocator struct {
	prefix netip.Prefix
	size   uint64 // usable addresses: the network and broadcast addresses are skipped

	mu    sync.Mutex
	byIP  map[netip.Addr]string // address → owner ("namespace/name")
	owned map[string]netip.Addr
}

// NewAllocator returns an allocator for prefix (IPv4 or IPv6, at least 4
// addresses).
func NewAllocator(prefix netip.Prefix) (*Allocator, error) {
	prefix = prefix.Masked()
	hostBits := prefix.Addr().BitLen() - prefix.Bits()
	if hostBits < 2 {
		return nil, fmt.Errorf("ClusterSetIP range %s is too small", prefix)
	}
	size := uint64(1)<<min(hostBits, 32) - 2
	return &Allocator{prefix: prefix, size: size, byIP: map[netip.Addr]string{}, owned: map[string]netip.Addr{}}, nil
}

// Prefix is the allocator's range.
func (a *Allocator) Prefix() netip.Prefix { return a.prefix }

// Reserve records that owner holds ip (an address found on an existing
// ServiceImport). It fails if ip is outside the range or held by another
// owner; the caller then allocates a new one.
func (a *Allocator) Reserve(owner string, ip netip.Addr) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.prefix.Contains(ip) || ip == a.prefix.Addr() || ip.Compare(a.nth(a.size-1)) > 0 {
		return fmt.Errorf("%s is not a usable address of the ClusterSetIP range %s", ip, a.prefix)
	}
	if cur, ok := a.byIP[ip]; ok && cur != owner {
		return fmt.Errorf("%s is already allocated to %s", ip, cur)
	}
	if old, ok := a.owned[owner]; ok && old != ip {
		delete(a.byIP, old)
	}
	a.byIP[ip] = owner
	a.owned[owner] = ip
	return nil
}

// Allocate returns owner's address, allocating one if it has none.
func (a *Allocator) Allocate(owner string) (netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ip, ok := a.owned[owner]; ok {
		return ip, nil
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(owner))
	start := h.Sum64() % a.size
	for i := uint64(0); i < a.size; i++ {
		ip := a.nth((start + i) % a.size)
		if _, taken := a.byIP[ip]; !taken {
			a.byIP[ip] = owner
			a.owned[owner] = ip
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("allocate a ClusterSetIP for %s: %w (%s)", owner, ErrRangeFull, a.prefix)
}

// Release frees owner's address.
func (a *Allocator) Release(owner string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ip, ok := a.owned[owner]; ok {
		delete(a.byIP, ip)
		delete(a.owned, owner)
	}
}

// nth is the (n+1)-th usable address: the network address is skipped.
func (a *Allocator) nth(n uint64) netip.Addr {
	base := new(big.Int).SetBytes(a.prefix.Addr().AsSlice())
	base.Add(base, new(big.Int).SetUint64(n+1))
	b := base.FillBytes(make([]byte, a.prefix.Addr().BitLen()/8))
	ip, _ := netip.AddrFromSlice(b)
	return ip
}
