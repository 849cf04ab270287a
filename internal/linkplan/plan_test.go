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
	"reflect"
	"strings"
	"testing"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/internal/linkplan"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

const (
	quic = causewayv1alpha1.GatewayTransportQUIC
	tcp  = causewayv1alpha1.GatewayTransportTCP
)

func dial(cluster string, transport causewayv1alpha1.GatewayTransport, addrs ...string) linkplan.Peer {
	return linkplan.Peer{Cluster: cluster, Role: linkplan.RoleDial, Addresses: addrs, Transport: transport}
}

func TestRolesAreTheXDSConventions(t *testing.T) {
	if string(linkplan.RoleDial) != xdsconv.LinkRoleDial || string(linkplan.RoleAccept) != xdsconv.LinkRoleAccept {
		t.Errorf("roles %q/%q differ from xdsconv's %q/%q", linkplan.RoleDial, linkplan.RoleAccept, xdsconv.LinkRoleDial, xdsconv.LinkRoleAccept)
	}
	if int(causewayv1alpha1.DefaultGatewayPort) != xdsconv.LinkPort {
		t.Errorf("DefaultGatewayPort %d differs from xdsconv.LinkPort %d", causewayv1alpha1.DefaultGatewayPort, xdsconv.LinkPort)
	}
}

