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
package identity

import (
	"runtime"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/utils/clock"

	"github.com/causeway-mesh/causeway/internal/pki"
)

// BenchmarkSign measures what the agent does per workload certificate:
// generate an ECDSA P-256 key, sign an SVID with the cluster's P-256
// intermediate and encode the key, as Issue does. The goal is at least
// 500 signings/s per core. "serial" runs on one goroutine, so its rate is
// one core's; "parallel" divides the total rate by GOMAXPROCS.
func BenchmarkSign(b *testing.B) {
	td := spiffeid.RequireTrustDomainFromString("mesh.example.com")
	root, err := pki.NewRoot(td, pki.RootOptions{})
	if err != nil {
		b.Fatal(err)
	}
	inter, err := root.NewIntermediate("east", 0)
	if err != nil {
		b.Fatal(err)
	}
	state := &CAState{CA: inter}
	id := spiffeid.RequireFromSegments(td, "ns", "shop", "sa", "web")
	clk := clock.RealClock{}

	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := issueWith(state, clk, id, DefaultWorkloadCertTTL); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signings/s/core")
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := issueWith(state, clk, id, DefaultWorkloadCertTTL); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/float64(runtime.GOMAXPROCS(0)), "signings/s/core")
	})
}
