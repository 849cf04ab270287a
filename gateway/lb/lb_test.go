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
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"testing"
)

var algorithms = []Algorithm{RoundRobin, LeastRequest, Random, RingHash, Maglev}

// addr is the address of test endpoint i.
func addr(i int) string { return fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250) }

// endpoints returns n healthy endpoints of weight 1 and priority 0.
func endpoints(n int) []Endpoint {
	eps := make([]Endpoint, n)
	for i := range eps {
		eps[i] = Endpoint{Address: addr(i), Weight: 1, Healthy: true}
	}
	return eps
}

func mustNew(t testing.TB, cfg Config, eps []Endpoint, prev *Balancer) *Balancer {
	t.Helper()
	b, err := New(cfg, eps, prev)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return b
}

func mustPick(t testing.TB, b *Balancer, req Request) Pick {
	t.Helper()
	p, err := b.Pick(req)
	if err != nil {
		t.Fatalf("Pick: %v", err)
	}
	return p
}

// keyRequest returns the i-th of a series of requests with distinct hash
// keys; other algorithms ignore the key.
func keyRequest(i int) Request {
	return Request{Hash: HashString("key-" + strconv.Itoa(i)), HasHash: true}
}

// pickCounts picks n times with next(i) as the request, finishing each
// request at once, and counts the picks per address.
func pickCounts(t testing.TB, b *Balancer, n int, next func(i int) Request) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for i := range n {
		p := mustPick(t, b, next(i))
		counts[p.Endpoint.Address]++
		p.Done()
	}
	return counts
}

// assertShare fails unless got/n is within tolerance of want.
func assertShare(t testing.TB, what string, got, n int, want, tolerance float64) {
	t.Helper()
	if share := float64(got) / float64(n); math.Abs(share-want) > tolerance {
		t.Errorf("%s: share %.4f, want %.4f ± %.3f", what, share, want, tolerance)
	}
}

func TestAlgorithmString(t *testing.T) {
	for a, want := range map[Algorithm]string{
		RoundRobin:   "ROUND_ROBIN",
		LeastRequest: "LEAST_REQUEST",
		Random:       "RANDOM",
		RingHash:     "RING_HASH",
		Maglev:       "MAGLEV",
		Algorithm(9): "Algorithm(9)",
	} {
		if got := a.String(); got != want {
			t.Errorf("Algorithm(%d).String() = %q, want %q", int(a), got, want)
		}
	}
}

func TestHashString(t *testing.T) {
	// XXH64 of the empty input with seed 0, from the xxHash specification's
	// test vectors.
	if got := HashString(""); got != 0xef46db3751d8e999 {
		t.Errorf("HashString(\"\") = %#x, want 0xef46db3751d8e999", got)
	}
	if HashString("a") == HashString("b") {
		t.Error("HashString(\"a\") == HashString(\"b\")")
	}
}

func TestNewInvalid(t *testing.T) {
	dup := endpoints(3)
	dup[2].Address = dup[0].Address
	tests := map[string]struct {
		cfg Config
		eps []Endpoint
	}{
		"unknown algorithm":           {cfg: Config{Algorithm: Maglev + 1}},
		"negative algorithm":          {cfg: Config{Algorithm: -1}},
		"choice count 1":              {cfg: Config{Algorithm: LeastRequest, ChoiceCount: 1}},
		"negative choice count":       {cfg: Config{ChoiceCount: -2}},
		"choice count too large":      {cfg: Config{ChoiceCount: MaxChoiceCount + 1}},
		"min ring size above max":     {cfg: Config{Algorithm: RingHash, MinRingSize: 2048, MaxRingSize: 1024}},
		"min ring size above default": {cfg: Config{Algorithm: RingHash, MinRingSize: DefaultMaxRingSize + 1}},
		"max ring size too large":     {cfg: Config{Algorithm: RingHash, MaxRingSize: DefaultMaxRingSize + 1}},
		"maglev table size not prime": {cfg: Config{Algorithm: Maglev, MaglevTableSize: 65536}},
		"maglev table size 1":         {cfg: Config{Algorithm: Maglev, MaglevTableSize: 1}},
		"maglev table size too large": {cfg: Config{Algorithm: Maglev, MaglevTableSize: 5000087}},
		"duplicate address":           {eps: dup},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			eps := tc.eps
			if eps == nil {
				eps = endpoints(3)
			}
			b, err := New(tc.cfg, eps, nil)
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New error = %v, want ErrInvalidConfig", err)
			}
			if b != nil {
				t.Errorf("New returned a balancer with error %v", err)
			}
		})
	}
}

