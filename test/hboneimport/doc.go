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

// Package hboneimport follows HBONE-capable endpoints through the cluster
// set against a real API server: the agent's export controller
// (controllers/serviceexport) publishes them with Tunnel=HBONE, the hub's
// merge (federation/hub) copies them into the GlobalService, the agent's
// import controller (controllers/serviceimport) puts them in EndpointSlices
// labelled causeway.dev/tunnel=hbone, and the xDS translation
// (controllers/xds/translate) marks them in EDS.
//
// It lives under test/ because controllers/ and federation/ may not import
// each other (depguard); only tests join them. One API server plays the
// hub and the member, which exports a service and imports it back, as
// every member of the cluster set does.
package hboneimport
