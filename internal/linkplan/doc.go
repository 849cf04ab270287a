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

// Package linkplan is the format of a member's link plan, which the hub
// writes (federation/linkplan decides it) and the member's agent reads
// (controllers/xds turns it into its gateway's link clusters): the JSON of
// a Plan in the ConfigMap ConfigMapName of the member's hub namespace,
// key ConfigMapKey.
//
//	{"cluster":"b","peers":[
//	  {"cluster":"a","role":"dial","addresses":["10.255.1.2:15443"],"transport":"QUIC"},
//	  {"cluster":"c","role":"accept","transport":"TCP"}]}
//
// A dial entry lists the peer gateway's addresses as normalised host:port
// (IPv6 in brackets), the first preferred, and the link's transport; an
// accept entry has no addresses, and carries the link's transport too
// (the accepting gateway's own), which older writers may leave out.
//
// It imports only apis/ and internal/xdsconv, so the hub (federation/)
// and the agent (controllers/), which may not import each other, share
// it. Parse decodes and validates (fuzzed): a plan that does not parse is
// an error, never a panic, and unknown fields are ignored so that a newer
// hub's plan still reads.
package linkplan
