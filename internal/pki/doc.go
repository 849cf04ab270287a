// Package pki is the X.509 side of Causeway's workload identity: it makes
// the trust domain's CAs, signs X509-SVIDs, holds the trust bundle and
// verifies SVIDs against it. It is pure crypto: no Kubernetes objects, no
// storage, no network; the hub (federation/) and the agent (controllers/)
// decide where keys live and when to call it.
//
// # Hierarchy
//
// Every workload in every member cluster gets one SPIFFE identity in one
// trust domain:
//
//	root CA  spiffe://<td>              held by the hub; CA, path length 1
//	  └─ intermediate CA  spiffe://<td> one per member cluster, made on join
//	       │                            and held by its agent; path length 0
//	       ├─ spiffe://<td>/ns/<ns>/sa/<sa>          workloads
//	       └─ spiffe://<td>/cluster/<name>/gateway   the east-west gateway
//
// Certificates follow the X509-SVID specification
// (https://github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md):
// CAs carry the trust domain's ID (no path) as their only URI SAN, basic
// constraints CA=true and key usage keyCertSign and cRLSign only; leaves
// carry exactly one URI SAN, the workload's ID, whatever the CSR asked
// for, with CA=false, digitalSignature (plus keyEncipherment for RSA keys)
// and extended key usage serverAuth and clientAuth. Keys made here are
// ECDSA P-256: cheap to sign with (see BenchmarkSignCSR) and accepted by
// Envoy, gRPC and Go's TLS. An SVID's chain is the leaf followed by the
// intermediate; the root travels only in the Bundle, never in a chain.
//
// Path lengths make the hierarchy exact: a root from NewRoot can only
// issue CAs that issue leaves, and a cluster's intermediate cannot mint a
// CA — crypto/x509 rejects such a path even if someone builds one with
// the intermediate's key. Path length does not stop one cluster's
// intermediate from signing an ID that names another cluster; the agent
// must only sign IDs of its own cluster, and authorization must not trust
// the cluster segment of an ID more than the intermediate that signed it.
//
// # Lifetimes and rotation
//
//	root           DefaultRootTTL          10 years
//	intermediate   DefaultIntermediateTTL  1 year, cut to the root's remaining life
//	workload       DefaultWorkloadTTL      24 hours, cut to the intermediate's
//
// Every certificate's NotBefore is ClockSkew (1 minute) in the past, so
// peers with slightly slow clocks accept it at once. A certificate is
// renewed at half its lifetime (ShouldRotate, RotationTime), as SPIRE
// agents do: the second half leaves time to retry a failed renewal while
// the old certificate still works. Because a CA's remaining life bounds
// what it signs, rotating CAs at half-life also keeps leaves at their full
// TTL.
//
// An intermediate can be replaced at any time: leaves carry their
// intermediate, and peers trust only roots. Rotating the root never drops
// traffic because trust moves before issuance and is withdrawn after it:
//
//  1. The hub makes the new root and adds it to the Bundle beside the old
//     one; every agent distributes the two-root bundle to its proxies.
//  2. Once every cluster trusts both, the hub issues intermediates from the
//     new root; agents sign new leaves with them as leaves come due. Old
//     and new leaves both verify against the two-root bundle.
//  3. When no leaf from the old root can still be valid (the workload TTL
//     after the last old-root signature, plus ClockSkew), the hub removes
//     the old root from the Bundle; an old-root leaf fails from then on.
//
// # Where each piece is used
//
//   - NewRoot, LoadCA (root), NewIntermediate, Bundle: the hub, in
//     federation/, which makes or loads the root, issues each member's
//     intermediate when it joins, and publishes the bundle.
//   - LoadCA (intermediate), SignCSR, SignPublicKey, ShouldRotate: the agent,
//     in controllers/, which signs CSRs from the cluster's workloads and
//     its gateway's own key, and renews them at half-life.
//   - Verify, Bundle: whatever authenticates a peer by its SVID — the
//     agent's xDS server and the gateways once connections use mutual TLS.
//     go-spiffe's tlsconfig and spiffetls take a *Bundle directly as an
//     x509bundle.Source.
//
// # Trade-offs
//
// Verification is go-spiffe's x509svid.Verify, which delegates path
// validation to crypto/x509: no path building or SPIFFE ID parsing is
// written here. It accepts any extended key usage (go-spiffe verifies with
// ExtKeyUsageAny), so a TLS server that wants to insist on clientAuth must
// do so itself.
//
// LoadCA learns the trust domain from the CA certificate's SPIFFE ID, so a
// supplied root must carry one (URI SAN spiffe://<td>). A Bundle, being
// told its trust domain, also accepts roots without a URI SAN.
//
// URI name constraints (X509-SVID spec, section 4.2) are not set: support
// for them is uneven, and a Bundle already scopes roots to one trust
// domain.
//
// The CA's key lives in memory as a crypto.Signer; there is no HSM or KMS
// support yet, and PrivateKeyPEM writes the key unencrypted for the caller
// to store in a Secret.
package pki
