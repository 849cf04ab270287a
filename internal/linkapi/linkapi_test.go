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

package linkapi

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// contractExample is the /links body of the issue 6 contract.
const contractExample = `{"cluster":"b","links":[{"peer":"a","role":"dial","state":"up",
  "transport":"quic","rttSeconds":0.0012,"openStreams":3,"bytesSent":123,
  "bytesReceived":456,"lastError":"","since":"2026-12-01T05:00:00Z"}]}`

func TestDecodeGatewayLinks(t *testing.T) {
	gl, err := DecodeGatewayLinks([]byte(contractExample))
	if err != nil {
		t.Fatal(err)
	}
	want := Link{Peer: "a", Role: RoleDial, State: StateUp, Transport: TransportQUIC, RTTSeconds: 0.0012, OpenStreams: 3,
		BytesSent: 123, BytesReceived: 456, Since: time.Date(2026, 12, 1, 5, 0, 0, 0, time.UTC)}
	if gl.Cluster != "b" || len(gl.Links) != 1 || gl.Links[0] != want {
		t.Errorf("got %+v", gl)
	}
	if rtt := gl.Links[0].RTT(); rtt != 1200*time.Microsecond {
		t.Errorf("RTT %s", rtt)
	}

	link := func(fields string) string { return `{"cluster":"b","links":[{` + fields + `}]}` }
	ok := map[string]string{
		"no links":                   `{"cluster":"b","links":[]}`,
		"links null":                 `{"cluster":"b","links":null}`,
		"unknown fields are ignored": `{"cluster":"b","version":2,"links":[{"peer":"a","role":"accept","state":"down","lastError":"x","color":"red"}]}`,
		"connecting, no transport":   link(`"peer":"a","role":"dial","state":"connecting"`),
		"dial and accept, same peer": `{"cluster":"b","links":[{"peer":"a","role":"dial","state":"up"},{"peer":"a","role":"accept","state":"up"}]}`,
	}
	for name, body := range ok {
		if _, err := DecodeGatewayLinks([]byte(body)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	bad := map[string]struct{ body, err string }{
		"empty":             {``, "unexpected end of JSON input"},
		"null":              {`null`, "no cluster"},
		"not an object":     {`[1,2]`, "cannot unmarshal array"},
		"trailing garbage":  {`{"cluster":"b"} x`, "invalid character 'x' after top-level value"},
		"truncated":         {contractExample[:40], "unexpected end of JSON input"},
		"no cluster":        {`{"links":[]}`, "no cluster"},
		"no peer":           {link(`"role":"dial","state":"up"`), "link 0: no peer"},
		"bad role":          {link(`"peer":"a","role":"both","state":"up"`), `role "both"`},
		"bad state":         {link(`"peer":"a","role":"dial","state":"UP"`), `unknown state "UP"`},
		"bad transport":     {link(`"peer":"a","role":"dial","state":"up","transport":"udp"`), `unknown transport "udp"`},
		"negative RTT":      {link(`"peer":"a","role":"dial","state":"up","rttSeconds":-1`), "RTT -1 s"},
		"negative streams":  {link(`"peer":"a","role":"dial","state":"up","openStreams":-2`), "-2 open streams"},
		"negative bytes":    {link(`"peer":"a","role":"dial","state":"up","bytesSent":-2`), "cannot unmarshal number -2"},
		"RTT as string":     {link(`"peer":"a","role":"dial","state":"up","rttSeconds":"1ms"`), "cannot unmarshal string"},
		"bad since":         {link(`"peer":"a","role":"dial","state":"up","since":"yesterday"`), "parsing time"},
		"duplicate link":    {`{"cluster":"b","links":[{"peer":"a","role":"dial","state":"up"},{"peer":"a","role":"dial","state":"down"}]}`, "peer a with role dial listed twice"},
		"huge RTT overflow": {link(`"peer":"a","role":"dial","state":"up","rttSeconds":1e999`), "cannot unmarshal number 1e999"},
	}
	for name, tc := range bad {
		_, err := DecodeGatewayLinks([]byte(tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, tc.err)
		}
	}
	tooMany := GatewayLinks{Cluster: "b"}
	for i := range MaxLinks + 1 {
		tooMany.Links = append(tooMany.Links, Link{Peer: strings.Repeat("p", i%50+1) + string(rune('a'+i%26)), Role: RoleDial, State: StateUp})
	}
	b, _ := json.Marshal(tooMany)
	if _, err := DecodeGatewayLinks(b); err == nil || !strings.Contains(err.Error(), "1001 links, more than 1000") {
		t.Errorf("too many links: %v", err)
	}
}

func TestDecodeStatus(t *testing.T) {
	good := `{"cluster":"b","updated":"2026-12-01T05:00:05Z","gateways":[
	  {"node":"gw-1","admin":"10.1.0.5:15000","links":[{"peer":"a","role":"dial","state":"up","transport":"tcp"}]},
	  {"node":"gw-2","admin":"10.1.0.6:15000","error":"connection refused","links":[]}]}`
	st, err := DecodeStatus([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if st.Cluster != "b" || !st.Updated.Equal(time.Date(2026, 12, 1, 5, 0, 5, 0, time.UTC)) || len(st.Gateways) != 2 ||
		st.Gateways[1].Error != "connection refused" || st.Gateways[0].Links[0].Transport != TransportTCP {
		t.Errorf("got %+v", st)
	}
	bad := map[string]struct{ body, err string }{
		"not JSON":      {`status`, "invalid character"},
		"no cluster":    {`{"updated":"2026-12-01T05:00:05Z"}`, "no cluster"},
		"no updated":    {`{"cluster":"b","gateways":[]}`, "no updated time"},
		"gateway no id": {`{"cluster":"b","updated":"2026-12-01T05:00:05Z","gateways":[{"links":[]}]}`, "gateway 0: no node"},
		"gateway twice": {`{"cluster":"b","updated":"2026-12-01T05:00:05Z","gateways":[{"node":"g"},{"node":"g"}]}`, "gateway g listed twice"},
		"bad link":      {`{"cluster":"b","updated":"2026-12-01T05:00:05Z","gateways":[{"node":"g","links":[{"peer":"a"}]}]}`, "gateway g: link 0: peer a: role"},
	}
	for name, tc := range bad {
		_, err := DecodeStatus([]byte(tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, tc.err)
		}
	}
}

// TestJSONNames pins the field names the gateway, the agent and the CLI
// agree on.
func TestJSONNames(t *testing.T) {
	st := Status{Cluster: "b", Updated: time.Date(2026, 12, 1, 5, 0, 5, 0, time.UTC), Gateways: []GatewayReport{{
		Node: "gw", Admin: "10.1.0.5:15000",
		Links: []Link{{Peer: "a", Role: RoleDial, State: StateDown, LastError: "timeout"}},
	}}}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"cluster":"b","updated":"2026-12-01T05:00:05Z","gateways":[{"node":"gw","admin":"10.1.0.5:15000","links":[` +
		`{"peer":"a","role":"dial","state":"down","rttSeconds":0,"openStreams":0,"bytesSent":0,"bytesReceived":0,"lastError":"timeout"}]}]}`
	if string(b) != want {
		t.Errorf("JSON\n got %s\nwant %s", b, want)
	}
}

func TestRTTCap(t *testing.T) {
	l := Link{RTTSeconds: 1e300}
	if l.RTT() != time.Hour {
		t.Errorf("RTT of 1e300 s: %s", l.RTT())
	}
}

// FuzzDecodeGatewayLinks: any input decodes or errors, never panics, and
// whatever decodes re-encodes to something that decodes to the same.
func FuzzDecodeGatewayLinks(f *testing.F) {
	f.Add([]byte(contractExample))
	f.Add([]byte(`{"cluster":"b","links":[{"peer":"a","role":"accept","state":"connecting","rttSeconds":1e308}]}`))
	f.Add([]byte(`{"cluster":"","links":null}`))
	f.Add([]byte(`{"cluster":"b","links":[{"peer":"a","role":"dial","state":"up","since":"2026-12-01T05:00:00+02:00"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		gl, err := DecodeGatewayLinks(b)
		if err != nil {
			return
		}
		for _, l := range gl.Links {
			if l.RTT() < 0 {
				t.Fatalf("negative RTT from %q", b)
			}
		}
		roundTrip(t, gl, func(b []byte) (any, error) { return DecodeGatewayLinks(b) })
	})
}

// FuzzDecodeStatus: as FuzzDecodeGatewayLinks, for the hub's ConfigMap.
func FuzzDecodeStatus(f *testing.F) {
	f.Add([]byte(`{"cluster":"b","updated":"2026-12-01T05:00:05Z","gateways":[{"node":"gw","error":"refused","links":[]},` +
		`{"node":"gw2","links":[{"peer":"a","role":"dial","state":"up","transport":"quic"}]}]}`))
	f.Add([]byte(`{"cluster":"b","updated":"0001-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := DecodeStatus(b)
		if err != nil {
			return
		}
		roundTrip(t, st, func(b []byte) (any, error) { return DecodeStatus(b) })
	})
}

func roundTrip(t *testing.T, v any, decode func([]byte) (any, error)) {
	t.Helper()
	first, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode %+v: %v", v, err)
	}
	again, err := decode(first)
	if err != nil {
		t.Fatalf("re-decode %s: %v", first, err)
	}
	second, err := json.Marshal(again)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Fatalf("round trip changed\n%s\n%s", first, second)
	}
}
