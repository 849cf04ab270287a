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
	"strconv"
	"testing"
)

// benchEndpoints returns n healthy endpoints, of weight 1 or, when
// weighted, of weights 1 to 10.
func benchEndpoints(n int, weighted bool) []Endpoint {
	eps := endpoints(n)
	if weighted {
		for i := range eps {
			eps[i].Weight = uint32(1 + i%10)
		}
	}
	return eps
}

// BenchmarkPick picks from 100 endpoints on all CPUs, finishing each
// request at once; hash algorithms get a different key per pick.
func BenchmarkPick(b *testing.B) {
	keys := make([]uint64, 1024)
	for i := range keys {
		keys[i] = HashString("key-" + strconv.Itoa(i))
	}
	for _, alg := range algorithms {
		for _, weighted := range []bool{false, true} {
			name := alg.String() + "/uniform"
			if weighted {
				name = alg.String() + "/weighted"
			}
			b.Run(name, func(b *testing.B) {
				lb := mustNew(b, Config{Algorithm: alg}, benchEndpoints(100, weighted), nil)
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					for pb.Next() {
						p, err := lb.Pick(Request{Hash: keys[i%len(keys)], HasHash: true})
						if err != nil {
							b.Error(err)
							return
						}
						p.Done()
						i++
					}
				})
			})
		}
	}
}

// BenchmarkPickAvoid is a retry's pick: the first choice is often avoided.
func BenchmarkPickAvoid(b *testing.B) {
	eps := benchEndpoints(100, false)
	tried := eps[0].Address
	avoid := func(a string) bool { return a <= tried || a == eps[50].Address }
	for _, alg := range algorithms {
		b.Run(alg.String(), func(b *testing.B) {
			lb := mustNew(b, Config{Algorithm: alg}, eps, nil)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := uint64(0)
				for pb.Next() {
					p, err := lb.Pick(Request{Hash: mix64(i), HasHash: true, Avoid: avoid})
					if err != nil {
						b.Error(err)
						return
					}
					p.Done()
					i++
				}
			})
		})
	}
}

// BenchmarkNew is the cost of an EDS update: building a balancer from the
// one it replaces.
func BenchmarkNew(b *testing.B) {
	for _, n := range []int{100, 1000} {
		for _, alg := range algorithms {
			b.Run(alg.String()+"/"+strconv.Itoa(n), func(b *testing.B) {
				eps := benchEndpoints(n, true)
				prev := mustNew(b, Config{Algorithm: alg}, eps, nil)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := New(Config{Algorithm: alg}, eps, prev); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