func TestNewValid(t *testing.T) {
	tests := map[string]Config{
		"zero":                    {},
		"choice count 2":          {Algorithm: LeastRequest, ChoiceCount: 2},
		"choice count max":        {Algorithm: LeastRequest, ChoiceCount: MaxChoiceCount},
		"min ring size equal max": {Algorithm: RingHash, MinRingSize: 100, MaxRingSize: 100},
		"max ring size max":       {Algorithm: RingHash, MaxRingSize: DefaultMaxRingSize},
		"small prime table":       {Algorithm: Maglev, MaglevTableSize: 2},
		"largest table":           {Algorithm: Maglev, MaglevTableSize: MaxMaglevTableSize},
		"factor 100":              {OverprovisioningFactor: 100},
		"huge factor":             {OverprovisioningFactor: math.MaxUint32},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			b := mustNew(t, cfg, endpoints(3), nil)
			mustPick(t, b, Request{}).Done()
		})
	}
}

func TestPickNoEndpoint(t *testing.T) {
	for _, alg := range algorithms {
		t.Run(alg.String(), func(t *testing.T) {
			for _, eps := range [][]Endpoint{nil, {}} {
				b := mustNew(t, Config{Algorithm: alg}, eps, nil)
				p, err := b.Pick(keyRequest(1))
				if !errors.Is(err, ErrNoEndpoint) {
					t.Errorf("Pick error = %v, want ErrNoEndpoint", err)
				}
				if p.Endpoint != nil {
					t.Errorf("Pick returned endpoint %v with error", p.Endpoint)
				}
				p.Done() // the zero Pick's Done is a no-op
			}
		})
	}
	var b *Balancer
	if _, err := b.Pick(Request{}); !errors.Is(err, ErrNoEndpoint) {
		t.Errorf("nil Balancer: Pick error = %v, want ErrNoEndpoint", err)
	}
	if b.Endpoints() != nil || b.ActiveRequests("x") != 0 || b.Panic() {
		t.Error("nil Balancer is not empty")
	}
}

func TestWeightedDistribution(t *testing.T) {
	const n = 40_000
	tests := map[string]struct {
		weights   []uint32
		tolerance float64 // of every endpoint's share
	}{
		"1:3":       {weights: []uint32{1, 3}, tolerance: 0.03},
		"0 is 1":    {weights: []uint32{0, 1}, tolerance: 0.03},
		"1:2:5":     {weights: []uint32{1, 2, 5}, tolerance: 0.03},
		"equal":     {weights: []uint32{7, 7, 7, 7}, tolerance: 0.03},
		"1:1000":    {weights: []uint32{1, 1000}, tolerance: 0.01},
		"huge 1:3":  {weights: []uint32{1 << 30, 3 << 30}, tolerance: 0.03},
		"many odds": {weights: []uint32{3, 5, 7, 11, 13, 17, 19, 23}, tolerance: 0.03},
	}
	for name, tc := range tests {
		for _, alg := range algorithms {
			t.Run(name+"/"+alg.String(), func(t *testing.T) {
				eps := endpoints(len(tc.weights))
				var sum float64
				for i, w := range tc.weights {
					eps[i].Weight = w
					sum += float64(max(w, 1))
				}
				b := mustNew(t, Config{Algorithm: alg}, eps, nil)
				counts := pickCounts(t, b, n, keyRequest)
				for i, w := range tc.weights {
					assertShare(t, eps[i].Address, counts[eps[i].Address], n, float64(max(w, 1))/sum, tc.tolerance)
				}
			})
		}
	}
}

func TestRoundRobinOrder(t *testing.T) {
	t.Run("equal weights alternate", func(t *testing.T) {
		b := mustNew(t, Config{}, endpoints(3), nil)
		var seq []string
		for range 30 {
			p := mustPick(t, b, Request{})
			seq = append(seq, p.Endpoint.Address)
			p.Done()
		}
		for i := range seq {
			if i+1 < len(seq) && seq[i] == seq[i+1] {
				t.Fatalf("picks %d and %d are both %s: %v", i, i+1, seq[i], seq)
			}
			if i+3 < len(seq) && seq[i] != seq[i+3] {
				t.Fatalf("pick %d is %s, pick %d is %s: not a cycle of 3: %v", i, seq[i], i+3, seq[i+3], seq)
			}
		}
	})
	t.Run("1:3 exact and spread", func(t *testing.T) {
		eps := endpoints(2)
		eps[1].Weight = 3
		b := mustNew(t, Config{}, eps, nil)
		counts := map[string]int{}
		prevLight := false
		for i := range 400 {
			p := mustPick(t, b, Request{})
			light := p.Endpoint.Address == eps[0].Address
			if light && prevLight {
				t.Fatalf("pick %d: the light endpoint twice in a row", i)
			}
			prevLight = light
			counts[p.Endpoint.Address]++
			p.Done()
		}
		if counts[eps[0].Address] != 100 || counts[eps[1].Address] != 300 {
			t.Errorf("counts %v, want 100 and 300", counts)
		}
	})
}

