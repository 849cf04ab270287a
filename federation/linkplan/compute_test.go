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

package linkplan_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/federation/linkplan"
)

// member is a MemberCluster with a gateway when addrs is not empty.
func member(name string, transport causewayv1alpha1.GatewayTransport, addrs ...string) causewayv1alpha1.MemberCluster {
	mc := causewayv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if len(addrs) > 0 {
		mc.Spec.Gateway = &causewayv1alpha1.MemberClusterGateway{Transport: transport}
		for _, a := range addrs {
			mc.Spec.Gateway.Addresses = append(mc.Spec.Gateway.Addresses, causewayv1alpha1.GatewayAddress(a))
		}
	}
	return mc
}

func dial(cluster string, transport causewayv1alpha1.GatewayTransport, addrs ...string) linkplan.Peer {
	return linkplan.Peer{Cluster: cluster, Role: linkplan.RoleDial, Addresses: addrs, Transport: transport}
}

func accept(cluster string, transport causewayv1alpha1.GatewayTransport) linkplan.Peer {
	return linkplan.Peer{Cluster: cluster, Role: linkplan.RoleAccept, Transport: transport}
}

const (
	quic = causewayv1alpha1.GatewayTransportQUIC
	tcp  = causewayv1alpha1.GatewayTransportTCP
)

