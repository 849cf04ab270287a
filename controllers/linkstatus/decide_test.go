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

package linkstatus

import (
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/causeway-mesh/causeway/internal/linkapi"
)

func TestNeedWrite(t *testing.T) {
	link := linkapi.Link{Peer: "a", Role: linkapi.RoleDial, State: linkapi.StateUp, Transport: linkapi.TransportQUIC, RTTSeconds: 0.001, BytesSent: 1, Since: t0}
	status := func(mod func(*linkapi.Link), gwErr string) *linkapi.Status {
		l := link
		if mod != nil {
			mod(&l)
		}
		g := linkapi.GatewayReport{Node: "gw", Admin: "10.0.0.1:15000", Links: []linkapi.Link{l}, Error: gwErr}
		if gwErr != "" {
			g.Links = []linkapi.Link{}
		}
		return &linkapi.Status{Cluster: "b", Gateways: []linkapi.GatewayReport{g}}
	}
	none := &linkapi.Status{Cluster: "b", Gateways: []linkapi.GatewayReport{}}
	cases := map[string]struct {
		last  *linkapi.Status
		age   time.Duration
		next  *linkapi.Status
		write bool
	}{
		"nothing on the hub, no gateway":   {last: nil, next: none, write: false},
		"nothing on the hub, a gateway":    {last: nil, next: status(nil, ""), write: true},
		"unchanged":                        {last: status(nil, ""), age: 29 * time.Second, next: status(nil, ""), write: false},
		"unchanged, refresh due":           {last: status(nil, ""), age: 30 * time.Second, next: status(nil, ""), write: true},
		"counters only":                    {last: status(nil, ""), age: 5 * time.Second, next: status(func(l *linkapi.Link) { l.BytesSent, l.RTTSeconds, l.OpenStreams = 9, 0.2, 4 }, ""), write: false},
		"state":                            {last: status(nil, ""), age: time.Second, next: status(func(l *linkapi.Link) { l.State = linkapi.StateDown }, ""), write: true},
		"transport":                        {last: status(nil, ""), age: time.Second, next: status(func(l *linkapi.Link) { l.Transport = linkapi.TransportTCP }, ""), write: true},
		"last error":                       {last: status(nil, ""), age: time.Second, next: status(func(l *linkapi.Link) { l.LastError = "x" }, ""), write: true},
		"reconnected (since)":              {last: status(nil, ""), age: time.Second, next: status(func(l *linkapi.Link) { l.Since = t0.Add(time.Second) }, ""), write: true},
		"same since, other zone":           {last: status(nil, ""), age: time.Second, next: status(func(l *linkapi.Link) { l.Since = t0.In(time.FixedZone("x", 3600)) }, ""), write: false},
		"another peer":                     {last: status(nil, ""), age: time.Second, next: status(func(l *linkapi.Link) { l.Peer = "c" }, ""), write: true},
		"gateway fails":                    {last: status(nil, ""), age: time.Second, next: status(nil, "connection refused"), write: true},
		"gateway fails differently":        {last: status(nil, "connection refused"), age: time.Second, next: status(nil, "HTTP 500"), write: true},
		"gateway gone":                     {last: status(nil, ""), age: time.Second, next: none, write: true},
		"no gateway, refresh not needed":   {last: none, age: time.Hour, next: none, write: false},
		"damaged summary on the hub":       {last: &linkapi.Status{}, next: none, write: true},
		"gateway added":                    {last: none, age: time.Second, next: status(nil, ""), write: true},
		"admin address of a gateway moved": {last: status(nil, ""), age: time.Second, next: func() *linkapi.Status { s := status(nil, ""); s.Gateways[0].Admin = "10.0.0.2:15000"; return s }(), write: true},
	}
	for name, tc := range cases {
		if got := needWrite(tc.last, t0, tc.next, t0.Add(tc.age), DefaultRefresh); got != tc.write {
			t.Errorf("%s: needWrite = %v, want %v", name, got, tc.write)
		}
	}
}

func TestParseGateways(t *testing.T) {
	got, err := ParseGateways(" 10.0.0.1:15000, gw-2=gw.causeway-system:15000,,[fd00::1]:15000")
	if err != nil {
		t.Fatal(err)
	}
	want := []Gateway{{AdminAddr: "10.0.0.1:15000"}, {Node: "gw-2", AdminAddr: "gw.causeway-system:15000"}, {AdminAddr: "[fd00::1]:15000"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v", got)
	}
	if got, err := ParseGateways(""); err != nil || len(got) != 0 {
		t.Errorf("empty: %v %v", got, err)
	}
	for _, bad := range []string{"10.0.0.1", "=10.0.0.1:15000", "gw=", ":15000", "10.0.0.1:", "http://10.0.0.1:15000", "a@10.0.0.1:15000", "10.0.0.1:15000/links"} {
		if _, err := ParseGateways(bad); err == nil {
			t.Errorf("ParseGateways(%q) accepted", bad)
		}
	}
}

func TestNew(t *testing.T) {
	bad := map[string]Options{
		"no hub":         {Cluster: "b"},
		"no cluster":     {Hub: hub},
		"bad static":     {Hub: hub, Cluster: "b", Static: []Gateway{{Node: "gw", AdminAddr: "gw"}}},
		"negative timer": {Hub: hub, Cluster: "b", Interval: -time.Second},
	}
	for name, o := range bad {
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	r, err := New(Options{Hub: hub, Cluster: "b", Interval: time.Second, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.o.Timeout != time.Second || r.o.Refresh != DefaultRefresh || r.http.Timeout != time.Second {
		t.Errorf("timeout %s (want the interval, 1s), refresh %s", r.o.Timeout, r.o.Refresh)
	}
}

func TestNormaliseLinks(t *testing.T) {
	long := strings.Repeat("é", maxErrorLen) // two bytes each
	got := normaliseLinks([]linkapi.Link{
		{Peer: "c", Role: linkapi.RoleDial, LastError: long},
		{Peer: "a", Role: linkapi.RoleDial, Since: t0.In(time.FixedZone("x", 3600))},
		{Peer: "a", Role: linkapi.RoleAccept},
	})
	if got[0].Role != linkapi.RoleAccept || got[1].Role != linkapi.RoleDial || got[2].Peer != "c" {
		t.Errorf("not sorted by peer and role: %+v", got)
	}
	if got[1].Since.Location() != time.UTC || !got[1].Since.Equal(t0) {
		t.Errorf("since %v", got[1].Since)
	}
	if e := got[2].LastError; len(e) > maxErrorLen+len("…") || !utf8.ValidString(e) || !strings.HasSuffix(e, "…") {
		t.Errorf("long error kept as %d bytes, valid UTF-8 %v", len(e), utf8.ValidString(e))
	}
	if got := normaliseLinks(nil); got == nil {
		t.Error("nil links stay nil (encoded as null)")
	}
}
