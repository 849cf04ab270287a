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
	"slices"
)

// loadScale is 100% of the traffic in priority load units (parts per
// million, finer than Envoy's whole percent so that small spill-overs are
// not rounded away).
const loadScale = 1_000_000

// levelLoad is the share of traffic of one priority level and the
// endpoints it is balanced over.
type levelLoad struct {
	priority uint32
	hosts    []int32
	load     uint32
}

// priorityLoads splits the traffic between the priority levels of eps as
// Envoy computes priority load, with the overprovisioning factor in
// percent. It returns only the levels that receive traffic, most preferred
// first, each with its healthy endpoints; their loads sum to loadScale. When
// no endpoint is healthy it returns the most preferred level with all its
// endpoints, and panic true. eps must not be empty.
func priorityLoads(eps []Endpoint, factor uint32) (levels []levelLoad, panicMode bool) {
	type tally struct {
		priority      uint32
		all, healthy  []int32
		health, share uint64
	}
	byPriority := map[uint32]*tally{}
	var tallies []*tally
	for i, ep := range eps {
		t := byPriority[ep.Priority]
		if t == nil {
			t = &tally{priority: ep.Priority}
			byPriority[ep.Priority] = t
			tallies = append(tallies, t)
		}
		t.all = append(t.all, int32(i))
		if ep.Healthy {
			t.healthy = append(t.healthy, int32(i))
		}
	}
	slices.SortFunc(tallies, func(x, y *tally) int { return cmp.Compare(x.priority, y.priority) })

	// A level's health is its healthy fraction times the factor, capped at
	// 100%; the normalized total health is their sum, capped at 100%.
	var total uint64
	for _, t := range tallies {
		healthy, all := uint64(len(t.healthy)), uint64(len(t.all))
		if scaled := healthy * uint64(factor); scaled >= 100*all {
			t.health = loadScale
		} else {
			// At least 1 ppm, so that a level with a healthy endpoint
			// never counts as having none.
			t.health = max(scaled*(loadScale/100)/all, min(healthy, 1))
		}
		total += t.health
	}
	total = min(total, loadScale)
	if total == 0 {
		return []levelLoad{{priority: tallies[0].priority, hosts: tallies[0].all, load: loadScale}}, true
	}

	// Each level takes its health, scaled up when the total is below 100%,
	// from what the more preferred levels left; the rounding remainder goes
	// to the first level with any health.
	left := uint64(loadScale)
	for _, t := range tallies {
		t.share = min(left, t.health*loadScale/total)
		left -= t.share
	}
	for _, t := range tallies {
		if t.health > 0 {
			t.share += left
			break
		}
	}
	for _, t := range tallies {
		if t.share > 0 {
			levels = append(levels, levelLoad{priority: t.priority, hosts: t.healthy, load: uint32(t.share)})
		}
	}
	return levels, false
}
