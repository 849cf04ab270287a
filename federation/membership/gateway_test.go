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

package membership

import (
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
)

// gatewayAddressCases are addresses on both sides of every rule of the
// CRD.
var gatewayAddressCases = []string{
	// Accepted.
	"10.0.0.1", "2001:db8::1", "::1", "10.0.0.1:15443", "[2001:db8::1]:15443", "[::ffff:a00:1]:1",
	"gw.example.com:443", "gw:1", "a-b.c-d:65535", "0.0.0.0:1", "gw.example.com:00080",
	strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61) + ":1",
	// Refused.
	"", "gw.example.com", "GW.example.com:443", "gw_1.example:1", "-gw:1", "gw-:1", "gw..x:1", ".gw:1",
	"10.0.0.256:1", "10.0.0:1", "1.2.3.4.5:1", "01.2.3.4:1", "[10.0.0.1]:1", "[2001:db8::g]:1", "[::ffff:10.0.0.1]:1",
	"[2001:db8::1]", "2001:db8::1:15443x", "fe80::1%eth0", "[fe80::1%eth0]:1", "::ffff:10.0.0.1",
	"gw:0", "gw:65536", "gw:99999", "gw:123456", "gw:", ":80", "gw:+80", "gw: 80", " gw:80", "gw:80 ",
	"gw:80\n", "ü.example:1", "[::1]:0", "[::1]:70000", "1.2.3.4:0",
	strings.Repeat("a", 262) + ":1",
}

// TestGatewayAddressesAsTheCRD checks the client-side validation against
// the API server's: for every case, ValidateGatewayAddress accepts
// exactly what a (dry-run) create of a MemberCluster with that address
// accepts.
func TestGatewayAddressesAsTheCRD(t *testing.T) {
	ctx := testContext(t)
	hub := clientFor(t, hubCluster)
	for i, a := range gatewayAddressCases {
		mc := &causewayv1alpha1.MemberCluster{
			ObjectMeta: metav1.ObjectMeta{Name: "addr-case"},
			Spec: causewayv1alpha1.MemberClusterSpec{Gateway: &causewayv1alpha1.MemberClusterGateway{
				Addresses: []causewayv1alpha1.GatewayAddress{causewayv1alpha1.GatewayAddress(a)},
			}},
		}
		serverErr := hub.Create(ctx, mc, client.DryRunAll)
		if serverErr != nil && !apierrors.IsInvalid(serverErr) {
			t.Fatalf("case %d %q: %v", i, a, serverErr)
		}
		clientErr := ValidateGatewayAddress(a)
		if (serverErr == nil) != (clientErr == nil) {
			t.Errorf("address %q: API server says %v; ValidateGatewayAddress says %v", a, serverErr, clientErr)
		}
		if clientErr != nil && !strings.Contains(clientErr.Error(), "invalid gateway address") {
			t.Errorf("address %q: unclear error %v", a, clientErr)
		}
	}
}

func TestGateway(t *testing.T) {
	tests := map[string]struct {
		addrs     []string
		transport string
		want      *causewayv1alpha1.MemberClusterGateway
		wantErr   []string
	}{
		"none":               {},
		"QUIC by default":    {addrs: []string{"10.0.0.1"}, want: &causewayv1alpha1.MemberClusterGateway{Addresses: []causewayv1alpha1.GatewayAddress{"10.0.0.1"}, Transport: "QUIC"}},
		"TCP, order kept":    {addrs: []string{"gw:2", "gw:1"}, transport: "TCP", want: &causewayv1alpha1.MemberClusterGateway{Addresses: []causewayv1alpha1.GatewayAddress{"gw:2", "gw:1"}, Transport: "TCP"}},
		"eight":              {addrs: []string{"a:1", "a:2", "a:3", "a:4", "a:5", "a:6", "a:7", "a:8"}, transport: "QUIC", want: &causewayv1alpha1.MemberClusterGateway{Addresses: []causewayv1alpha1.GatewayAddress{"a:1", "a:2", "a:3", "a:4", "a:5", "a:6", "a:7", "a:8"}, Transport: "QUIC"}},
		"nine":               {addrs: []string{"a:1", "a:2", "a:3", "a:4", "a:5", "a:6", "a:7", "a:8", "a:9"}, wantErr: []string{"9 gateway addresses: at most 8"}},
		"transport, no addr": {transport: "QUIC", wantErr: []string{"needs at least one gateway address"}},
		"lower-case quic":    {addrs: []string{"gw:1"}, transport: "quic", wantErr: []string{`invalid gateway transport "quic": must be QUIC or TCP`}},
		"every error at once": {addrs: []string{"bad", "10.0.0.1", "Bad:1"}, transport: "SCTP",
			wantErr: []string{`"bad"`, `"Bad:1"`, `"SCTP"`}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Gateway(tc.addrs, tc.transport)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("Gateway = %+v, want an error", got)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %s", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (tc.want == nil) || (got != nil && (got.Transport != tc.want.Transport || !equalAddrs(got.Addresses, tc.want.Addresses))) {
				t.Errorf("Gateway = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func equalAddrs(a, b []causewayv1alpha1.GatewayAddress) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// FuzzValidateGatewayAddress checks that ValidateGatewayAddress never
// panics and that every address it accepts is one the link plan can use:
// it splits into a host and a port (apis' HostPort).
func FuzzValidateGatewayAddress(f *testing.F) {
	for _, a := range gatewayAddressCases {
		f.Add(a)
	}
	f.Fuzz(func(t *testing.T, a string) {
		if ValidateGatewayAddress(a) != nil {
			return
		}
		host, port, err := causewayv1alpha1.GatewayAddress(a).HostPort(causewayv1alpha1.DefaultGatewayPort)
		if err != nil || host == "" || port < 1 || port > 65535 {
			t.Fatalf("accepted %q, which HostPort splits into %q, %d, %v", a, host, port, err)
		}
	})
}