func TestLeastRequestPrefersIdle(t *testing.T) {
	tests := map[string]struct {
		choices  int
		minShare float64 // of the idle endpoint
	}{
		// Two choices drawn with replacement from two endpoints are both
		// the busy one a quarter of the time.
		"two choices":  {choices: 2, minShare: 0.72},
		"five choices": {choices: 5, minShare: 0.95},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			eps := endpoints(2)
			b := mustNew(t, Config{Algorithm: LeastRequest, ChoiceCount: tc.choices}, eps, nil)
			b.states[0].active.Store(10) // eps[0] is busy
			const n = 10_000
			counts := pickCounts(t, b, n, func(int) Request { return Request{} })
			if share := float64(counts[eps[1].Address]) / n; share < tc.minShare {
				t.Errorf("idle endpoint got %.3f of picks, want at least %.2f", share, tc.minShare)
			}
			if got := b.ActiveRequests(eps[0].Address); got != 10 {
				t.Errorf("busy endpoint has %d active requests, want 10", got)
			}
		})
	}
}

// TestLeastRequestHeld picks without finishing, so active requests pile
// up: least request keeps them proportional to weight.
func TestLeastRequestHeld(t *testing.T) {
	tests := map[string][]uint32{
		"equal":    {1, 1, 1, 1},
		"weighted": {1, 3},
		"1:2:5":    {1, 2, 5},
	}
	for name, weights := range tests {
		t.Run(name, func(t *testing.T) {
			eps := endpoints(len(weights))
			var sum uint32
			for i, w := range weights {
				eps[i].Weight = w
				sum += w
			}
			b := mustNew(t, Config{Algorithm: LeastRequest}, eps, nil)
			const n = 4000
			picks := make([]Pick, 0, n)
			for range n {
				picks = append(picks, mustPick(t, b, Request{}))
			}
			for i, w := range weights {
				want := float64(n) * float64(w) / float64(sum)
				if got := float64(b.ActiveRequests(eps[i].Address)); math.Abs(got-want) > 0.03*n {
					t.Errorf("%s (weight %d): %v active requests, want %v", eps[i].Address, w, got, want)
				}
			}
			for _, p := range picks {
				p.Done()
			}
			for _, ep := range eps {
				if got := b.ActiveRequests(ep.Address); got != 0 {
					t.Errorf("%s: %d active requests after Done, want 0", ep.Address, got)
				}
			}
		})
	}
}

func TestHashConsistency(t *testing.T) {
	for _, alg := range []Algorithm{RingHash, Maglev} {
		t.Run(alg.String(), func(t *testing.T) {
			eps := endpoints(10)
			for i := range eps {
				eps[i].Weight = uint32(1 + i%3)
			}
			b := mustNew(t, Config{Algorithm: alg}, eps, nil)
			shuffled := slices.Clone(eps)
			slices.Reverse(shuffled)
			shuffled[0], shuffled[4] = shuffled[4], shuffled[0]
			other := mustNew(t, Config{Algorithm: alg}, shuffled, nil)
			seen := map[string]bool{}
			for i := range 2000 {
				req := keyRequest(i)
				p := mustPick(t, b, req)
				again := mustPick(t, b, req)
				elsewhere := mustPick(t, other, req)
				if again.Endpoint.Address != p.Endpoint.Address {
					t.Fatalf("key %d: %s, then %s", i, p.Endpoint.Address, again.Endpoint.Address)
				}
				if elsewhere.Endpoint.Address != p.Endpoint.Address {
					t.Fatalf("key %d: %s, but %s with the endpoints in another order", i, p.Endpoint.Address, elsewhere.Endpoint.Address)
				}
				seen[p.Endpoint.Address] = true
				p.Done()
				again.Done()
				elsewhere.Done()
			}
			if len(seen) != len(eps) {
				t.Errorf("2000 keys reached %d of %d endpoints", len(seen), len(eps))
			}
		})
	}
}

