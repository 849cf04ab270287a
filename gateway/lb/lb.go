/*
Copyright 2026 The Causeway Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package lb

import (
	"cmp"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// Algorithm selects how a Balancer picks among the endpoints of a priority
// level.
type Algorithm int

// The algorithms, named as in Envoy's Cluster.LbPolicy.
const (
	// RoundRobin cycles through the endpoints in a weighted order: each
	// endpoint gets a number of turns per cycle proportional to its weight,
	// spread out by earliest deadline first.
	RoundRobin Algorithm = iota
	// LeastRequest samples Config.ChoiceCount endpoints in proportion to
	// their weights and picks the one with the fewest active requests per
	// unit of weight ("power of two choices" with the default count).
	LeastRequest
	// Random picks an endpoint at random in proportion to its weight.
	Random
	// RingHash picks the endpoint that owns Request.Hash on a consistent
	// hash ring (Ketama style).
	RingHash
	// Maglev picks the endpoint in slot Request.Hash of a Maglev lookup
	// table.
	Maglev
)

// String returns the algorithm's name in Envoy's spelling.
func (a Algorithm) String() string {
	switch a {
	case RoundRobin:
		return "ROUND_ROBIN"
	case LeastRequest:
		return "LEAST_REQUEST"
	case Random:
		return "RANDOM"
	case RingHash:
		return "RING_HASH"
	case Maglev:
		return "MAGLEV"
	default:
		return "Algorithm(" + strconv.Itoa(int(a)) + ")"
	}
}

// Defaults and limits of Config. The limits are Envoy's where Envoy has one.
const (
	// DefaultChoiceCount is LeastRequest's default number of candidates.
	DefaultChoiceCount = 2
	// MaxChoiceCount bounds ChoiceCount: each candidate costs a random
	// number and a counter read on every pick.
	MaxChoiceCount = 64
	// DefaultMinRingSize is RingHash's default lower bound of the ring size.
	DefaultMinRingSize = 1024
	// DefaultMaxRingSize is RingHash's default, and largest allowed, upper
	// bound of the ring size (8M entries, 96 MiB).
	DefaultMaxRingSize = 8 << 20
	// DefaultMaglevTableSize is Maglev's default table size.
	DefaultMaglevTableSize = 65537
	// MaxMaglevTableSize is the largest Maglev table size allowed.
	MaxMaglevTableSize = 5000011
	// DefaultOverprovisioningFactor is the default
	// Config.OverprovisioningFactor, in percent: a level with at least
	// 1/1.4 = 72% of its endpoints healthy keeps all of its traffic.
	DefaultOverprovisioningFactor = 140
	// MaxEndpoints bounds the number of endpoints of one Balancer.
	MaxEndpoints = 1 << 24
)

// Config is the load balancing configuration of one upstream cluster. The
// zero value is valid: round robin with Envoy's defaults.
type Config struct {
	// Algorithm is the balancing algorithm within a priority level.
	Algorithm Algorithm
	// ChoiceCount is how many candidates LeastRequest samples per pick;
	// 0 means DefaultChoiceCount. It must be between 2 and MaxChoiceCount.
	ChoiceCount int
	// MinRingSize and MaxRingSize bound RingHash's number of ring entries;
	// 0 means DefaultMinRingSize and DefaultMaxRingSize. MinRingSize must
	// not exceed MaxRingSize, and MaxRingSize must not exceed
	// DefaultMaxRingSize. The ring holds at least one entry per endpoint
	// even when that exceeds MaxRingSize. Since entries per unit of weight
	// are rounded to a power of two (see the package documentation), a
	// ring can be up to twice Envoy's size, and smaller than MinRingSize
	// when MaxRingSize is less than twice MinRingSize.
	MinRingSize, MaxRingSize uint64
	// MaglevTableSize is the number of slots of Maglev's lookup table; 0
	// means DefaultMaglevTableSize. It must be a prime no larger than
	// MaxMaglevTableSize, and should be well above the number of endpoints
	// (Envoy advises 100 times): an endpoint whose weight share is below
	// one slot gets no slot.
	MaglevTableSize uint64
	// OverprovisioningFactor, in percent, scales a priority level's
	// healthy fraction into its health (Envoy's overprovisioning_factor);
	// 0 means DefaultOverprovisioningFactor. 100 spills over as soon as
	// one endpoint is unhealthy; a very large value keeps all traffic on
	// the most preferred level with any healthy endpoint.
	OverprovisioningFactor uint32
}

// Endpoint is one upstream host of a cluster.
type Endpoint struct {
	// Address is the endpoint's "ip:port". It identifies the endpoint: it
	// must be unique within a Balancer, and state carries over between
	// balancers by address.
	Address string
	// Weight is the endpoint's load balancing weight; 0 is taken as 1.
	Weight uint32
	// Priority is the endpoint's priority level; lower is more preferred
	// (Envoy: 0 for the local cluster, 1 for the next, ...).
	Priority uint32
	// Cluster, Region and Zone locate the endpoint. They are for callers
	// (stats, headers); balancing does not read them.
	Cluster, Region, Zone string
	// Healthy reports whether the endpoint passes health checks. Only
	// healthy endpoints are picked, unless none is (panic mode).
	Healthy bool
}

// Request is what a Balancer needs to know about the request it picks an
// endpoint for.
type Request struct {
	// Hash is the request's consistent-hash key, used by RingHash and
	// Maglev and ignored by the other algorithms. Compute it with
	// HashString.
	Hash uint64
	// HasHash reports whether Hash is set. Without it, RingHash and Maglev
	// pick at random, as Envoy does for a request that has no hash key.
	HasHash bool
	// Avoid, when not nil, reports whether an address was already tried
	// by this request (Envoy's previous_hosts retry predicate). The
	// balancer returns an endpoint for which Avoid is false whenever one
	// exists among the candidates of the request's priority level. Pick
	// calls it synchronously, possibly several times per endpoint; it
	// should be cheap (a scan of the few addresses tried).
	Avoid func(address string) bool
}

// Pick is the result of Balancer.Pick. Its zero value is not a pick.
type Pick struct {
	// Endpoint is the picked endpoint. It points into the Balancer and must
	// not be modified.
	Endpoint *Endpoint

	state *hostState
}

// Done records the end of the request to p.Endpoint. It must be called
// exactly once for every pick, whether the request succeeded or not:
// LeastRequest balances on the resulting active-request counts. It is a
// no-op on the zero Pick.
func (p Pick) Done() {
	if p.state != nil {
		p.state.active.Add(-1)
	}
}

// ErrNoEndpoint is returned by Balancer.Pick when the cluster has no
// endpoint.
var ErrNoEndpoint = errors.New("no endpoint to pick")

// ErrInvalidConfig is wrapped by the errors New returns for a Config or an
// endpoint list that cannot be balanced.
var ErrInvalidConfig = errors.New("invalid load balancer config")

// HashString returns the consistent-hash key of s (64-bit xxHash, the hash
// Envoy uses), for Request.Hash. Callers hash the header value, cookie or
// source IP that the route's hash policy names.
func HashString(s string) uint64 {
	return xxhash.Sum64String(s)
}

// cacheLine is the assumed size of a CPU cache line; counters that many
// goroutines write are padded to it so they do not share one.
const cacheLine = 64

// hostState is the per-address state that survives balancer updates.
type hostState struct {
	active atomic.Int64
	_      [cacheLine - 8]byte
}

// rrCounter is a priority level's round robin position.
type rrCounter struct {
	next atomic.Uint64
	_    [cacheLine - 8]byte
}

// Balancer picks endpoints of one upstream cluster. It is immutable after
// New apart from its counters, and safe for concurrent use.
type Balancer struct {
	alg         Algorithm
	choiceCount int
	panicMode   bool
	// endpoints and states are parallel and in the caller's order; every
	// other structure refers to endpoints by index.
	endpoints []Endpoint
	states    []*hostState
	index     map[string]int32
	// levels are the priority levels that receive traffic, most preferred
	// first; cumLoad[i] is the share of traffic of levels[:i+1] in parts
	// per million, so cumLoad[len-1] is loadScale.
	levels  []level
	cumLoad []uint32
}

// level is one priority level's picking structures. hosts holds the
// indices of the endpoints that may be picked (healthy, or all in panic
// mode), sorted by address so that nothing depends on the caller's order.
type level struct {
	priority uint32
	hosts    []int32
	// uniform reports whether all hosts have the same weight.
	uniform bool

	// RoundRobin: schedule is the weighted cycle of endpoint indices, nil
	// when uniform (the cycle is hosts).
	rr       *rrCounter
	schedule []int32
	// Random, LeastRequest: weighted sampling of hosts when not uniform.
	alias aliasTable
	// RingHash: ring points sorted by hash, and their endpoint indices.
	ringHashes []uint64
	ringOwners []int32
	// Maglev: endpoint index per slot.
	table []int32
}

// New builds the balancer of a cluster with endpoints eps, which it copies.
// prev, when not nil, is the balancer being replaced: endpoints keep their
// active-request counts by address, and round robin continues its count per
// priority level (at the same position when the level's endpoints are
// unchanged); prev keeps working and may still be used. A nil or empty eps gives a balancer whose Pick
// returns ErrNoEndpoint. New returns an error wrapping ErrInvalidConfig for
// an invalid cfg or duplicate endpoint addresses; it never panics on its
// input.
func New(cfg Config, eps []Endpoint, prev *Balancer) (*Balancer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if len(eps) > MaxEndpoints {
		return nil, fmt.Errorf("%d endpoints, more than %d: %w", len(eps), MaxEndpoints, ErrInvalidConfig)
	}
	b := &Balancer{
		alg:         cfg.Algorithm,
		choiceCount: cfg.ChoiceCount,
		endpoints:   make([]Endpoint, len(eps)),
		states:      make([]*hostState, len(eps)),
		index:       make(map[string]int32, len(eps)),
	}
	for i, ep := range eps {
		if _, dup := b.index[ep.Address]; dup {
			return nil, fmt.Errorf("endpoint address %q listed twice: %w", ep.Address, ErrInvalidConfig)
		}
		if ep.Weight == 0 {
			ep.Weight = 1
		}
		b.endpoints[i] = ep
		b.index[ep.Address] = int32(i)
		if prev != nil {
			if j, ok := prev.index[ep.Address]; ok {
				b.states[i] = prev.states[j]
			}
		}
		if b.states[i] == nil {
			b.states[i] = new(hostState)
		}
	}
	b.buildLevels(cfg, prev)
	return b, nil
}

// withDefaults validates c and fills in its defaults.
func (c Config) withDefaults() (Config, error) {
	if c.Algorithm < RoundRobin || c.Algorithm > Maglev {
		return c, fmt.Errorf("unknown algorithm %d: %w", int(c.Algorithm), ErrInvalidConfig)
	}
	switch {
	case c.ChoiceCount == 0:
		c.ChoiceCount = DefaultChoiceCount
	case c.ChoiceCount < 2 || c.ChoiceCount > MaxChoiceCount:
		return c, fmt.Errorf("choice count %d is not between 2 and %d: %w", c.ChoiceCount, MaxChoiceCount, ErrInvalidConfig)
	}
	if c.MinRingSize == 0 {
		c.MinRingSize = DefaultMinRingSize
	}
	if c.MaxRingSize == 0 {
		c.MaxRingSize = DefaultMaxRingSize
	}
	if c.MaxRingSize > DefaultMaxRingSize {
		return c, fmt.Errorf("maximum ring size %d exceeds %d: %w", c.MaxRingSize, DefaultMaxRingSize, ErrInvalidConfig)
	}
	if c.MinRingSize > c.MaxRingSize {
		return c, fmt.Errorf("minimum ring size %d exceeds maximum ring size %d: %w", c.MinRingSize, c.MaxRingSize, ErrInvalidConfig)
	}
	if c.MaglevTableSize == 0 {
		c.MaglevTableSize = DefaultMaglevTableSize
	}
	if c.MaglevTableSize > MaxMaglevTableSize {
		return c, fmt.Errorf("maglev table size %d exceeds %d: %w", c.MaglevTableSize, MaxMaglevTableSize, ErrInvalidConfig)
	}
	if !isPrime(c.MaglevTableSize) {
		return c, fmt.Errorf("maglev table size %d is not prime: %w", c.MaglevTableSize, ErrInvalidConfig)
	}
	if c.OverprovisioningFactor == 0 {
		c.OverprovisioningFactor = DefaultOverprovisioningFactor
	}
	return c, nil
}

// isPrime reports whether n is prime; n is at most MaxMaglevTableSize, so
// trial division takes a few microseconds.
func isPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	for d := uint64(2); d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}

// buildLevels computes the priority load and each loaded level's picking
// structures.
func (b *Balancer) buildLevels(cfg Config, prev *Balancer) {
	if len(b.endpoints) == 0 {
		return
	}
	loads, panicMode := priorityLoads(b.endpoints, cfg.OverprovisioningFactor)
	b.panicMode = panicMode
	var cum uint32
	for _, l := range loads {
		lvl := level{priority: l.priority, hosts: l.hosts}
		slices.SortFunc(lvl.hosts, func(x, y int32) int {
			return cmp.Compare(b.endpoints[x].Address, b.endpoints[y].Address)
		})
		weights := make([]uint64, len(lvl.hosts))
		lvl.uniform = true
		for i, h := range lvl.hosts {
			weights[i] = uint64(b.endpoints[h].Weight)
			if weights[i] != weights[0] {
				lvl.uniform = false
			}
		}
		switch b.alg {
		case RoundRobin:
			lvl.rr = new(rrCounter)
			if !lvl.uniform {
				lvl.schedule = roundRobinSchedule(lvl.hosts, weights)
			}
			cycle := uint64(len(lvl.hosts))
			if lvl.schedule != nil {
				cycle = uint64(len(lvl.schedule))
			}
			if p := prev.level(l.priority); p != nil && p.rr != nil {
				lvl.rr.next.Store(p.rr.next.Load())
			} else {
				// Start each proxy at a different point of the cycle, so
				// that a fleet of proxies does not hit the same endpoint
				// first.
				lvl.rr.next.Store(rand.Uint64N(cycle))
			}
		case LeastRequest, Random:
			if !lvl.uniform {
				lvl.alias = newAliasTable(weights)
			}
		case RingHash:
			lvl.ringHashes, lvl.ringOwners = buildRing(b.endpoints, lvl.hosts, weights, cfg.MinRingSize, cfg.MaxRingSize)
		case Maglev:
			lvl.table = buildMaglev(b.endpoints, lvl.hosts, weights, cfg.MaglevTableSize)
		}
		cum += l.load
		b.levels = append(b.levels, lvl)
		b.cumLoad = append(b.cumLoad, cum)
	}
}

// level returns b's level of priority p, or nil.
func (b *Balancer) level(p uint32) *level {
	if b == nil {
		return nil
	}
	for i := range b.levels {
		if b.levels[i].priority == p {
			return &b.levels[i]
		}
	}
	return nil
}

// avoidAttempts is how many choices round robin, random and least request
// make before scanning the level for an endpoint that is not avoided.
const avoidAttempts = 4

// Pick picks an endpoint for req. The caller must call Done on the result
// when the request to the endpoint ends. Pick returns ErrNoEndpoint when b
// has no endpoint (or b is nil); it does not allocate.
func (b *Balancer) Pick(req Request) (Pick, error) {
	if b == nil || len(b.levels) == 0 {
		return Pick{}, ErrNoEndpoint
	}
	var hash uint64
	if b.alg == RingHash || b.alg == Maglev {
		hash = req.Hash
		if !req.HasHash {
			hash = rand.Uint64()
		}
	}
	lvl := &b.levels[0]
	if len(b.levels) > 1 {
		r := hash
		if b.alg != RingHash && b.alg != Maglev {
			r = rand.Uint64()
		}
		lvl = b.chooseLevel(r)
	}
	var h int32
	switch b.alg {
	case RoundRobin:
		h = b.pickRoundRobin(lvl, req.Avoid)
	case LeastRequest:
		h = b.pickLeastRequest(lvl, req.Avoid)
	case Random:
		h = b.pickRandom(lvl, req.Avoid)
	case RingHash:
		i := ringSearch(lvl.ringHashes, hash)
		h = b.avoidOnCycle(lvl, lvl.ringOwners, i, hash, req.Avoid)
	case Maglev:
		i := int(hash % uint64(len(lvl.table)))
		h = b.avoidOnCycle(lvl, lvl.table, i, hash, req.Avoid)
	}
	st := b.states[h]
	st.active.Add(1)
	return Pick{Endpoint: &b.endpoints[h], state: st}, nil
}

// chooseLevel returns the level that the request with the given hash goes
// to. For hash algorithms the hash is the request's key, so a key sticks to
// a level as long as the priority load does not change; it is mixed first
// so that the level does not correlate with the position on the ring.
func (b *Balancer) chooseLevel(hash uint64) *level {
	r, _ := bits.Mul64(mix64(hash), loadScale)
	for i, c := range b.cumLoad {
		if uint64(c) > r {
			return &b.levels[i]
		}
	}
	return &b.levels[len(b.levels)-1]
}

// mix64 is SplitMix64's finalizer, a bijection that spreads every input
// bit over the output.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// uniformIndex maps the random r to [0, n) (Lemire's multiply-high; the
// bias, n/2^64, is negligible).
func uniformIndex(r uint64, n int) int {
	hi, _ := bits.Mul64(r, uint64(n))
	return int(hi)
}

func (b *Balancer) avoided(h int32, avoid func(string) bool) bool {
	return avoid != nil && avoid(b.endpoints[h].Address)
}

func (b *Balancer) pickRoundRobin(lvl *level, avoid func(string) bool) int32 {
	n := lvl.rr.next.Add(1) - 1
	cycle := lvl.hosts
	if lvl.schedule != nil {
		cycle = lvl.schedule
	}
	i := int(n % uint64(len(cycle)))
	h := cycle[i]
	if !b.avoided(h, avoid) {
		return h
	}
	// Look further along the cycle without taking more turns from the
	// shared counter.
	for range avoidAttempts {
		if i++; i == len(cycle) {
			i = 0
		}
		if c := cycle[i]; !b.avoided(c, avoid) {
			return c
		}
	}
	return b.scanLevel(lvl, h, rand.Uint64(), avoid)
}

// sample returns a host of lvl at random, in proportion to weight.
func (lvl *level) sample() int32 {
	r := rand.Uint64()
	if lvl.uniform {
		return lvl.hosts[uniformIndex(r, len(lvl.hosts))]
	}
	return lvl.hosts[lvl.alias.sample(r)]
}

func (b *Balancer) pickRandom(lvl *level, avoid func(string) bool) int32 {
	h := lvl.sample()
	if !b.avoided(h, avoid) {
		return h
	}
	for range avoidAttempts {
		if c := lvl.sample(); !b.avoided(c, avoid) {
			return c
		}
	}
	return b.scanLevel(lvl, h, rand.Uint64(), avoid)
}

func (b *Balancer) pickLeastRequest(lvl *level, avoid func(string) bool) int32 {
	if len(lvl.hosts) == 1 {
		return lvl.hosts[0]
	}
	first := int32(-1)
	for range avoidAttempts + 1 {
		best := int32(-1)
		var bestActive uint64
		for range b.choiceCount {
			c := lvl.sample()
			if first < 0 {
				first = c
			}
			if b.avoided(c, avoid) {
				continue
			}
			active := uint64(max(b.states[c].active.Load(), 0))
			if best < 0 || b.fewerPerWeight(active, c, bestActive, best, lvl.uniform) {
				best, bestActive = c, active
			}
		}
		if best >= 0 {
			return best
		}
	}
	return b.scanLevel(lvl, first, rand.Uint64(), avoid)
}

// fewerPerWeight reports whether endpoint x with active requests ax has
// strictly fewer active requests per unit of weight than endpoint y with
// ay, comparing ax/wx < ay/wy exactly as ax*wy < ay*wx.
func (b *Balancer) fewerPerWeight(ax uint64, x int32, ay uint64, y int32, uniform bool) bool {
	if uniform {
		return ax < ay
	}
	lh, ll := bits.Mul64(ax, uint64(b.endpoints[y].Weight))
	rh, rl := bits.Mul64(ay, uint64(b.endpoints[x].Weight))
	return lh < rh || (lh == rh && ll < rl)
}

// avoidOnCycle returns owners[i], or, when the request avoids it, the
// first owner further along the cyclic owners (a ring or a Maglev table)
// that it does not avoid.
func (b *Balancer) avoidOnCycle(lvl *level, owners []int32, i int, hash uint64, avoid func(string) bool) int32 {
	h := owners[i]
	if !b.avoided(h, avoid) {
		return h
	}
	// Runs of one owner are common (a heavy endpoint, a Maglev table), so
	// avoid is asked once per run; the walk is bounded because a table
	// whose every slot is avoided can hold millions of them.
	last := h
	for range min(len(owners), 4*len(lvl.hosts)+16) {
		if i++; i == len(owners) {
			i = 0
		}
		c := owners[i]
		if c == last {
			continue
		}
		if !b.avoided(c, avoid) {
			return c
		}
		last = c
	}
	// The key decides where the scan starts, so the choice stays
	// consistent for the key.
	return b.scanLevel(lvl, h, mix64(hash), avoid)
}

// scanLevel returns the first host of lvl that is not avoided, starting at
// a position chosen by r, or fallback when all are.
func (b *Balancer) scanLevel(lvl *level, fallback int32, r uint64, avoid func(string) bool) int32 {
	n := len(lvl.hosts)
	start := uniformIndex(r, n)
	for j := range n {
		i := start + j
		if i >= n {
			i -= n
		}
		if c := lvl.hosts[i]; !b.avoided(c, avoid) {
			return c
		}
	}
	return fallback
}

// Endpoints returns a copy of b's endpoints in the order given to New, with
// weight 0 replaced by 1.
func (b *Balancer) Endpoints() []Endpoint {
	if b == nil {
		return nil
	}
	return slices.Clone(b.endpoints)
}

// ActiveRequests returns the number of requests to the endpoint with the
// given address that were picked and are not Done yet, counted across the
// balancers that carried the endpoint's state over; 0 for an unknown
// address.
func (b *Balancer) ActiveRequests(address string) int64 {
	if b == nil {
		return 0
	}
	i, ok := b.index[address]
	if !ok {
		return 0
	}
	return b.states[i].active.Load()
}

// Panic reports whether b is in panic mode: no endpoint is healthy, so it
// balances over all endpoints of the most preferred priority level.
func (b *Balancer) Panic() bool {
	return b != nil && b.panicMode
}
