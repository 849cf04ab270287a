package pki

import (
	"runtime"
	"testing"
)

// BenchmarkSignCSR measures what an agent does per workload certificate:
// parse and check a P-256 CSR, sign an SVID with the cluster's P-256
// intermediate, parse the result. The goal is at least 500 signings/s on
// one core. "serial" runs on one goroutine, so its rate is one core's;
// "parallel" divides the total rate by GOMAXPROCS. "public key" is
// SignPublicKey, which skips the CSR.
func BenchmarkSignCSR(b *testing.B) {
	root := newRoot(b, tdExample, RootOptions{})
	inter := newIntermediate(b, root, "east", 0)
	key := newP256(b)
	csr := newCSR(b, key, nil)

	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := inter.SignCSR(csr, workloadID, 0); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signings/s/core")
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := inter.SignCSR(csr, workloadID, 0); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/float64(runtime.GOMAXPROCS(0)), "signings/s/core")
	})
	b.Run("public key", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := inter.SignPublicKey(key.Public(), workloadID, 0); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signings/s/core")
	})
}

// BenchmarkVerify measures verifying a peer's SVID (leaf + intermediate)
// against a two-root bundle, as during a rotation overlap.
func BenchmarkVerify(b *testing.B) {
	root := newRoot(b, tdExample, RootOptions{})
	inter := newIntermediate(b, root, "east", 0)
	svid := signSVID(b, inter, workloadID, 0)
	bundle := mustBundle(b, tdExample, root.Certificate(), newRoot(b, tdExample, RootOptions{}).Certificate())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(svid.Certificates, bundle); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s/core")
}