// TestHashRemoval removes one endpoint of ten and counts the keys that move.
func TestHashRemoval(t *testing.T) {
	tests := map[string]struct {
		alg      Algorithm
		weights  []uint32
		maxMoved float64 // share of all keys
		// strict: only the removed endpoint's keys may move.
		strict bool
	}{
		"ring hash":          {alg: RingHash, strict: true, maxMoved: 0.15},
		"ring hash weighted": {alg: RingHash, weights: []uint32{1, 2, 3, 4, 5, 1, 2, 3, 4, 5}, strict: true, maxMoved: 0.15},
		"maglev":             {alg: Maglev, maxMoved: 0.20},
		"maglev weighted":    {alg: Maglev, weights: []uint32{1, 2, 3, 4, 5, 1, 2, 3, 4, 5}, maxMoved: 0.20},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			eps := endpoints(10)
			for i, w := range tc.weights {
				eps[i].Weight = w
			}
			const removed = 6
			before := mustNew(t, Config{Algorithm: tc.alg}, eps, nil)
			after := mustNew(t, Config{Algorithm: tc.alg}, slices.Delete(slices.Clone(eps), removed, removed+1), before)
			const n = 20_000
			moved, movedOthers, onRemoved := 0, 0, 0
			for i := range n {
				req := keyRequest(i)
				p, q := mustPick(t, before, req), mustPick(t, after, req)
				if p.Endpoint.Address == eps[removed].Address {
					onRemoved++
				}
				if p.Endpoint.Address != q.Endpoint.Address {
					moved++
					if p.Endpoint.Address != eps[removed].Address {
						movedOthers++
					}
				}
				p.Done()
				q.Done()
			}
			if tc.strict && movedOthers > 0 {
				t.Errorf("%d keys of remaining endpoints moved", movedOthers)
			}
			if onRemoved == 0 {
				t.Fatal("no key was on the removed endpoint")
			}
			if share := float64(moved) / n; share > tc.maxMoved {
				t.Errorf("%.3f of keys moved (%.3f were on the removed endpoint), want at most %.2f", share, float64(onRemoved)/n, tc.maxMoved)
			}
		})
	}
}

