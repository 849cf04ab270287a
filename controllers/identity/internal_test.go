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
package identity

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

func TestParseServiceAccountUser(t *testing.T) {
	for name, tc := range map[string]struct {
		user         string
		wantNS, want string
		wantErr      bool
	}{
		"service account":      {user: "system:serviceaccount:shop:web", wantNS: "shop", want: "web"},
		"dotted name":          {user: "system:serviceaccount:shop:web.v2", wantNS: "shop", want: "web.v2"},
		"user":                 {user: "alice", wantErr: true},
		"node":                 {user: "system:node:worker-1", wantErr: true},
		"no name":              {user: "system:serviceaccount:shop", wantErr: true},
		"empty name":           {user: "system:serviceaccount:shop:", wantErr: true},
		"extra colon":          {user: "system:serviceaccount:shop:web:x", wantErr: true},
		"slash in namespace":   {user: "system:serviceaccount:a/b:web", wantErr: true},
		"upper-case namespace": {user: "system:serviceaccount:Shop:web", wantErr: true},
	} {
		t.Run(name, func(t *testing.T) {
			ns, sa, err := parseServiceAccountUser(tc.user)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if ns != tc.wantNS || sa != tc.want {
				t.Fatalf("got %q %q, want %q %q", ns, sa, tc.wantNS, tc.want)
			}
		})
	}
}

// FuzzParseServiceAccountUser: an accepted user name is exactly
// system:serviceaccount:<ns>:<sa>, and neither part can break a node key.
func FuzzParseServiceAccountUser(f *testing.F) {
	for _, s := range []string{"system:serviceaccount:shop:web", "system:serviceaccount::", "alice", "system:serviceaccount:a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, user string) {
		ns, sa, err := parseServiceAccountUser(user)
		if err != nil {
			return
		}
		if serviceAccountUserPrefix+ns+":"+sa != user {
			t.Fatalf("%q parsed as %q %q", user, ns, sa)
		}
		for _, p := range []string{ns, sa} {
			if p == "" || len(p) > 253 {
				t.Fatalf("%q: bad part %q", user, p)
			}
			for _, r := range p {
				if r == '/' || r == ':' {
					t.Fatalf("%q: part %q holds %q", user, p, r)
				}
			}
		}
	})
}

func testNode(t *testing.T, id string, meta map[string]any) *corev3.Node {
	t.Helper()
	md, err := structpb.NewStruct(meta)
	if err != nil {
		t.Fatal(err)
	}
	return &corev3.Node{Id: id, Metadata: md}
}

func TestCheckNode(t *testing.T) {
	caller := &Caller{Namespace: "shop", ServiceAccount: "web", PodName: "web-0"}
	unbound := &Caller{Namespace: "shop", ServiceAccount: "web"}
	ok := map[string]any{xdsconv.NodeMetaNamespace: "shop", NodeMetaServiceAccount: "web"}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for key, val := range ok {
			m[key] = val
		}
		m[k] = v
		return m
	}
	long := make([]byte, maxNodeIDBytes+1)
	for i := range long {
		long[i] = 'x'
	}
	for name, tc := range map[string]struct {
		node    *corev3.Node
		caller  *Caller
		want    codes.Code
		wantKey string
	}{
		"match":                {node: testNode(t, "n1", ok), caller: caller, want: codes.OK, wantKey: "shop/web/n1"},
		"matching pod":         {node: testNode(t, "n1", with(xdsconv.NodeMetaPod, "web-0")), caller: caller, want: codes.OK, wantKey: "shop/web/n1"},
		"pod of unbound token": {node: testNode(t, "n1", with(xdsconv.NodeMetaPod, "any")), caller: unbound, want: codes.OK, wantKey: "shop/web/n1"},
		"other pod":            {node: testNode(t, "n1", with(xdsconv.NodeMetaPod, "web-1")), caller: caller, want: codes.PermissionDenied},
		"other namespace":      {node: testNode(t, "n1", with(xdsconv.NodeMetaNamespace, "bank")), caller: caller, want: codes.PermissionDenied},
		"other SA":             {node: testNode(t, "n1", with(NodeMetaServiceAccount, "db")), caller: caller, want: codes.PermissionDenied},
		"SA not a string":      {node: testNode(t, "n1", with(NodeMetaServiceAccount, 1.0)), caller: caller, want: codes.PermissionDenied},
		"no metadata":          {node: &corev3.Node{Id: "n1"}, caller: caller, want: codes.PermissionDenied},
		"no ID":                {node: testNode(t, "", ok), caller: caller, want: codes.InvalidArgument},
		"nil node":             {node: nil, caller: caller, want: codes.InvalidArgument},
		"long ID":              {node: testNode(t, string(long), ok), caller: caller, want: codes.InvalidArgument},
	} {
		t.Run(name, func(t *testing.T) {
			key, err := checkNode(tc.node, tc.caller)
			if got := status.Code(err); got != tc.want {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
			if key != tc.wantKey {
				t.Fatalf("key %q, want %q", key, tc.wantKey)
			}
			if err == nil && (nodeHash{}).ID(tc.node) != key {
				t.Fatalf("the cache hashes the node to %q, not its checked key %q", (nodeHash{}).ID(tc.node), key)
			}
		})
	}
}
