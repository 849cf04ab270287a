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

// Package trust is the hub's side of workload identity: it holds the
// cluster set's root CA, gives every member cluster an intermediate CA, and
// publishes the trust bundle, rotating the root without dropping traffic.
// The X.509 work is internal/pki's; this package decides where keys live and
// when to call it.
//
// # Objects (all in the hub cluster)
//
//	causeway-system/causeway-root-ca          Secret, kubernetes.io/tls: the generated root
//	                                          (tls.crt, tls.key); absent with --root-ca-secret
//	causeway-system/causeway-trust-bundle     ConfigMap: roots.pem, every trusted root, for
//	                                          operators and the CLI
//	causeway-member-<name>/causeway-ca        Secret, kubernetes.io/tls, one per member:
//	                                          tls.crt  the member's intermediate CA, then its
//	                                                   chain up to but not including the root
//	                                          tls.key  its PKCS #8 key
//	                                          ca.crt   the trust bundle (= roots.pem)
//
// The member's agent reads its CA Secret with the credentials `causeway join`
// gave it (get, list and watch on Secrets in its own hub namespace only).
// Each MemberCluster reports ConditionIntermediateCA. An unjoin deletes the
// member's namespace and with it the Secret.
//
// # Usage
//
//	mgr, _ := ctrl.NewManager(cfg, ctrl.Options{Cache: cache.Options{ByObject: opts.CacheByObject()}})
//	err := trust.Setup(mgr, trust.Options{TrustDomain: "mesh.example.com"})
//
// # The root
//
// A RootSource yields the CA that signs the intermediates and the trust
// anchors above it. Two are built in:
//
//   - GeneratedRoot (the default) makes a P-256 root on first start and
//     keeps it in causeway-root-ca, so a restart reuses it. It replaces the
//     root when it is unusable, of another trust domain, two thirds through
//     its lifetime, or when someone sets the annotation causeway.dev/rotate
//     on the Secret to a new value.
//   - SecretRoot (--root-ca-secret=<namespace>/<name>) uses a root the user
//     keeps in a kubernetes.io/tls Secret: tls.crt (with the trust domain's
//     SPIFFE ID spiffe://<td> as its only URI SAN), tls.key, and optionally
//     ca.crt with its issuers up to a self-signed root, which is then the
//     trust anchor. The hub never writes it; replacing its content rotates
//     the root.
//
// Other sources (cert-manager) plug in through Options.NewSource; a source
// whose root depends on other objects implements WatchingRootSource. A root
// that fails the checks (another trust domain, expired, path length 0, a
// chain that does not verify) is ErrRootInvalid: every MemberCluster
// reports it, and nothing is issued with it.
//
// The trust domain is the hub's MeshConfig's spec.trustDomain when it has
// one, else Options.TrustDomain (--trust-domain, DefaultTrustDomain).
//
// # Reconcilers
//
//   - BundleReconciler has one key. It reads the trust domain and the
//     root, decides the bundle with planBundle (a pure function), writes
//     the ConfigMap on a difference, and passes its decision to the
//     intermediate reconciler through Authority, which wakes every member
//     when the decision changes.
//   - IntermediateReconciler, keyed by member name, judges the member's
//     Secret with assess (pure) and re-issues the intermediate when it is
//     missing, unparsable, not matching its key, malformed, expired or two
//     thirds through its lifetime, no longer verifying against the bundle,
//     or issued by a former CA once the propagation delay has passed. It
//     otherwise only keeps ca.crt equal to the bundle. Every write happens
//     on a difference only, so a restarted hub writes nothing.
//
// # Rotation
//
// When the CA's trust anchors change (a rotated generated root, a replaced
// user Secret), trust moves before issuance and is withdrawn after it:
//
//  1. The new root joins the bundle at once, beside the old one; every
//     member's ca.crt carries both.
//  2. After PropagationDelay, intermediates are re-issued under the new
//     root (a member whose intermediate is unusable anyway gets a new one
//     at once).
//  3. The old root leaves the bundle PropagationDelay + Overlap after it
//     stopped being current. Overlap is never less than the workload
//     certificate lifetime plus clock skew, so no leaf signed under the old
//     root is still valid when it goes. Expired roots leave at once.
//
// The schedule is kept in the ConfigMap's causeway.dev/roots annotation:
// deleting the ConfigMap during a rotation forgets the old root early.
//
// # Trade-offs
//
// The generated root's key is stored unencrypted in a Secret of the hub
// cluster: whoever reads Secrets in causeway-system owns the mesh's
// identities. Keep the root outside (--root-ca-secret, or cert-manager with
// an external issuer) where that matters.
//
// There is no revocation: an unjoined member's intermediate stays valid
// until it expires, which is why DefaultIntermediateTTL is a month rather
// than the year pki allows.
//
// The hub cannot know when every agent has handed the new bundle to its
// proxies; PropagationDelay is a time, not an acknowledgement.
package trust
