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

// Package linkstatus reports the member cluster's east-west links to the
// hub. The agent runs a Reporter (a controller-runtime Runnable): every
// Interval (5 s) it asks each of the member's gateways for GET /links on
// its admin port and keeps the summary in the member's hub namespace as
// ConfigMap causeway-member-<member>/causeway-link-status, key status.json
// (internal/linkapi.Status), which `causeway status` reads.
//
// # Which gateways
//
// Options.Gateways returns the gateways to ask, each by its xDS node ID and
// admin address; the agent feeds it from the gateway nodes connected to
// its xDS server (node metadata causeway.dev/admin). Options.Static adds
// fixed ones (from flags, see ParseGateways). Duplicates by node collapse.
//
// # What is written, and when
//
// A gateway that cannot be asked, answers with an HTTP error, answers
// something that is not a valid link report, or reports another cluster
// is listed with an Error and no links: never dropped, never a crash. The
// summary is written when its shape changes (gateways, their errors, the
// set of links, a link's state, transport, last error or since) and
// otherwise at most every Refresh (30 s), which refreshes counters, RTT and
// the report's time; readers treat a report older than two refreshes as
// stale. While the member has no gateway nothing is refreshed, and no
// ConfigMap is created if none exists. At start the Reporter reads the
// existing ConfigMap, so a restarted agent writes nothing until something
// differs or the refresh is due.
//
// # Bounds
//
// Each GET has a timeout (Options.Timeout, 2 s, at most the interval),
// follows no redirect, uses no HTTP proxy and reads at most 1 MiB; at most
// 16 gateways are asked at once. Writes to the hub have a 10 s timeout and
// a failed one is retried at the next tick.
//
// # Permissions on the hub
//
// The agent needs, in its own hub namespace only, get and update on the
// ConfigMap causeway-link-status (resourceNames), and either create on
// configmaps (RBAC cannot restrict a create by name) or the ConfigMap
// created, empty, by `causeway join`. The Reporter never lists or
// watches.
package linkstatus
