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
	"math"
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// ringPointsPerWeight returns the scale of a ring: an endpoint of weight w
// gets about w*2^shift points (at least 1).
//
// The target size is Envoy's: the lightest endpoint gets at least its
// share of minSize points, ceil(minSize*wmin/sum), and the others the same
// per unit of weight, up to maxSize. The scale is then rounded up to a power
// of two, so that it changes only when the target crosses one: an endpoint
// that joins or leaves usually leaves every other endpoint's points alone.
// When that makes the ring larger than maxSize, the scale halves until it
// fits or every endpoint is down to one point.
func ringPointsPerWeight(weights []uint64, minSize, maxSize uint64) int {
	var sum uint64
	lightest := uint64(math.MaxUint64)
	for _, w := range weights {
		sum += w
		lightest = min(lightest, w)
	}
	// The lightest endpoint's points, ceil(minSize*lightest/sum), spread
	// over its weight (minSize*lightest < 2^23 * 2^32).
	lightestPoints := (minSize*lightest + sum - 1) / sum
	perWeight := min(float64(lightestPoints)/float64(lightest), float64(maxSize)/float64(sum))
	_, exp := math.Frexp(perWeight) // perWeight = f * 2^exp, f in [0.5, 1)
	shift := exp
	if math.Ldexp(0.5, exp) == perWeight {
		shift = exp - 1 // already a power of two
	}
	for ; shift > -64; shift-- {
		if ringSize(weights, shift) <= maxSize {
			break
		}
	}
	return shift
}

// ringPoints returns the number of ring points of an endpoint of weight w
// at the given scale: w*2^shift, rounded to nearest, at least 1.
func ringPoints(w uint64, shift int) uint64 {
	switch {
	case shift >= 0:
		// w < 2^32 and shift stays below 32 for rings of at most 8M.
		return w << shift
	case shift <= -64:
		return 1
	default:
		return max((w+(1<<(-shift-1)))>>-shift, 1)
	}
}

func ringSize(weights []uint64, shift int) uint64 {
	var n uint64
	for _, w := range weights {
		n += ringPoints(w, shift)
	}
	return n
}

// buildRing returns the ring of hosts: the sorted hashes of the points
// "address_i" of each host, i counting from 0, and the endpoint index of
// each point. Points that collide are ordered by address, so the ring does
// not depend on the order of hosts.
func buildRing(eps []Endpoint, hosts []int32, weights []uint64, minSize, maxSize uint64) ([]uint64, []int32) {
	shift := ringPointsPerWeight(weights, minSize, maxSize)
	type point struct {
		hash uint64
		host int32
	}
	points := make([]point, 0, ringSize(weights, shift))
	var key []byte
	for i, h := range hosts {
		key = append(key[:0], eps[h].Address...)
		key = append(key, '_')
		prefix := len(key)
		for j := range ringPoints(weights[i], shift) {
			key = strconv.AppendUint(key[:prefix], j, 10)
			points = append(points, point{hash: xxhash.Sum64(key), host: h})
		}
	}
	slices.SortFunc(points, func(x, y point) int {
		if c := cmp.Compare(x.hash, y.hash); c != 0 {
			return c
		}
		return cmp.Compare(eps[x.host].Address, eps[y.host].Address)
	})
	hashes := make([]uint64, len(points))
	owners := make([]int32, len(points))
	for i, p := range points {
		hashes[i], owners[i] = p.hash, p.host
	}
	return hashes, owners
}

// ringSearch returns the index of the first point at or after hash on the
// ring hashes, wrapping around to 0.
func ringSearch(hashes []uint64, hash uint64) int {
	lo, hi := 0, len(hashes)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if hashes[m] < hash {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(hashes) {
		return 0
	}
	return lo
}