func TestPriority(t *testing.T) {
	// ep describes endpoints in bulk: count endpoints of one priority, the
	// first healthy of them healthy.
	type group struct {
		priority       uint32
		count, healthy int
	}
	tests := map[string]struct {
		groups []group
		factor uint32
		// want is each priority's share of picks.
		want      map[uint32]float64
		wantPanic bool
	}{
		"healthy level 0 takes all": {
			groups: []group{{0, 3, 3}, {1, 3, 3}},
			want:   map[uint32]float64{0: 1},
		},
		"level 0 with no healthy endpoint fails over": {
			groups: []group{{0, 3, 0}, {1, 3, 3}},
			want:   map[uint32]float64{1: 1},
		},
		"fails over to the first level with health": {
			groups: []group{{0, 3, 0}, {1, 2, 0}, {2, 4, 4}, {3, 4, 4}},
			want:   map[uint32]float64{2: 1},
		},
		"half healthy spills 30%": {
			groups: []group{{0, 10, 5}, {1, 10, 10}},
			want:   map[uint32]float64{0: 0.7, 1: 0.3},
		},
		"72% healthy keeps all": {
			groups: []group{{0, 25, 18}, {1, 10, 10}},
			want:   map[uint32]float64{0: 1},
		},
		"factor 100 spills at once": {
			groups: []group{{0, 5, 4}, {1, 5, 5}},
			factor: 100,
			want:   map[uint32]float64{0: 0.8, 1: 0.2},
		},
		"huge factor never spills": {
			groups: []group{{0, 100, 1}, {1, 5, 5}},
			factor: math.MaxUint32,
			want:   map[uint32]float64{0: 1},
		},
		"low total health is scaled up": {
			// Health 70% and 14%: normalized to 70/84 and 14/84.
			groups: []group{{0, 10, 5}, {1, 10, 1}},
			want:   map[uint32]float64{0: 70.0 / 84, 1: 14.0 / 84},
		},
		"one healthy endpoint takes all when the rest are unhealthy": {
			groups: []group{{0, 10, 1}, {1, 10, 0}},
			want:   map[uint32]float64{0: 1},
		},
		"panic mode balances over all of level 0": {
			groups:    []group{{0, 4, 0}, {1, 4, 0}},
			want:      map[uint32]float64{0: 1},
			wantPanic: true,
		},
		"panic mode uses the most preferred level present": {
			groups:    []group{{7, 4, 0}, {3, 2, 0}},
			want:      map[uint32]float64{3: 1},
			wantPanic: true,
		},
		"levels need not start at 0": {
			groups: []group{{9, 2, 2}, {4, 2, 0}},
			want:   map[uint32]float64{9: 1},
		},
	}
	for name, tc := range tests {
		var eps []Endpoint
		for _, g := range tc.groups {
			for i := range g.count {
				eps = append(eps, Endpoint{
					Address:  fmt.Sprintf("10.%d.0.%d:80", g.priority, i),
					Priority: g.priority,
					Healthy:  i < g.healthy,
				})
			}
		}
		for _, alg := range algorithms {
			t.Run(name+"/"+alg.String(), func(t *testing.T) {
				b := mustNew(t, Config{Algorithm: alg, OverprovisioningFactor: tc.factor}, eps, nil)
				if b.Panic() != tc.wantPanic {
					t.Errorf("Panic() = %v, want %v", b.Panic(), tc.wantPanic)
				}
				const n = 20_000
				perPriority := map[uint32]int{}
				perEndpoint := map[string]int{}
				for i := range n {
					req := Request{}
					if i%2 == 0 {
						req = keyRequest(i)
					}
					p := mustPick(t, b, req)
					if !p.Endpoint.Healthy && !tc.wantPanic {
						t.Fatalf("picked unhealthy %s", p.Endpoint.Address)
					}
					perPriority[p.Endpoint.Priority]++
					perEndpoint[p.Endpoint.Address]++
					p.Done()
				}
				for prio, got := range perPriority {
					if tc.want[prio] == 0 {
						t.Errorf("priority %d got %d picks, want none", prio, got)
					}
				}
				for prio, want := range tc.want {
					assertShare(t, fmt.Sprintf("priority %d", prio), perPriority[prio], n, want, 0.02)
				}
				if tc.wantPanic {
					for _, ep := range eps {
						if tc.want[ep.Priority] > 0 && perEndpoint[ep.Address] == 0 {
							t.Errorf("panic mode never picked %s", ep.Address)
						}
					}
				}
			})
		}
	}
}

