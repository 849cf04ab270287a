package serviceimport_test

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"github.com/causeway-mesh/causeway/controllers/serviceimport"
)

func newAllocator(t *testing.T, prefix string) *serviceimport.Allocator {
	t.Helper()
	a, err := serviceimport.NewAllocator(netip.MustParsePrefix(prefix))
	if err != nil {
		t.Fatalf("NewAllocator(%s): %v", prefix, err)
	}
	return a
}

// fill allocates until the range is full and returns the addresses.
func fill(t *testing.T, a *serviceimport.Allocator) []netip.Addr {
	t.Helper()
	var out []netip.Addr
	for i := 0; ; i++ {
		ip, err := a.Allocate(fmt.Sprintf("ns/svc-%d", i))
		if errors.Is(err, serviceimport.ErrRangeFull) {
			return out
		}
		if err != nil {
			t.Fatalf("Allocate: %v", err)
		}
		if i > 1<<12 {
			t.Fatal("the range never filled")
		}
		out = append(out, ip)
	}
}

func TestNewAllocator(t *testing.T) {
	tests := map[string]struct {
		prefix     string
		wantErr    bool
		wantPrefix string
		wantUsable []string // every address Allocate hands out, when small
	}{
		"IPv4 /32 is too small":  {prefix: "10.0.0.1/32", wantErr: true},
		"IPv4 /31 is too small":  {prefix: "10.0.0.0/31", wantErr: true},
		"IPv6 /127 is too small": {prefix: "fd00::/127", wantErr: true},
		"IPv4 /30 has 2 usable":  {prefix: "10.0.0.0/30", wantPrefix: "10.0.0.0/30", wantUsable: []string{"10.0.0.1", "10.0.0.2"}},
		"host bits are masked":   {prefix: "10.0.0.6/30", wantPrefix: "10.0.0.4/30", wantUsable: []string{"10.0.0.5", "10.0.0.6"}},
		"IPv6 /126 has 2 usable": {prefix: "fd00::/126", wantPrefix: "fd00::/126", wantUsable: []string{"fd00::1", "fd00::2"}},
		"IPv4 /29 has 6 usable": {prefix: "10.0.0.8/29", wantPrefix: "10.0.0.8/29",
			wantUsable: []string{"10.0.0.9", "10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.0.13", "10.0.0.14"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			a, err := serviceimport.NewAllocator(netip.MustParsePrefix(tc.prefix))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("NewAllocator(%s) = %v, want an error", tc.prefix, a.Prefix())
				}
				return
			}
			if err != nil {
				t.Fatalf("NewAllocator(%s): %v", tc.prefix, err)
			}
			if got := a.Prefix().String(); got != tc.wantPrefix {
				t.Errorf("Prefix = %s, want %s", got, tc.wantPrefix)
			}
			got := map[string]bool{}
			for _, ip := range fill(t, a) {
				got[ip.String()] = true
			}
			want := map[string]bool{}
			for _, s := range tc.wantUsable {
				want[s] = true
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("usable addresses = %v, want %v", got, want)
			}
		})
	}
}

func TestAllocate(t *testing.T) {
	tests := map[string]string{"IPv4": "10.128.0.0/24", "IPv6": "fd00:c0::/112"}
	for name, prefix := range tests {
		t.Run(name, func(t *testing.T) {
			a := newAllocator(t, prefix)
			p := a.Prefix()
			seen := map[netip.Addr]string{}
			for i := range 100 {
				owner := fmt.Sprintf("ns-%d/svc", i)
				ip, err := a.Allocate(owner)
				if err != nil {
					t.Fatalf("Allocate(%s): %v", owner, err)
				}
				if !p.Contains(ip) || ip == p.Addr() || ip.Is4() != p.Addr().Is4() {
					t.Fatalf("Allocate(%s) = %s: outside %s or its network address", owner, ip, p)
				}
				if other, ok := seen[ip]; ok {
					t.Fatalf("%s allocated to both %s and %s", ip, other, owner)
				}
				seen[ip] = owner
				again, err := a.Allocate(owner)
				if err != nil || again != ip {
					t.Fatalf("second Allocate(%s) = %s, %v; want %s", owner, again, err, ip)
				}
			}
		})
	}
}

func TestAllocateIsStableAcrossAllocators(t *testing.T) {
	// The first choice hashes the name: two members agree on it.
	a, b := newAllocator(t, "10.128.0.0/16"), newAllocator(t, "10.128.0.0/16")
	for _, owner := range []string{"default/hello", "prod/db", "x/y"} {
		ipA, errA := a.Allocate(owner)
		ipB, errB := b.Allocate(owner)
		if errA != nil || errB != nil || ipA != ipB {
			t.Errorf("Allocate(%s) = %s, %v and %s, %v; want the same address", owner, ipA, errA, ipB, errB)
		}
	}
}

func TestAllocateRangeFull(t *testing.T) {
	a := newAllocator(t, "10.0.0.0/29")
	ips := fill(t, a)
	if len(ips) != 6 {
		t.Fatalf("a /29 gave %d addresses, want 6: %v", len(ips), ips)
	}
	for _, ip := range ips {
		if ip == netip.MustParseAddr("10.0.0.0") || ip == netip.MustParseAddr("10.0.0.7") {
			t.Errorf("allocated the network or broadcast address %s", ip)
		}
	}
	_, err := a.Allocate("ns/one-more")
	if !errors.Is(err, serviceimport.ErrRangeFull) {
		t.Fatalf("Allocate on a full range: %v, want ErrRangeFull", err)
	}
	// An owner that has an address still gets it.
	if ip, err := a.Allocate("ns/svc-0"); err != nil || ip != ips[0] {
		t.Errorf("Allocate of an existing owner on a full range = %s, %v; want %s", ip, err, ips[0])
	}
	// Releasing one frees room for exactly one.
	a.Release("ns/svc-3")
	ip, err := a.Allocate("ns/one-more")
	if err != nil || ip != ips[3] {
		t.Errorf("Allocate after Release = %s, %v; want the freed %s", ip, err, ips[3])
	}
	if _, err := a.Allocate("ns/two-more"); !errors.Is(err, serviceimport.ErrRangeFull) {
		t.Errorf("Allocate: %v, want ErrRangeFull", err)
	}
}

