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
	"strconv"
	"testing"
)

// fuzzEndpoints decodes an endpoint list, four bytes per endpoint: address
// (few distinct values, so duplicates happen), weight, priority and flags
// (bit 0 healthy, bit 1 weight in the top byte, bit 2 avoided). It returns
// the endpoints and the addresses to avoid.
func fuzzEndpoints(data []byte) ([]Endpoint, map[string]bool) {
	var eps []Endpoint
	avoid := map[string]bool{}
	for ; len(data) >= 4; data = data[4:] {
		ep := Endpoint{
			Address:  "10.0.0." + strconv.Itoa(int(data[0]%64)) + ":80",
			Weight:   uint32(data[1]),
			Priority: uint32(data[2] % 4),
			Healthy:  data[3]&1 != 0,
		}
		if data[3]&2 != 0 {
			ep.Weight <<= 24
		}
		if data[3]&4 != 0 {
			avoid[ep.Address] = true
		}
		eps = append(eps, ep)
	}
	return eps, avoid
}

// FuzzBalancer builds balancers from arbitrary configs and endpoint lists
// and checks every pick: New never panics and rejects only with
// ErrInvalidConfig, and a pick is an endpoint of the list, healthy when any
// is, and avoided only when every candidate of its level is.
func FuzzBalancer(f *testing.F) {
	f.Add([]byte{1, 1, 0, 1, 2, 3, 0, 1}, uint8(0), uint8(0), uint16(0), uint16(0), uint32(0), uint16(0), uint64(1), true)
	f.Add([]byte{1, 1, 0, 0, 2, 3, 1, 5, 3, 0, 1, 1}, uint8(1), uint8(2), uint16(0), uint16(0), uint32(0), uint16(0), uint64(2), false)
	f.Add([]byte{1, 200, 0, 3, 2, 1, 0, 1, 3, 0, 2, 7, 4, 9, 3, 1}, uint8(3), uint8(0), uint16(16), uint16(64), uint32(0), uint16(100), uint64(3), true)
	f.Add([]byte{1, 1, 0, 5, 2, 7, 0, 5, 3, 1, 0, 1}, uint8(4), uint8(0), uint16(0), uint16(0), uint32(101), uint16(0), uint64(4), true)
	f.Add([]byte{1, 1, 0, 1, 1, 1, 0, 1}, uint8(2), uint8(0), uint16(0), uint16(0), uint32(0), uint16(0), uint64(5), false)
	f.Add([]byte{}, uint8(4), uint8(1), uint16(9), uint16(3), uint32(100), uint16(0), uint64(0), false)
	f.Fuzz(func(t *testing.T, data []byte, alg, choices uint8, minRing, maxRing uint16, tableSize uint32, factor uint16, hash uint64, hasHash bool) {
		eps, avoidSet := fuzzEndpoints(data)
		cfg := Config{
			Algorithm:   Algorithm(alg % 6),
			ChoiceCount: int(choices%70) - 2,
			// Rings stay small (the default maximum is 8M points, seconds
			// to build); 0 still takes the default minimum.
			MinRingSize:            uint64(minRing % 4096),
			MaxRingSize:            uint64(maxRing) + 1,
			MaglevTableSize:        uint64(tableSize % 20_000),
			OverprovisioningFactor: uint32(factor),
		}
		b, err := New(cfg, eps, nil)
		if err != nil {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New: %v does not wrap ErrInvalidConfig", err)
			}
			return
		}
		anyHealthy := false
		for _, ep := range eps {
			anyHealthy = anyHealthy || ep.Healthy
		}
		check := func(b *Balancer, eps []Endpoint, hash uint64, avoid bool) {
			req := Request{Hash: hash, HasHash: hasHash}
			if avoid {
				req.Avoid = func(a string) bool { return avoidSet[a] }
			}
			p, err := b.Pick(req)
			if len(eps) == 0 {
				if !errors.Is(err, ErrNoEndpoint) {
					t.Fatalf("no endpoints: Pick error %v, want ErrNoEndpoint", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Pick: %v", err)
			}
			defer p.Done()
			var picked *Endpoint
			for i := range eps {
				if eps[i].Address == p.Endpoint.Address {
					picked = &eps[i]
				}
			}
			if picked == nil {
				t.Fatalf("picked %s, not an endpoint", p.Endpoint.Address)
			}
			if anyHealthy && !picked.Healthy {
				t.Fatalf("picked unhealthy %s while some endpoint is healthy", picked.Address)
			}
			if avoid && avoidSet[picked.Address] {
				for _, ep := range eps {
					candidate := ep.Healthy || !anyHealthy
					if ep.Priority == picked.Priority && candidate && !avoidSet[ep.Address] {
						t.Fatalf("picked avoided %s although %s was a candidate", picked.Address, ep.Address)
					}
				}
			}
		}
		for i := range uint64(8) {
			check(b, eps, hash+i*0x9e3779b97f4a7c15, i%2 == 1)
		}
		// An update that drops the first endpoint, from b.
		if len(eps) > 0 {
			next, err := New(cfg, eps[1:], b)
			if err != nil {
				t.Fatalf("New from a valid balancer: %v", err)
			}
			anyHealthy = false
			for _, ep := range eps[1:] {
				anyHealthy = anyHealthy || ep.Healthy
			}
			for i := range uint64(4) {
				check(next, eps[1:], hash+i, i%2 == 0)
			}
		}
		for _, ep := range eps {
			if got := b.ActiveRequests(ep.Address); got != 0 {
				t.Fatalf("%s: %d active requests after all are done", ep.Address, got)
			}
		}
	})
}