func TestPriorityLoads(t *testing.T) {
	eps := func(spec ...[3]int) []Endpoint { // {priority, count, healthy}
		var out []Endpoint
		for _, s := range spec {
			for i := range s[1] {
				out = append(out, Endpoint{Address: fmt.Sprintf("%d/%d", s[0], i), Priority: uint32(s[0]), Healthy: i < s[2]})
			}
		}
		return out
	}
	tests := map[string]struct {
		eps       []Endpoint
		factor    uint32
		want      map[uint32]uint32
		wantPanic bool
	}{
		"all healthy":        {eps: eps([3]int{0, 2, 2}, [3]int{1, 2, 2}), factor: 140, want: map[uint32]uint32{0: loadScale}},
		"half healthy":       {eps: eps([3]int{0, 10, 5}, [3]int{1, 2, 2}), factor: 140, want: map[uint32]uint32{0: 700_000, 1: 300_000}},
		"remainder to first": {eps: eps([3]int{0, 10, 5}, [3]int{1, 10, 1}), factor: 140, want: map[uint32]uint32{0: 833_334, 1: 166_666}},
		"panic":              {eps: eps([3]int{2, 3, 0}, [3]int{1, 2, 0}), factor: 140, want: map[uint32]uint32{1: loadScale}, wantPanic: true},
		// 1 healthy of 2^24 rounds to 0 ppm; it must still count.
		"tiny health": {eps: eps([3]int{0, 1 << 17, 1}), factor: 100, want: map[uint32]uint32{0: loadScale}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			levels, panicMode := priorityLoads(tc.eps, tc.factor)
			if panicMode != tc.wantPanic {
				t.Errorf("panic = %v, want %v", panicMode, tc.wantPanic)
			}
			got := map[uint32]uint32{}
			for _, l := range levels {
				got[l.priority] = l.load
				for _, h := range l.hosts {
					if ep := tc.eps[h]; ep.Priority != l.priority || (!ep.Healthy && !panicMode) {
						t.Errorf("level %d holds %+v", l.priority, ep)
					}
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("loads %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAvoid(t *testing.T) {
	avoidAllBut := func(keep string) func(string) bool {
		return func(a string) bool { return a != keep }
	}
	for _, alg := range algorithms {
		t.Run(alg.String(), func(t *testing.T) {
			t.Run("alternative exists", func(t *testing.T) {
				eps := endpoints(5)
				b := mustNew(t, Config{Algorithm: alg}, eps, nil)
				counts := pickCounts(t, b, 1000, func(i int) Request {
					r := keyRequest(i)
					r.Avoid = avoidAllBut(eps[3].Address)
					return r
				})
				if counts[eps[3].Address] != 1000 {
					t.Errorf("picks %v, want only %s", counts, eps[3].Address)
				}
			})
			t.Run("heavy endpoint avoided", func(t *testing.T) {
				eps := endpoints(2)
				eps[0].Weight = 100_000
				b := mustNew(t, Config{Algorithm: alg}, eps, nil)
				counts := pickCounts(t, b, 1000, func(i int) Request {
					r := keyRequest(i)
					r.Avoid = avoidAllBut(eps[1].Address)
					return r
				})
				if counts[eps[1].Address] != 1000 {
					t.Errorf("picks %v, want only %s", counts, eps[1].Address)
				}
			})
			t.Run("all avoided", func(t *testing.T) {
				eps := endpoints(3)
				b := mustNew(t, Config{Algorithm: alg}, eps, nil)
				counts := pickCounts(t, b, 300, func(i int) Request {
					r := keyRequest(i)
					r.Avoid = func(string) bool { return true }
					return r
				})
				total := 0
				for _, ep := range eps {
					total += counts[ep.Address]
				}
				if total != 300 {
					t.Errorf("picks %v, want 300 picks of the endpoints", counts)
				}
			})
			t.Run("retry of a key", func(t *testing.T) {
				eps := endpoints(10)
				b := mustNew(t, Config{Algorithm: alg}, eps, nil)
				for i := range 200 {
					req := keyRequest(i)
					first := mustPick(t, b, req)
					first.Done()
					tried := first.Endpoint.Address
					req.Avoid = func(a string) bool { return a == tried }
					retry := mustPick(t, b, req)
					retry.Done()
					if retry.Endpoint.Address == tried {
						t.Fatalf("key %d: retry picked %s again", i, tried)
					}
					if alg == RingHash || alg == Maglev {
						again := mustPick(t, b, req)
						again.Done()
						if again.Endpoint.Address != retry.Endpoint.Address {
							t.Fatalf("key %d: retry picked %s, then %s", i, retry.Endpoint.Address, again.Endpoint.Address)
						}
					}
				}
			})
			t.Run("stays in the level", func(t *testing.T) {
				eps := endpoints(3)
				eps[1].Priority, eps[2].Priority = 1, 1
				b := mustNew(t, Config{Algorithm: alg}, eps, nil)
				counts := pickCounts(t, b, 100, func(i int) Request {
					r := keyRequest(i)
					r.Avoid = func(a string) bool { return a == eps[0].Address }
					return r
				})
				if counts[eps[0].Address] != 100 {
					t.Errorf("picks %v, want only %s, the one endpoint of the loaded level", counts, eps[0].Address)
				}
			})
		})
	}
}

func TestCarryOver(t *testing.T) {
	t.Run("active requests", func(t *testing.T) {
		eps := endpoints(2)
		cfg := Config{Algorithm: LeastRequest}
		old := mustNew(t, cfg, eps, nil)
		onlyFirst := Request{Avoid: func(a string) bool { return a != eps[0].Address }}
		var held []Pick
		for range 3 {
			held = append(held, mustPick(t, old, onlyFirst))
		}
		// The update adds an endpoint and switches algorithm; the count
		// survives both.
		next := mustNew(t, Config{Algorithm: RoundRobin}, append(slices.Clone(eps), Endpoint{Address: "10.9.9.9:80", Healthy: true}), old)
		if got := next.ActiveRequests(eps[0].Address); got != 3 {
			t.Fatalf("after the update %s has %d active requests, want 3", eps[0].Address, got)
		}
		fresh := mustNew(t, cfg, eps, nil)
		if got := fresh.ActiveRequests(eps[0].Address); got != 0 {
			t.Errorf("without prev %s has %d active requests, want 0", eps[0].Address, got)
		}
		// Requests picked from the old balancer end after the update.
		for _, p := range held {
			p.Done()
		}
		if got := next.ActiveRequests(eps[0].Address); got != 0 {
			t.Errorf("after Done %s has %d active requests, want 0", eps[0].Address, got)
		}
		// An endpoint that left and came back starts again from zero.
		p := mustPick(t, next, onlyFirst)
		defer p.Done()
		gone := mustNew(t, cfg, eps[1:], next)
		back := mustNew(t, cfg, eps, gone)
		if got := back.ActiveRequests(eps[0].Address); got != 0 {
			t.Errorf("after leaving and returning %s has %d active requests, want 0", eps[0].Address, got)
		}
	})
	t.Run("least request balances on carried counts", func(t *testing.T) {
		eps := endpoints(2)
		cfg := Config{Algorithm: LeastRequest, ChoiceCount: 8}
		old := mustNew(t, cfg, eps, nil)
		old.states[0].active.Store(50)
		next := mustNew(t, cfg, eps, old)
		counts := pickCounts(t, next, 1000, func(int) Request { return Request{} })
		if counts[eps[1].Address] < 980 {
			t.Errorf("picks %v: the carried-over busy endpoint is not avoided", counts)
		}
	})
	t.Run("round robin position", func(t *testing.T) {
		eps := endpoints(4)
		old := mustNew(t, Config{}, eps, nil)
		for range 5 {
			mustPick(t, old, Request{}).Done()
		}
		next := mustNew(t, Config{}, eps, old)
		for i := range 8 {
			p, q := mustPick(t, old, Request{}), mustPick(t, next, Request{})
			if p.Endpoint.Address != q.Endpoint.Address {
				t.Fatalf("pick %d after the update: %s, the old balancer says %s", i, q.Endpoint.Address, p.Endpoint.Address)
			}
			p.Done()
			q.Done()
		}
	})
}

func TestConcurrentPicks(t *testing.T) {
	for _, alg := range algorithms {
		t.Run(alg.String(), func(t *testing.T) {
			eps := endpoints(20)
			for i := range eps {
				eps[i].Weight = uint32(1 + i%4)
				eps[i].Healthy = i%5 != 0
				eps[i].Priority = uint32(i % 2)
			}
			b := mustNew(t, Config{Algorithm: alg}, eps, nil)
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					for i := range 2000 {
						req := keyRequest(g*10_000 + i)
						if i%3 == 0 {
							req.Avoid = func(a string) bool { return a == eps[1].Address }
						}
						p, err := b.Pick(req)
						if err != nil {
							t.Errorf("Pick: %v", err)
							return
						}
						p.Done()
					}
				})
			}
			// Updates build from b while it serves.
			wg.Go(func() {
				prev := b
				for range 20 {
					next, err := New(Config{Algorithm: alg}, eps, prev)
					if err != nil {
						t.Errorf("New: %v", err)
						return
					}
					prev = next
				}
			})
			wg.Wait()
			for _, ep := range eps {
				if got := b.ActiveRequests(ep.Address); got != 0 {
					t.Errorf("%s: %d active requests after all are done", ep.Address, got)
				}
			}
		})
	}
}

func TestEndpoints(t *testing.T) {
	eps := endpoints(3)
	eps[1].Weight = 0
	eps[2].Zone = "z"
	b := mustNew(t, Config{}, eps, nil)
	got := b.Endpoints()
	want := slices.Clone(eps)
	want[1].Weight = 1
	if !slices.Equal(got, want) {
		t.Errorf("Endpoints() = %v, want %v", got, want)
	}
	got[0].Address = "changed"
	eps[2].Address = "changed too"
	if b.Endpoints()[0].Address != addr(0) || b.Endpoints()[2].Address != addr(2) {
		t.Error("Balancer shares memory with New's input or Endpoints' result")
	}
}

func TestAliasTable(t *testing.T) {
	tests := map[string][]uint64{
		"one":      {5},
		"equal":    {2, 2, 2},
		"1:3":      {1, 3},
		"skewed":   {1, 1_000_000, 7, 3},
		"huge":     {math.MaxUint32, 1, math.MaxUint32 - 1},
		"many odd": {3, 5, 7, 11, 13, 17, 19, 23, 29},
	}
	for name, weights := range tests {
		t.Run(name, func(t *testing.T) {
			table := newAliasTable(weights)
			// Each column is 1/n of the probability: threshold/2^32 of it
			// for the column, the rest for its alias.
			got := make([]float64, len(weights))
			n := float64(len(weights))
			for c, col := range table {
				own := float64(col.threshold) / (1 << 32)
				if int(col.alias) == c {
					own = 1
				}
				got[c] += own / n
				got[col.alias] += (1 - own) / n
			}
			var sum float64
			for _, w := range weights {
				sum += float64(w)
			}
			for i, w := range weights {
				if want := float64(w) / sum; math.Abs(got[i]-want) > 1e-8 {
					t.Errorf("position %d: probability %v, want %v", i, got[i], want)
				}
			}
		})
	}
}

func TestRoundRobinSchedule(t *testing.T) {
	tests := map[string]struct {
		weights []uint64
		wantLen int
	}{
		"reduced by gcd":    {weights: []uint64{2, 6}, wantLen: 4},
		"coprime":           {weights: []uint64{2, 3, 5}, wantLen: 10},
		"scaled to a cycle": {weights: []uint64{math.MaxUint32, math.MaxUint32 - 1, 1}, wantLen: maxCycle + 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			hosts := make([]int32, len(tc.weights))
			for i := range hosts {
				hosts[i] = int32(10 + i)
			}
			s := roundRobinSchedule(hosts, tc.weights)
			if len(s) > tc.wantLen || len(s) < tc.wantLen-len(tc.weights) {
				t.Fatalf("cycle of %d, want %d", len(s), tc.wantLen)
			}
			counts := map[int32]int{}
			for _, h := range s {
				counts[h]++
			}
			var sum float64
			for _, w := range tc.weights {
				sum += float64(w)
			}
			for i, w := range tc.weights {
				want := float64(w) / sum * float64(len(s))
				if got := float64(counts[hosts[i]]); math.Abs(got-want) > 1 {
					t.Errorf("host %d: %v turns, want %v", hosts[i], got, want)
				}
			}
		})
	}
}

func TestRingSize(t *testing.T) {
	tests := map[string]struct {
		weights          []uint64
		minSize, maxSize uint64
		want             uint64
	}{
		// Envoy's target: 103 points each (ceil(1024/10)), rounded up to 128.
		"ten equal": {weights: slices.Repeat([]uint64{1}, 10), minSize: 1024, maxSize: 8 << 20, want: 1280},
		// 114 each, also rounded up to 128: the others keep their points.
		"nine equal": {weights: slices.Repeat([]uint64{1}, 9), minSize: 1024, maxSize: 8 << 20, want: 1152},
		"1:3":        {weights: []uint64{1, 3}, minSize: 1024, maxSize: 8 << 20, want: 1024},
		// Large weights are scaled down: one point per 2^23 of weight.
		"huge weights": {weights: []uint64{1 << 31, 3 << 31}, minSize: 1024, maxSize: 8 << 20, want: 1024},
		// Rounding up to 160 would exceed the maximum: halved to 80.
		"capped": {weights: slices.Repeat([]uint64{1}, 10), minSize: 100, maxSize: 100, want: 80},
		// More endpoints than the maximum: one point each.
		"more endpoints than points": {weights: slices.Repeat([]uint64{5}, 20), minSize: 8, maxSize: 8, want: 20},
		"lightest gets its share":    {weights: []uint64{1, 1000}, minSize: 1024, maxSize: 8 << 20, want: 2002},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			shift := ringPointsPerWeight(tc.weights, tc.minSize, tc.maxSize)
			if got := ringSize(tc.weights, shift); got != tc.want {
				t.Errorf("ring of %d points, want %d", got, tc.want)
			}
		})
	}
}

func TestMaglevTable(t *testing.T) {
	t.Run("weighted", func(t *testing.T) {
		eps := endpoints(2)
		eps[1].Weight = 3
		table := buildMaglev(eps, []int32{0, 1}, []uint64{1, 3}, DefaultMaglevTableSize)
		counts := map[int32]int{}
		for _, h := range table {
			counts[h]++
		}
		// 65537/4 = 16384.25
		if counts[0] < 16383 || counts[0] > 16386 || counts[0]+counts[1] != DefaultMaglevTableSize {
			t.Errorf("slots per endpoint %v, want 16384 and 49153", counts)
		}
	})
	t.Run("more endpoints than slots", func(t *testing.T) {
		eps := endpoints(10)
		hosts := []int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
		table := buildMaglev(eps, hosts, slices.Repeat([]uint64{1}, 10), 7)
		seen := map[int32]bool{}
		for _, h := range table {
			if h < 0 || h > 9 || seen[h] {
				t.Fatalf("table %v: not 7 distinct endpoints", table)
			}
			seen[h] = true
		}
	})
}
