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

package trust

import (
	"crypto/x509"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// BenchmarkAssess is the steady-state cost of one member reconcile's
// decision: parse the member's Secret and verify its intermediate against
// a two-root bundle. Every event of a member pays it.
func BenchmarkAssess(b *testing.B) {
	now := time.Now()
	clk := clocktesting.NewFakePassiveClock(now)
	oldRoot := newTestRoot(b, tdLocal, now, 0).WithClock(clk)
	root := newTestRoot(b, tdLocal, now, 0).WithClock(clk)
	a := newAuthority(tdLocal, root, []scheduledRoot{{cert: root.Certificate(), since: now}, {cert: oldRoot.Certificate(), since: now, retireAt: now.Add(time.Hour)}},
		[]*x509.Certificate{root.Certificate()}, 0)
	data := caSecretData(b, mustIntermediate(b, root, "east"), a.bundlePEM)
	b.ReportAllocs()
	for b.Loop() {
		if as := assess("east", data, a, now); as.replace != "" || !as.current {
			b.Fatalf("%+v", as)
		}
	}
}

// BenchmarkIssue is the cost of issuing one member's intermediate: a P-256
// key, the certificate, its check against the bundle and the PEM the
// Secret holds.
func BenchmarkIssue(b *testing.B) {
	now := time.Now()
	root := newTestRoot(b, tdLocal, now, 0).WithClock(clocktesting.NewFakePassiveClock(now))
	a := newAuthority(tdLocal, root, []scheduledRoot{{cert: root.Certificate(), since: now}}, []*x509.Certificate{root.Certificate()}, 0)
	r := &IntermediateReconciler{TTL: DefaultIntermediateTTL}
	b.ReportAllocs()
	for b.Loop() {
		inter, err := r.issue("east", a, now)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := inter.PrivateKeyPEM(); err != nil {
			b.Fatal(err)
		}
		_ = inter.ChainPEM()
	}
}
