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
	"math/bits"
	"slices"
)

// edfTurn is one participant of an earliest-deadline-first schedule: turn k
// (from 0) of the participant at pos with weight w is due at (2k+1)/(2w),
// the middle of its k-th period, so turns of different weights interleave
// evenly.
type edfTurn struct {
	// due is the deadline of the next turn, (2k+1)/w in 32.32 fixed point,
	// rounded down: integer arithmetic, so that every proxy computes the
	// same schedule (and the same Maglev table). Deadlines closer than
	// 2^-32 may come in position order rather than their true order.
	due  uint64
	k, w uint64
	pos  int
}

// setDue computes t.due from t.k and t.w. It needs 2k+1 < 2^32, which holds
// for every schedule built here (at most MaxEndpoints + maxCycle or
// MaxMaglevTableSize turns).
func (t *edfTurn) setDue() {
	n := 2*t.k + 1
	t.due, _ = bits.Div64(n>>32, n<<32, t.w)
}

// before reports whether turn a is due before turn b, ties going to the
// lower position.
func (a *edfTurn) before(b *edfTurn) bool {
	return a.due < b.due || (a.due == b.due && a.pos < b.pos)
}

// edf calls emit with the positions of weights in earliest-deadline-first
// order until emit returns false: over any span of time each position gets
// turns in proportion to its weight. Zero weights never get a turn; if all
// are zero, edf returns at once. Each turn costs O(log len(weights)), or
// O(1) when the weights are equal (the order is then 0, 1, 2, ...).
func edf(weights []uint64, emit func(pos int) bool) {
	if len(weights) > 0 && weights[0] > 0 && !slices.ContainsFunc(weights, func(w uint64) bool { return w != weights[0] }) {
		for {
			for pos := range weights {
				if !emit(pos) {
					return
				}
			}
		}
	}
	heap := make([]edfTurn, 0, len(weights))
	for i, w := range weights {
		if w > 0 {
			t := edfTurn{w: w, pos: i}
			t.setDue()
			heap = append(heap, t)
		}
	}
	for i := len(heap)/2 - 1; i >= 0; i-- {
		siftDown(heap, i)
	}
	for len(heap) > 0 {
		if !emit(heap[0].pos) {
			return
		}
		heap[0].k++
		heap[0].setDue()
		siftDown(heap, 0)
	}
}

// siftDown restores the min-heap order of h below i, moving children up
// into the hole rather than swapping.
func siftDown(h []edfTurn, i int) {
	t := h[i]
	for {
		least := 2*i + 1
		if least >= len(h) {
			break
		}
		if r := least + 1; r < len(h) && h[r].before(&h[least]) {
			least = r
		}
		if !h[least].before(&t) {
			break
		}
		h[i] = h[least]
		i = least
	}
	h[i] = t
}

// maxCycle bounds the length of a round robin cycle. Weights whose sum
// (after dividing by their greatest common divisor) is larger are scaled
// down to it, each keeping at least one turn: precise to 1/65536 of the
// traffic, in 256 KiB per level.
const maxCycle = 1 << 16

// roundRobinSchedule returns one weighted round robin cycle over hosts:
// each host appears in proportion to its weight, spread out by
// earliest-deadline-first.
func roundRobinSchedule(hosts []int32, weights []uint64) []int32 {
	w := make([]uint64, len(weights))
	var g uint64
	for _, x := range weights {
		g = gcd(g, x)
	}
	var sum uint64
	for i, x := range weights {
		w[i] = x / g
		sum += w[i]
	}
	if limit := uint64(max(maxCycle, len(hosts))); sum > limit {
		scaled := uint64(0)
		for i := range w {
			// w[i] < 2^32 and limit <= 2^24: no overflow.
			w[i] = max(w[i]*limit/sum, 1)
			scaled += w[i]
		}
		sum = scaled
	}
	schedule := make([]int32, 0, sum)
	edf(w, func(pos int) bool {
		schedule = append(schedule, hosts[pos])
		return uint64(len(schedule)) < sum
	})
	return schedule
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// aliasTable samples positions in proportion to their weights in constant
// time (Walker's alias method, built with Vose's algorithm in exact integer
// arithmetic). Column i is taken whole when a uniform fraction falls below
// its threshold, and gives its alias otherwise.
type aliasTable []aliasColumn

type aliasColumn struct {
	// threshold is the column's own share of its width, in units of 2^-32.
	threshold uint32
	// alias is the position the rest of the column belongs to; a column
	// that is all its own is its own alias.
	alias int32
}

// newAliasTable builds the alias table of weights, which must not be
// empty, must be positive and below 2^32, and number at most MaxEndpoints.
func newAliasTable(weights []uint64) aliasTable {
	n := uint64(len(weights))
	var sum uint64
	for _, w := range weights {
		sum += w
	}
	// In units where a column is sum wide, position i needs w*n of width;
	// w*n < 2^32 * 2^24.
	need := make([]uint64, n)
	var small, large []int
	for i, w := range weights {
		need[i] = w * n
		if need[i] < sum {
			small = append(small, i)
		} else {
			large = append(large, i)
		}
	}
	t := make(aliasTable, n)
	for len(small) > 0 && len(large) > 0 {
		s := small[len(small)-1]
		small = small[:len(small)-1]
		l := large[len(large)-1]
		// need[s] < sum, so need[s]*2^32/sum < 2^32.
		hi, lo := bits.Mul64(need[s], 1<<32)
		q, _ := bits.Div64(hi, lo, sum)
		t[s] = aliasColumn{threshold: uint32(q), alias: int32(l)}
		// l fills the rest of column s.
		need[l] -= sum - need[s]
		if need[l] < sum {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	// What is left fills its own column (exactly, but for the rounding of
	// thresholds).
	for _, i := range append(small, large...) {
		t[i] = aliasColumn{alias: int32(i)}
	}
	return t
}

// sample maps the uniform random r to a position: its high bits choose
// the column and the fraction left over decides between the column and its
// alias.
func (t aliasTable) sample(r uint64) int {
	col, frac := bits.Mul64(r, uint64(len(t)))
	c := t[col]
	if uint32(frac>>32) < c.threshold {
		return int(col)
	}
	return int(c.alias)
}