func TestMarshal(t *testing.T) {
	p := linkplan.Plan{Cluster: "b", Peers: []linkplan.Peer{dial("a", quic, "10.255.1.2:15443"), {Cluster: "c", Role: linkplan.RoleAccept, Transport: tcp}}}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"cluster":"b","peers":[{"cluster":"a","role":"dial","addresses":["10.255.1.2:15443"],"transport":"QUIC"},{"cluster":"c","role":"accept","transport":"TCP"}]}`
	if string(b) != want {
		t.Errorf("Marshal:\n got %s\nwant %s", b, want)
	}
	if b, err := (linkplan.Plan{Cluster: "alone"}).Marshal(); err != nil || string(b) != `{"cluster":"alone","peers":[]}` {
		t.Errorf("empty plan = %s, %v", b, err)
	}
}

func TestParse(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    linkplan.Plan
		wantErr string
	}{
		"the contract's example": {
			in: `{"cluster":"b","peers":[{"cluster":"a","role":"dial","addresses":["10.255.1.2:15443"],"transport":"QUIC"},{"cluster":"c","role":"accept"}]}`,
			want: linkplan.Plan{Cluster: "b", Peers: []linkplan.Peer{
				dial("a", quic, "10.255.1.2:15443"), {Cluster: "c", Role: linkplan.RoleAccept},
			}},
		},
		"no peers":               {in: `{"cluster":"b","peers":[]}`, want: linkplan.Plan{Cluster: "b", Peers: []linkplan.Peer{}}},
		"null peers":             {in: `{"cluster":"b","peers":null}`, want: linkplan.Plan{Cluster: "b"}},
		"unknown fields ignored": {in: `{"cluster":"b","future":1,"peers":[{"cluster":"a","role":"accept","x":[]}]}`, want: linkplan.Plan{Cluster: "b", Peers: []linkplan.Peer{{Cluster: "a", Role: linkplan.RoleAccept}}}},
		"DNS and IPv6 addresses": {
			in:   `{"cluster":"b","peers":[{"cluster":"a","role":"dial","addresses":["gw.a.example:443","[2001:db8::1]:15443"],"transport":"TCP"}]}`,
			want: linkplan.Plan{Cluster: "b", Peers: []linkplan.Peer{dial("a", tcp, "gw.a.example:443", "[2001:db8::1]:15443")}},
		},
		"not JSON":             {in: `plan`, wantErr: "decode link plan"},
		"empty":                {in: ``, wantErr: "decode link plan"},
		"two objects":          {in: `{"cluster":"b"} {}`, wantErr: "data after the JSON object"},
		"wrong types":          {in: `{"cluster":1}`, wantErr: "decode link plan"},
		"no cluster":           {in: `{"peers":[]}`, wantErr: "cluster: empty"},
		"invalid cluster":      {in: `{"cluster":"B!"}`, wantErr: `"B!" is not a cluster name`},
		"itself as a peer":     {in: `{"cluster":"b","peers":[{"cluster":"b","role":"accept"}]}`, wantErr: "is the plan's own"},
		"a peer twice":         {in: `{"cluster":"b","peers":[{"cluster":"a","role":"accept"},{"cluster":"a","role":"accept"}]}`, wantErr: "listed twice"},
		"unknown role":         {in: `{"cluster":"b","peers":[{"cluster":"a","role":"both"}]}`, wantErr: `role "both"`},
		"unknown transport":    {in: `{"cluster":"b","peers":[{"cluster":"a","role":"accept","transport":"UDP"}]}`, wantErr: `transport "UDP"`},
		"dial, no transport":   {in: `{"cluster":"b","peers":[{"cluster":"a","role":"dial","addresses":["10.0.0.1:1"]}]}`, wantErr: "needs a transport"},
		"dial, no addresses":   {in: `{"cluster":"b","peers":[{"cluster":"a","role":"dial","transport":"QUIC"}]}`, wantErr: "needs 1 to 8 addresses"},
		"dial, bare IP":        {in: `{"cluster":"b","peers":[{"cluster":"a","role":"dial","addresses":["10.0.0.1"],"transport":"QUIC"}]}`, wantErr: "not host:port"},
		"dial, port 0":         {in: `{"cluster":"b","peers":[{"cluster":"a","role":"dial","addresses":["10.0.0.1:0"],"transport":"QUIC"}]}`, wantErr: "port must be 1-65535"},
		"dial, port +1":        {in: `{"cluster":"b","peers":[{"cluster":"a","role":"dial","addresses":["10.0.0.1:+1"],"transport":"QUIC"}]}`, wantErr: "port must be 1-65535"},
		"dial, bad host":       {in: `{"cluster":"b","peers":[{"cluster":"a","role":"dial","addresses":["a b:1"],"transport":"QUIC"}]}`, wantErr: "neither an IP address nor a DNS name"},
		"dial, zoned IPv6":     {in: `{"cluster":"b","peers":[{"cluster":"a","role":"dial","addresses":["[fe80::1%eth0]:1"],"transport":"QUIC"}]}`, wantErr: "with a zone"},
		"dial, long IPv6":      {in: `{"cluster":"b","peers":[{"cluster":"a","role":"dial","addresses":["[2001:db8:0::1]:1"],"transport":"QUIC"}]}`, wantErr: "canonical form"},
		"accept with address":  {in: `{"cluster":"b","peers":[{"cluster":"a","role":"accept","addresses":["10.0.0.1:1"]}]}`, wantErr: "no addresses"},
		"nine addresses":       {in: `{"cluster":"b","peers":[{"cluster":"a","role":"dial","transport":"TCP","addresses":["a:1","a:2","a:3","a:4","a:5","a:6","a:7","a:8","a:9"]}]}`, wantErr: "needs 1 to 8 addresses, not 9"},
		"invalid peer cluster": {in: `{"cluster":"b","peers":[{"cluster":"","role":"accept"}]}`, wantErr: "peers[0]: cluster: empty"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := linkplan.Parse([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse = %+v, %v; want an error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// FuzzParse checks that Parse never panics and that what it accepts is
// valid and survives a round trip.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"cluster":"b","peers":[{"cluster":"a","role":"dial","addresses":["10.255.1.2:15443"],"transport":"QUIC"},{"cluster":"c","role":"accept"}]}`))
	f.Add([]byte(`{"cluster":"b","peers":[]}`))
	f.Add([]byte(`{"cluster":"b","peers":[{"cluster":"a","role":"dial","addresses":["[::1]:1"],"transport":"TCP"}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := linkplan.Parse(data)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("Parse accepted an invalid plan: %v", err)
		}
		b, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		back, err := linkplan.Parse(b)
		if err != nil {
			t.Fatalf("re-parse %s: %v", b, err)
		}
		b2, _ := back.Marshal()
		if string(b) != string(b2) {
			t.Fatalf("round trip changed the plan: %s → %s", b, b2)
		}
	})
}
