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

// Package lb holds the load balancers of causeway-proxy: given the
// endpoints of one upstream cluster (from EDS), a Balancer picks the
// endpoint for each request or each retry of it. The algorithms and their
// semantics are Envoy's: round robin, least request, random, ring hash and
// Maglev, all weighted, over priority levels with health-based spill-over
// and panic mode.
//
// # Usage
//
// The proxy compiles each cluster into a Balancer when its endpoints or its
// configuration change, passing the balancer being replaced so that
// per-endpoint state survives the update, and publishes it with the rest
// of its immutable model:
//
//	b, err := lb.New(lb.Config{Algorithm: lb.LeastRequest}, endpoints, old)
//	if err != nil {
//		return fmt.Errorf("compile cluster %s: %w", name, err) // NACK, keep old
//	}
//
// Every try of a request then picks, and reports when the try ends:
//
//	p, err := b.Pick(lb.Request{Avoid: tried.Contains})
//	if err != nil {
//		return err // errors.Is(err, lb.ErrNoEndpoint): 503
//	}
//	defer p.Done()
//	dial(p.Endpoint.Address)
//
// Consistent hashing (RingHash, Maglev) takes the request's hash key, which
// callers compute with HashString from the header, cookie or source IP that
// the route's hash policy names; a request without a key is balanced at
// random, as in Envoy.
//
// # Priorities and health
//
// Endpoints are grouped by Priority; the lowest number present is the most
// preferred level. Each level receives a share of the traffic from its
// health, as Envoy computes priority load: a level's health is the fraction
// of its endpoints that are healthy times the overprovisioning factor
// (default 1.4), capped at 100%; levels take their health in order until
// 100% is handed out, and when the healthy levels together are below 100%
// their shares are scaled up to fill it. So a fully healthy level 0 takes
// everything, a level 0 with no healthy endpoint takes nothing, and one
// with half its endpoints healthy takes 70% and spills 30% to level 1.
// Within a level only healthy endpoints are picked. When no endpoint is
// healthy at any level the balancer is in panic mode (Envoy's panic
// threshold reached at 0% healthy): it balances over all endpoints of the
// most preferred level, healthy or not, since failing every request is
// worse than trying.
//
// Request.Avoid implements Envoy's previous_hosts retry predicate within
// the level the request was given to: round robin, random and least
// request make a few more choices that are not avoided, the hash
// algorithms walk forward on the ring or table to the next endpoint that is
// not avoided, and all fall back to a scan of the level. Only when every
// endpoint of the level is avoided is an avoided one returned.
//
// # Design trade-offs
//
// A Balancer is immutable after New apart from atomic counters, so Pick
// takes no lock and does not allocate: each algorithm's structure (round
// robin schedule, alias table for weighted sampling, ring, Maglev table)
// is built once per update, which moves the cost of weights and health
// from every request to every EDS update. The counters that matter across
// updates, each endpoint's active requests and each level's round robin
// position, are carried over to the replacing balancer by address and by
// priority; the active-request counters are shared objects, so a request
// picked from the old balancer and finished after the update decrements
// the count that the new balancer reads.
//
// Round robin shares one atomic counter per level among all goroutines,
// which serialises on that cache line under heavy parallelism; in return
// its order is exact: a cycle in which each endpoint appears in proportion
// to its weight, spread out by earliest deadline first (equal weights
// strictly alternate, 1:3 gives B A B B). Weights whose sum exceeds 65536
// after dividing by their common divisor are scaled down to that cycle
// length. Random and least request use math/rand/v2's per-thread generator
// and touch shared memory only to count active requests, each counter on
// its own cache line.
//
// Least request samples its ChoiceCount candidates in proportion to weight
// and takes the one with the fewest active requests per unit of weight
// (ties to the first sampled). Idle, it therefore spreads traffic exactly by
// weight; loaded, it drives active requests towards proportional to weight.
// This differs from Envoy, which schedules by weight/(active+1)^bias
// (active_request_bias, default 1.0): that needs a shared scheduler
// updated on every pick, and when active requests grow with the traffic an
// endpoint gets, it settles nearer the square root of the weight ratio.
//
// The ring gives every endpoint a number of points proportional to its
// weight, and the lightest at least its share of MinRingSize, as Envoy
// sizes it; unlike Envoy, the points per unit of weight are then rounded up
// to a power of two, so adding or removing an endpoint almost always leaves
// every other endpoint's points in place and only the keys of that endpoint
// move. The price is a ring up to twice Envoy's size (never above
// MaxRingSize). The Maglev table is filled in the paper's way, each
// endpoint taking turns in proportion to its weight; it moves a little more
// than the removed endpoint's keys but looks up in constant time.
//
// Everything a Balancer builds depends only on the set of endpoints, never
// on their order, so proxies that receive the same EDS update in a
// different order send each hash key to the same endpoint.
package lb
