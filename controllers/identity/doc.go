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
// Package identity is the agent's side of workload identity: it loads the
// member cluster's intermediate CA from the hub, publishes the trust
// bundle in the member cluster, and serves short-lived X509-SVIDs to the
// cluster's proxies over Envoy's Secret Discovery Service (SDS), after
// they prove their ServiceAccount with a bound token.
//
// # Pieces
//
//   - CAReconciler watches Secret causeway-member-<member>/causeway-ca on
//     the hub (written by the hub when the member joins: tls.crt is the
//     intermediate and its chain without the root, tls.key its PKCS #8
//     key, ca.crt the trust bundle) and loads it into an Authority with
//     LoadCASecret. It publishes the bundle in the member as ConfigMap
//     causeway-system/causeway-trust-bundle, key roots.pem, written only
//     when it differs, for proxies to mount as the trust that verifies the
//     agent's SDS endpoint. Until the Secret loads the Authority is not
//     ready (the agent's readiness check fails and says why); a Secret
//     that does not load is reported and the last CA that did stays in
//     use; a Secret whose trust domain differs from the loaded one is
//     refused (the trust domain is one across the cluster set).
//   - Authenticator reviews bearer tokens with the member API server's
//     TokenReview API, for the configured audience (default "causeway").
//     The token's user system:serviceaccount:<ns>:<sa> is the caller; a
//     pod-bound token's pod must exist (same UID). Outcomes are cached
//     for at most 30 s (refusals for 5 s, acceptances never past the
//     token's expiry) in a bounded LRU keyed by the token's SHA-256;
//     tokens are never logged or kept.
//   - Issuer generates an ECDSA P-256 key and signs an SVID with the
//     current intermediate. The lifetime is the MeshConfig's
//     spec.workloadCertTTL when set and within 10m..2160h, otherwise the
//     agent's --workload-cert-ttl (default 24h).
//   - SDSServer is a gRPC server (TLS with the agent's own SVID,
//     spiffe://<td>/ns/causeway-system/sa/causeway-agent, renewed at
//     half-life and when the intermediate changes) serving
//     envoy.service.secret.v3.SecretDiscoveryService, state of the world
//     and delta, through go-control-plane's server and snapshot cache.
//
// # The SDS protocol
//
// Every stream carries "authorization: Bearer <token>" metadata; a stream
// without a token the API server accepts for the audience ends with
// Unauthenticated before any request is read. The node of the first
// request must carry metadata causeway.dev/namespace and
// causeway.dev/service-account (NodeMetaServiceAccount) naming the
// token's ServiceAccount, and causeway.dev/pod, when both it and the
// token name a pod, the token's pod; otherwise PermissionDenied. Every
// node is served two secrets:
//
//	default  tls.Secret TlsCertificate: certificate_chain = SVID + intermediate chain (PEM),
//	         private_key = its PKCS #8 key (PEM)
//	ROOTCA   tls.Secret ValidationContext: trusted_ca = the trust bundle (PEM)
//
// The SVID's ID is spiffe://<td>/ns/<ns>/sa/<sa>, except for the token of
// ServiceAccount causeway-system/causeway-gateway, which gets the
// cluster's gateway ID spiffe://<td>/cluster/<member>/gateway.
//
// Each node (snapshot cache key namespace/serviceaccount/node-id, so two
// ServiceAccounts claiming one node ID never share secrets) gets its own
// key and SVID when its first stream opens, a new one at the SVID's
// half-life and when the intermediate changes, and the new bundle when
// the bundle changes. Its snapshot is forgotten when its last stream
// closes. Before renewing on a long-lived stream, whose token may have
// expired meanwhile, the agent checks that the token's ServiceAccount
// (same UID) and pod still exist; if not, it stops renewing and the proxy
// must reconnect with a valid token.
//
// The same gRPC server carries the agent's xDS services
// (SDSOptions.Register): their streams pass the same TLS and token
// checks, and controllers/xds checks each node with CheckNode against
// the caller (CallerFrom), so :15012 serves SDS and authenticated ADS.
//
// # Trade-offs
//
// The agent makes the keys: SDS carries private keys, so proxies need no
// key generation or CSR support, at the cost of keys crossing the (TLS)
// connection. The token is checked when a stream opens, not per
// response; revalidation at renewal bounds how long a revoked identity
// keeps getting certificates. The client does not present a certificate:
// the token is the proof, and the proxy has no SVID before SDS gives it
// one. Clients verify the agent's certificate against the published
// bundle and should authorize the agent's ID.
package identity