func TestReserve(t *testing.T) {
	type step struct {
		owner   string
		ip      string
		wantErr bool
	}
	tests := map[string][]step{
		"inside the range":              {{"a/x", "10.0.0.5", false}},
		"outside the range":             {{"a/x", "10.0.1.5", true}},
		"the network address":           {{"a/x", "10.0.0.0", true}},
		"the broadcast address":         {{"a/x", "10.0.0.255", true}},
		"the last usable address":       {{"a/x", "10.0.0.254", false}},
		"other family":                  {{"a/x", "fd00::5", true}},
		"same owner again":              {{"a/x", "10.0.0.5", false}, {"a/x", "10.0.0.5", false}},
		"taken by another owner":        {{"a/x", "10.0.0.5", false}, {"b/y", "10.0.0.5", true}},
		"re-reserve moves the owner":    {{"a/x", "10.0.0.5", false}, {"a/x", "10.0.0.6", false}, {"b/y", "10.0.0.5", false}},
		"the moved-to address is taken": {{"a/x", "10.0.0.5", false}, {"a/x", "10.0.0.6", false}, {"b/y", "10.0.0.6", true}},
	}
	for name, steps := range tests {
		t.Run(name, func(t *testing.T) {
			a := newAllocator(t, "10.0.0.0/24")
			for i, s := range steps {
				err := a.Reserve(s.owner, netip.MustParseAddr(s.ip))
				if (err != nil) != s.wantErr {
					t.Fatalf("step %d: Reserve(%s, %s) = %v, want error %v", i, s.owner, s.ip, err, s.wantErr)
				}
			}
			// Allocate returns what the last successful Reserve of an owner recorded.
			last := map[string]string{}
			for _, s := range steps {
				if !s.wantErr {
					last[s.owner] = s.ip
				}
			}
			for owner, ip := range last {
				if got, err := a.Allocate(owner); err != nil || got.String() != ip {
					t.Errorf("Allocate(%s) = %s, %v; want the reserved %s", owner, got, err, ip)
				}
			}
		})
	}
}

func TestReserveBlocksAllocate(t *testing.T) {
	a := newAllocator(t, "10.0.0.0/30")
	if err := a.Reserve("a/x", netip.MustParseAddr("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := a.Reserve("b/y", netip.MustParseAddr("10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	if ip, err := a.Allocate("c/z"); !errors.Is(err, serviceimport.ErrRangeFull) {
		t.Fatalf("Allocate with every address reserved = %s, %v; want ErrRangeFull", ip, err)
	}
}

func TestRelease(t *testing.T) {
	a := newAllocator(t, "10.0.0.0/24")
	ip, err := a.Allocate("a/x")
	if err != nil {
		t.Fatal(err)
	}
	a.Release("nobody/here") // no-op
	if err := a.Reserve("b/y", ip); err == nil {
		t.Fatalf("Reserve of %s held by a/x succeeded", ip)
	}
	a.Release("a/x")
	a.Release("a/x") // twice is fine
	if err := a.Reserve("b/y", ip); err != nil {
		t.Fatalf("Reserve of a released address: %v", err)
	}
	// a/x has no address now: it gets a fresh one, not b/y's.
	if again, err := a.Allocate("a/x"); err != nil || again == ip {
		t.Errorf("Allocate(a/x) after Release = %s, %v; want an address other than %s", again, err, ip)
	}
}

func TestAllocatorConcurrent(t *testing.T) {
	a := newAllocator(t, "10.0.0.0/22")
	const workers, each = 32, 20
	got := make([][]netip.Addr, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				owner := fmt.Sprintf("ns-%d/svc-%d", w, i)
				ip, err := a.Allocate(owner)
				if err != nil {
					t.Errorf("Allocate(%s): %v", owner, err)
					return
				}
				got[w] = append(got[w], ip)
				// Churn: release and reserve again, and release a temporary.
				a.Release(owner)
				if err := a.Reserve(owner, ip); err != nil {
					// Another goroutine took it in between: take any.
					if ip, err = a.Allocate(owner); err != nil {
						t.Errorf("Allocate(%s): %v", owner, err)
						return
					}
					got[w][len(got[w])-1] = ip
				}
				tmp := owner + "-tmp"
				if _, err := a.Allocate(tmp); err != nil {
					t.Errorf("Allocate(%s): %v", tmp, err)
				}
				a.Release(tmp)
			}
		})
	}
	wg.Wait()
	seen := map[netip.Addr]string{}
	for w := range workers {
		for i, ip := range got[w] {
			owner := fmt.Sprintf("ns-%d/svc-%d", w, i)
			if other, ok := seen[ip]; ok {
				t.Errorf("%s held by %s and %s", ip, other, owner)
			}
			seen[ip] = owner
			if cur, err := a.Allocate(owner); err != nil || cur != ip {
				t.Errorf("Allocate(%s) = %s, %v; want %s", owner, cur, err, ip)
			}
		}
	}
	if len(seen) != workers*each {
		t.Errorf("%d distinct addresses, want %d", len(seen), workers*each)
	}
}
