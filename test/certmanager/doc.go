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

// Package certmanager runs cert-manager itself in tests: its CRDs on a test
// API server and its real controllers in-process against it, so that code
// which asks cert-manager for certificates (federation/trust/certmanager)
// is tested against what a cluster runs, not a stand-in.
//
// cert-manager's controller binary is a Go module of its own that this
// project cannot fetch, but its main module
// (github.com/cert-manager/cert-manager) ships the controllers as public
// packages, each registering a constructor with pkg/controller. Start
// builds them the way the binary does — a pkg/controller ContextFactory
// (clients, informer factories, event recorder, metrics), one Context per
// controller, then the shared informer factories started — and runs:
//
//   - issuers and clusterissuers: set an Issuer's or ClusterIssuer's Ready
//     condition after checking its configuration (for a CA issuer, that its
//     Secret holds a CA certificate and key);
//   - certificaterequests-issuer-ca: signs approved CertificateRequests
//     whose issuerRef names a CA issuer, with the key in that issuer's
//     Secret;
//   - certificaterequests-approver: approves every CertificateRequest it
//     sees, as cert-manager does unless a policy approver replaces it.
//     Options.ApproverNamespace scopes it to one namespace, so that tests
//     can approve or deny requests elsewhere themselves.
//
// Nothing is faked: the controllers' code, their informers, their status
// writes and cert-manager's X.509 signing run as in a cluster. What does
// not run is cert-manager's webhook (defaulting and validation of
// cert-manager objects: tests must write complete, valid objects) and its
// other controllers (Certificate, ACME, Vault, Venafi, the
// CertificateSigningRequest signers), which nothing here needs.
//
// A typical TestMain starts one API server with StartEnvtest (Causeway's
// test API server plus the cert-manager CRDs), then Start, and stops them
// in reverse order; NewCA and CreateCAIssuer / CreateCAClusterIssuer give a
// test a CA issuer backed by a CA it holds.
//
// cert-manager v1.21 was built against Kubernetes 0.36 libraries and
// controller-runtime 0.24; it compiles and runs here against the 0.37 and
// 0.25 that go.mod pins. The controllers link much of cert-manager's
// dependency tree (etcd client, zap, LDAP) into the test binaries that
// import this package, which is why production code imports only
// cert-manager's API types and typed clientset.
package certmanager
