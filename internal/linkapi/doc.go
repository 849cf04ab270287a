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

// Package linkapi holds the JSON shapes of cluster-link status that cross
// process boundaries: a gateway's admin endpoint GET /links (written by
// causeway-proxy in gateway mode, read by the agent) and the per-member
// summary the agent keeps on the hub (ConfigMap
// causeway-member-<member>/causeway-link-status, key status.json, read by
// `causeway status`).
//
// It imports only the standard library, so the data plane (gateway/), the
// agent (controllers/) and the hub side (federation/) can all share it
// without depending on each other.
//
// # Decoding
//
// DecodeGatewayLinks and DecodeStatus decode and validate: every value that
// would make a reader guess (an unknown state or role, an empty peer, a
// negative or non-finite RTT, duplicate links) is an error, never a panic;
// unknown fields are ignored so that a newer gateway or agent can add some.
// Both decoders are fuzzed.
package linkapi
