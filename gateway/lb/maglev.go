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

import "github.com/cespare/xxhash/v2"

// buildMaglev returns the Maglev lookup table of hosts (Eisenbud et al.,
// "Maglev: A Fast and Reliable Software Network Load Balancer", NSDI 2016,
// section 3.4), with weights: each slot holds an endpoint index.
//
// Every host has a preference list of all slots, the permutation
// offset, offset+skip, offset+2*skip, ... mod size, with offset and skip
// from two hashes of its address; size is prime, so every skip in
// [1, size) visits every slot. Hosts take turns claiming their next free
// preferred slot until the table is full. In the paper every host takes one
// turn per round; here the turns come from the earliest-deadline-first
// schedule of the weights, so hosts claim slots in proportion to weight and
// the table depends only on the set of hosts and weights. hosts must be
// sorted by address and not empty.
func buildMaglev(eps []Endpoint, hosts []int32, weights []uint64, size uint64) []int32 {
	next := make([]uint64, len(hosts)) // the host's next preferred slot
	skip := make([]uint64, len(hosts))
	d := xxhash.NewWithSeed(1)
	for i, h := range hosts {
		addr := eps[h].Address
		next[i] = xxhash.Sum64String(addr) % size
		d.ResetWithSeed(1)
		_, _ = d.WriteString(addr) // never fails
		skip[i] = d.Sum64()%(size-1) + 1
	}
	table := make([]int32, size)
	for i := range table {
		table[i] = -1
	}
	filled := uint64(0)
	edf(weights, func(pos int) bool {
		for {
			slot := next[pos]
			if next[pos] += skip[pos]; next[pos] >= size {
				next[pos] -= size
			}
			if table[slot] < 0 {
				table[slot] = hosts[pos]
				filled++
				return filled < size
			}
		}
	})
	return table
}