func TestCompute(t *testing.T) {
	deleting := member("gone", quic, "10.0.0.9")
	deleting.DeletionTimestamp = &metav1.Time{}
	tests := map[string]struct {
		members []causewayv1alpha1.MemberCluster
		want    map[string][]linkplan.Peer
	}{
		"no members": {want: map[string][]linkplan.Peer{}},
		"one member has an empty plan": {
			members: []causewayv1alpha1.MemberCluster{member("a", quic, "10.0.0.1")},
			want:    map[string][]linkplan.Peer{"a": {}},
		},
		"a and b have gateways: a (first) dials b, c dials both": {
			members: []causewayv1alpha1.MemberCluster{
				member("c", ""), member("a", quic, "10.255.1.2"), member("b", tcp, "10.255.2.2:15443"),
			},
			want: map[string][]linkplan.Peer{
				"a": {dial("b", tcp, "10.255.2.2:15443"), accept("c", quic)},
				"b": {accept("a", tcp), accept("c", tcp)},
				"c": {dial("a", quic, "10.255.1.2:15443"), dial("b", tcp, "10.255.2.2:15443")},
			},
		},
		"neither has a gateway: no link": {
			members: []causewayv1alpha1.MemberCluster{member("a", ""), member("b", "")},
			want:    map[string][]linkplan.Peer{"a": {}, "b": {}},
		},
		"only the first has a gateway: the second dials it": {
			members: []causewayv1alpha1.MemberCluster{member("a", tcp, "gw.a.example:443"), member("b", "")},
			want: map[string][]linkplan.Peer{
				"a": {accept("b", tcp)},
				"b": {dial("a", tcp, "gw.a.example:443")},
			},
		},
		"addresses: normalised, in order, duplicates dropped, IPv6 bracketed": {
			members: []causewayv1alpha1.MemberCluster{
				member("a", ""),
				member("b", "", "2001:db8::1", "gw.b.example:15443", "[2001:db8::1]:15443", "10.0.0.2", "10.0.0.2:15443", "[2001:db8::2]:9443"),
			},
			want: map[string][]linkplan.Peer{
				"a": {dial("b", quic, "[2001:db8::1]:15443", "gw.b.example:15443", "10.0.0.2:15443", "[2001:db8::2]:9443")},
				"b": {accept("a", quic)},
			},
		},
		"a gateway without a usable address counts as none": {
			members: []causewayv1alpha1.MemberCluster{member("a", quic, "Not An Address", "gw.example"), member("b", "")},
			want:    map[string][]linkplan.Peer{"a": {}, "b": {}},
		},
		"unusable addresses are skipped, usable ones kept": {
			members: []causewayv1alpha1.MemberCluster{member("a", quic, "fe80::1%eth0", "UPPER.example:1", "10.0.0.1:80"), member("b", "")},
			want: map[string][]linkplan.Peer{
				"a": {accept("b", quic)},
				"b": {dial("a", quic, "10.0.0.1:80")},
			},
		},
		"members being deleted and invalid names take no part": {
			members: []causewayv1alpha1.MemberCluster{member("a", ""), deleting, member("Bad_Name", quic, "10.0.0.3")},
			want:    map[string][]linkplan.Peer{"a": {}},
		},
		"paused members take part": {
			members: func() []causewayv1alpha1.MemberCluster {
				p := member("p", quic, "10.0.0.4")
				p.Spec.Paused = true
				return []causewayv1alpha1.MemberCluster{member("a", ""), p}
			}(),
			want: map[string][]linkplan.Peer{
				"a": {dial("p", quic, "10.0.0.4:15443")},
				"p": {accept("a", quic)},
			},
		},
		"four members, two gateways": {
			members: []causewayv1alpha1.MemberCluster{
				member("w", quic, "10.0.0.23"), member("x", ""), member("y", tcp, "10.0.0.25"), member("z", ""),
			},
			want: map[string][]linkplan.Peer{
				"w": {accept("x", quic), dial("y", tcp, "10.0.0.25:15443"), accept("z", quic)},
				"x": {dial("w", quic, "10.0.0.23:15443"), dial("y", tcp, "10.0.0.25:15443")},
				"y": {accept("w", tcp), accept("x", tcp), accept("z", tcp)},
				"z": {dial("w", quic, "10.0.0.23:15443"), dial("y", tcp, "10.0.0.25:15443")},
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := linkplan.Compute(tc.members)
			want := map[string]linkplan.Plan{}
			for n, peers := range tc.want {
				want[n] = linkplan.Plan{Cluster: n, Peers: peers}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Compute:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestMarshalIsTheContractsJSON(t *testing.T) {
	plans := linkplan.Compute([]causewayv1alpha1.MemberCluster{member("a", quic, "10.255.1.2"), member("b", quic, "10.255.2.2"), member("c", "")})
	b, err := plans["b"].Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"cluster":"b","peers":[{"cluster":"a","role":"accept","transport":"QUIC"},{"cluster":"c","role":"accept","transport":"QUIC"}]}`
	if string(b) != want {
		t.Errorf("plan of b:\n got %s\nwant %s", b, want)
	}
	b, err = plans["c"].Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want = `{"cluster":"c","peers":[{"cluster":"a","role":"dial","addresses":["10.255.1.2:15443"],"transport":"QUIC"},{"cluster":"b","role":"dial","addresses":["10.255.2.2:15443"],"transport":"QUIC"}]}`
	if string(b) != want {
		t.Errorf("plan of c:\n got %s\nwant %s", b, want)
	}
	if b, err := (linkplan.Plan{Cluster: "alone"}).Marshal(); err != nil || string(b) != `{"cluster":"alone","peers":[]}` {
		t.Errorf("empty plan = %s, %v", b, err)
	}
}

// fuzzAddresses are gateway addresses the fuzzer picks from: usable ones
// in several spellings of the same address, and unusable ones.
var fuzzAddresses = []string{
	"10.0.0.1", "10.0.0.1:15443", "10.0.0.2:80", "2001:db8::1", "[2001:db8::1]:15443", "gw.example:443",
	"gw.example", "", ":1", "UP.example:1", "fe80::1%eth0", "10.0.0.1:0", "[::ffff:10.0.0.1]:1",
}

// fuzzNames are member names the fuzzer picks from, an invalid one among them.
var fuzzNames = []string{"a", "b", "c", "d", "e", "f", "Bad", "g"}

// decodeMembers makes a member list from fuzz data: per member, a name,
// a gateway shape (none, or up to three addresses), a transport, and
// whether it is being deleted.
func decodeMembers(data []byte) []causewayv1alpha1.MemberCluster {
	var out []causewayv1alpha1.MemberCluster
	for len(data) >= 3 && len(out) < 12 {
		b0, b1, b2 := data[0], data[1], data[2]
		data = data[3:]
		mc := causewayv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: fuzzNames[int(b0)%len(fuzzNames)]}}
		if b0&0x80 != 0 {
			mc.DeletionTimestamp = &metav1.Time{}
		}
		if n := int(b1 % 4); n > 0 {
			gw := &causewayv1alpha1.MemberClusterGateway{}
			for i := range n {
				gw.Addresses = append(gw.Addresses, causewayv1alpha1.GatewayAddress(fuzzAddresses[int(b2>>(2*i)+byte(i))%len(fuzzAddresses)]))
			}
			switch b1 >> 6 {
			case 1:
				gw.Transport = quic
			case 2:
				gw.Transport = tcp
			case 3:
				gw.Transport = "SCTP"
			}
			mc.Spec.Gateway = gw
		}
		if b1&0x10 != 0 {
			mc.Spec.Paused = true
		}
		out = append(out, mc)
	}
	return out
}

// FuzzCompute checks Compute's invariants on arbitrary member lists (and
// that ComputeFor agrees with it): every
// plan is valid and round-trips through JSON; each pair of planned members
// has exactly one link, seen from both ends with opposite roles and the
// same transport, when at least one of them has a usable gateway, and
// none otherwise; the dialled member has a gateway, whose addresses the
// dial entry lists; with two gateways the first name dials; and the result
// does not depend on the members' order.
func FuzzCompute(f *testing.F) {
	f.Add([]byte{0, 1, 0, 1, 2, 5, 2, 0, 0})
	f.Add([]byte{0, 0x41, 0xff, 1, 0x82, 0x13, 2, 0xc3, 0x22, 0x83, 1, 0})
	f.Add([]byte{6, 1, 1, 0, 0, 0, 0, 3, 7})
	f.Fuzz(func(t *testing.T, data []byte) {
		members := decodeMembers(data)
		plans := linkplan.Compute(members)

		// What the test itself knows of each live member.
		live := map[string]*causewayv1alpha1.MemberCluster{}
		for i := range members {
			mc := &members[i]
			if mc.DeletionTimestamp == nil && mc.Name != "Bad" {
				live[mc.Name] = mc // the last of a name counts
			}
		}
		usable := func(name string) bool {
			gw := live[name].Spec.Gateway
			if gw == nil {
				return false
			}
			for _, a := range gw.Addresses {
				if host, _, err := a.HostPort(causewayv1alpha1.DefaultGatewayPort); err == nil && host == strings.ToLower(host) && !strings.Contains(host, "%") {
					return true
				}
			}
			return false
		}
		if len(plans) != len(live) {
			t.Fatalf("%d plans for %d live members", len(plans), len(live))
		}
		for name, p := range plans {
			if live[name] == nil || p.Cluster != name {
				t.Fatalf("plan %q for cluster %q; live members %v", name, p.Cluster, slices.Sorted(mapsKeys(live)))
			}
			if err := p.Validate(); err != nil {
				t.Fatalf("Compute made an invalid plan: %v", err)
			}
			b, err := p.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			back, err := linkplan.Parse(b)
			if err != nil || !reflect.DeepEqual(back, p) {
				t.Fatalf("plan %s does not round-trip: %+v, %v", b, back, err)
			}
			if !slices.IsSortedFunc(p.Peers, func(a, b linkplan.Peer) int { return strings.Compare(a.Cluster, b.Cluster) }) {
				t.Fatalf("peers of %s not sorted: %+v", name, p.Peers)
			}
		}
		for x := range plans {
			for y := range plans {
				if x >= y {
					continue
				}
				px, okx := plans[x].Peer(y)
				py, oky := plans[y].Peer(x)
				if okx != oky {
					t.Fatalf("link %s-%s seen from one end only: %+v / %+v", x, y, px, py)
				}
				if want := usable(x) || usable(y); okx != want {
					t.Fatalf("link %s-%s exists = %v; gateways usable %v, %v", x, y, okx, usable(x), usable(y))
				}
				if !okx {
					continue
				}
				if px.Role == py.Role {
					t.Fatalf("link %s-%s: both ends %s", x, y, px.Role)
				}
				if px.Transport != py.Transport {
					t.Fatalf("link %s-%s: transports %s / %s", x, y, px.Transport, py.Transport)
				}
				dialer, d, acceptor := x, px, y
				if py.Role == linkplan.RoleDial {
					dialer, d, acceptor = y, py, x
				}
				if !usable(acceptor) {
					t.Fatalf("%s dials %s, which has no usable gateway", dialer, acceptor)
				}
				if usable(dialer) && dialer > acceptor {
					t.Fatalf("both have gateways, and %s dials %s: the first name must dial", dialer, acceptor)
				}
				want := quic
				if live[acceptor].Spec.Gateway.Transport == tcp {
					want = tcp
				}
				if d.Transport != want {
					t.Fatalf("%s dials %s over %s; its transport is %q", dialer, acceptor, d.Transport, live[acceptor].Spec.Gateway.Transport)
				}
			}
		}
		// Order does not matter (when names are unique).
		if len(live) == len(members) {
			reversed := slices.Clone(members)
			slices.Reverse(reversed)
			if again := linkplan.Compute(reversed); !reflect.DeepEqual(again, plans) {
				a, _ := json.Marshal(plans)
				b, _ := json.Marshal(again)
				t.Fatalf("Compute depends on order:\n%s\n%s", a, b)
			}
		}
		if again := linkplan.Compute(members); !reflect.DeepEqual(again, plans) {
			t.Fatal("Compute is not deterministic")
		}
		// ComputeFor agrees with Compute, member by member.
		for _, name := range fuzzNames {
			p, ok := linkplan.ComputeFor(members, name)
			want, wantOK := plans[name]
			if ok != wantOK || !reflect.DeepEqual(p, want) {
				t.Fatalf("ComputeFor(%s) = %+v, %v; Compute says %+v, %v", name, p, ok, want, wantOK)
			}
		}
	})
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// BenchmarkCompute100Members is one hub reconcile's decision with 100
// members, half with gateways (4,950 pairs, 2,475+1,225 links).
func BenchmarkCompute100Members(b *testing.B) {
	var members []causewayv1alpha1.MemberCluster
	for i := range 100 {
		name := fmt.Sprintf("m%03d", i)
		if i%2 == 0 {
			members = append(members, member(name, tcp, fmt.Sprintf("10.0.%d.1", i), fmt.Sprintf("gw.%s.example:443", name)))
		} else {
			members = append(members, member(name, ""))
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if plans := linkplan.Compute(members); len(plans) != 100 {
			b.Fatalf("%d plans", len(plans))
		}
	}
}

// BenchmarkComputeFor100Members is what the hub's reconciler computes per
// member: one plan among 100 members.
func BenchmarkComputeFor100Members(b *testing.B) {
	var members []causewayv1alpha1.MemberCluster
	for i := range 100 {
		name := fmt.Sprintf("m%03d", i)
		if i%2 == 0 {
			members = append(members, member(name, tcp, fmt.Sprintf("10.0.%d.1", i), fmt.Sprintf("gw.%s.example:443", name)))
		} else {
			members = append(members, member(name, ""))
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := linkplan.ComputeFor(members, "m051"); !ok {
			b.Fatal("no plan")
		}
	}
}
