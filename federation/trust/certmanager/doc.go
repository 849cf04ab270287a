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

// Package certmanager is the hub's root source that has cert-manager issue
// the Causeway root CA, so that the mesh's identities chain to a CA the
// organisation already runs (a cert-manager CA issuer backed by its CA, or
// Vault, or any issuer that signs CA certificates).
//
// # How
//
// Source implements trust.RootSource (and trust.WatchingRootSource). Root
// makes an ECDSA P-256 key and a CSR whose only SAN is the trust domain's
// SPIFFE ID (spiffe://<trust domain>), and creates a cert-manager.io/v1
// CertificateRequest with isCA: true, usages cert sign, crl sign and
// digital signature, the configured duration and issuerRef. cert-manager's
// approver (or a policy approver) approves it and the issuer signs it;
// Root watches the request, bounded by Config.WaitTimeout and the caller's
// context, until it is Ready, Denied or Failed. The issued CA is loaded
// with pki.LoadCA and must carry the trust domain's ID and chain to the
// request's status.ca, which become the trust anchors. It is usually an
// intermediate under the organisation's CA, not a root: pki.CA handles
// that, and the members' intermediates and workload SVIDs chain through it
// to the anchors.
//
// The key and the issued chain are kept in a Secret (tls.crt, tls.key,
// ca.crt: the keys trust.SecretRoot reads), labelled LabelSecret. Later calls, and restarts, use it until it is due for
// renewal — two thirds into its lifetime — or unusable, or the configured
// issuer changes. The Secret is written only when something changed. The
// key is stored (as KeyPendingKey) before its request is created, so a
// restart while cert-manager works resumes the same request instead of
// abandoning it; the Source keeps no state in memory. Each new request
// deletes the source's earlier ones, so at most one remains: the one in
// flight, or the one that issued the current root (named by
// AnnotationCertificateRequest). The key is never logged.
//
// # Failures
//
// A denied or failed request, or an issued CA that is unusable (wrong
// trust domain, no status.ca, not chaining to it), is an error wrapping
// trust.ErrRootInvalid that names the request and cert-manager's reason
// and message. The request is left in place for people to read, and every
// call returns the same error until someone deletes it; the next call then
// asks again. Asking again on its own would turn a denial into a stream of
// requests. A request still pending when the wait ends (not approved yet,
// issuer missing or not ready, a slow ACME or Vault issuer) is an error
// wrapping trust.ErrRootUnavailable with its progress; the hub, which
// watches CertificateRequests (WatchedObjects), calls Root again when the
// request changes. During a renewal the current root is still returned
// while valid, and the failure is logged instead.
//
// A Secret of the configured name that lacks LabelSecret is someone
// else's: Root refuses to touch it and says so.
//
// # Trade-offs
//
// The trust anchors are the issuer's CA certificates, not the Causeway CA
// itself. That is what makes renewal free: a renewed Causeway CA has a new
// key, but members' intermediates from the old one still chain to the
// same anchors, so no bundle overlap is needed. The price is that the mesh
// trusts whatever else that CA signs with the trust domain's SPIFFE ID in
// it; give the mesh an issuer (a CA) of its own, or guard the issuer with
// a policy approver (cert-manager's approver-policy), when that matters.
// When the issuer's CA itself changes, the anchors change: the hub's
// bundle must carry old and new anchors through the change.
//
// cert-manager does not backdate certificates, so a hub whose clock is
// behind cert-manager's sees a just-issued CA as not yet valid; Root
// returns a plain (retried) error then rather than issuing again. A CA
// issuer cuts what it signs to its own CA's lifetime; once the Causeway CA
// ends with its issuer's, renewing cannot lengthen it, so it is not
// renewed (no request storm) until the issuer's CA is replaced.
//
// Only cert-manager's API types and typed clientset are imported, which
// add little to the hub binary; test/certmanager runs cert-manager's real
// controllers against a test API server for this package's tests.
//
// The hub needs, in the Secret's namespace: get, create and update on
// Secrets; create, get, list, watch and delete on
// cert-manager.io CertificateRequests.
package certmanager
