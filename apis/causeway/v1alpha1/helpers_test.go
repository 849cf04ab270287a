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

package v1alpha1_test

import (
	"regexp"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/charts"
)

func TestPercentagePartsPerMillion(t *testing.T) {
	tests := map[string]struct {
		in      v1alpha1.Percentage
		want    uint32
		wantErr bool
	}{
		"zero":                {in: "0", want: 0},
		"integer":             {in: "25", want: 250_000},
		"half":                {in: "0.5", want: 5_000},
		"smallest":            {in: "0.0001", want: 1},
		"four decimals":       {in: "12.3456", want: 123_456},
		"hundred":             {in: "100", want: 1_000_000},
		"hundred with zeros":  {in: "100.0000", want: 1_000_000},
		"above hundred":       {in: "100.0001", wantErr: true},
		"three digits":        {in: "101", wantErr: true},
		"leading zeros":       {in: "007", wantErr: true},
		"five decimals":       {in: "0.00001", wantErr: true},
		"empty":               {in: "", wantErr: true},
		"trailing point":      {in: "5.", wantErr: true},
		"leading point":       {in: ".5", wantErr: true},
		"sign":                {in: "+5", wantErr: true},
		"negative":            {in: "-1", wantErr: true},
		"percent sign":        {in: "5%", wantErr: true},
		"exponent":            {in: "1e2", wantErr: true},
		"space":               {in: " 5", wantErr: true},
		"non-ASCII digit":     {in: "٣", wantErr: true},
		"two points":          {in: "1.2.3", wantErr: true},
		"thousand":            {in: "1000", wantErr: true},
		"hundred and decimal": {in: "100.5", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := tc.in.PartsPerMillion()
			if tc.wantErr {
				if err == nil {
					t.Fatalf("PartsPerMillion(%q) = %d, want an error", tc.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("PartsPerMillion(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("PartsPerMillion(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

// FuzzPercentagePartsPerMillion checks that PartsPerMillion accepts exactly
// the strings the API server accepts (the regular expression of the CEL rule
// in the generated CRD) and never returns more than a million.
func FuzzPercentagePartsPerMillion(f *testing.F) {
	re := percentageRuleRegexp(f)
	for _, seed := range []string{"0", "0.5", "100", "100.0", "99.9999", "100.5", "007", "", ".", "1.", "1e3"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ppm, err := v1alpha1.Percentage(s).PartsPerMillion()
		if accepted := re.MatchString(s); accepted != (err == nil) {
			t.Fatalf("%q: API server accepts: %t, PartsPerMillion error: %v", s, accepted, err)
		}
		if err == nil && ppm > 1_000_000 {
			t.Fatalf("%q: %d parts per million, more than 100%%", s, ppm)
		}
	})
}

// percentageRuleRegexp returns the regular expression the CRD's CEL rule
// checks percentages with, read from the generated TrafficPolicy CRD, so
// this test fails if the marker and the Go parser drift apart.
func percentageRuleRegexp(tb testing.TB) *regexp.Regexp {
	tb.Helper()
	crds, err := charts.CRDs()
	if err != nil {
		tb.Fatalf("load CRDs: %v", err)
	}
	for _, crd := range crds {
		if crd.Spec.Names.Kind != "TrafficPolicy" {
			continue
		}
		schema := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
		for _, p := range []string{"spec", "faultInjection", "delay", "percentage"} {
			next, ok := schema.Properties[p]
			if !ok {
				tb.Fatalf("TrafficPolicy schema has no property %q on the way to spec.faultInjection.delay.percentage", p)
			}
			schema = &next
		}
		for _, rule := range schema.XValidations {
			if pattern, ok := matchesArgument(rule); ok {
				return regexp.MustCompile(pattern)
			}
		}
		tb.Fatalf("spec.faultInjection.delay.percentage has no self.matches('...') rule: %+v", schema.XValidations)
	}
	tb.Fatal("no TrafficPolicy CRD")
	return nil
}

// matchesArgument extracts the pattern of a rule of the form
// self.matches('<pattern>').
func matchesArgument(rule apiextensionsv1.ValidationRule) (string, bool) {
	const prefix, suffix = "self.matches('", "')"
	if !strings.HasPrefix(rule.Rule, prefix) || !strings.HasSuffix(rule.Rule, suffix) {
		return "", false
	}
	return strings.TrimSuffix(strings.TrimPrefix(rule.Rule, prefix), suffix), true
}

func TestGatewayAddressHostPort(t *testing.T) {
	tests := map[string]struct {
		in       v1alpha1.GatewayAddress
		wantHost string
		wantPort int32
		wantErr  bool
	}{
		"DNS name with port":  {in: "gw.example.com:443", wantHost: "gw.example.com", wantPort: 443},
		"IPv4 with port":      {in: "10.0.0.1:15443", wantHost: "10.0.0.1", wantPort: 15443},
		"IPv6 with port":      {in: "[2001:db8::1]:8443", wantHost: "2001:db8::1", wantPort: 8443},
		"bare IPv4":           {in: "10.0.0.1", wantHost: "10.0.0.1", wantPort: v1alpha1.DefaultGatewayPort},
		"bare IPv6":           {in: "2001:db8::1", wantHost: "2001:db8::1", wantPort: v1alpha1.DefaultGatewayPort},
		"highest port":        {in: "gw:65535", wantHost: "gw", wantPort: 65535},
		"DNS name no port":    {in: "gw.example.com", wantErr: true},
		"port zero":           {in: "gw:0", wantErr: true},
		"port too high":       {in: "gw:65536", wantErr: true},
		"empty port":          {in: "gw:", wantErr: true},
		"signed port":         {in: "gw:+80", wantErr: true},
		"empty host":          {in: ":80", wantErr: true},
		"unbracketed v6 port": {in: "2001:db8::1::80", wantErr: true},
		"zoned IPv6":          {in: "fe80::1%eth0", wantErr: true},
		"empty":               {in: "", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			host, port, err := tc.in.HostPort(v1alpha1.DefaultGatewayPort)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("HostPort(%q) = %q, %d, want an error", tc.in, host, port)
				}
				return
			}
			if err != nil {
				t.Fatalf("HostPort(%q): %v", tc.in, err)
			}
			if host != tc.wantHost || port != tc.wantPort {
				t.Errorf("HostPort(%q) = %q, %d, want %q, %d", tc.in, host, port, tc.wantHost, tc.wantPort)
			}
		})
	}
}

// FuzzGatewayAddressHostPort checks that HostPort never panics and only
// returns usable results.
func FuzzGatewayAddressHostPort(f *testing.F) {
	for _, seed := range []string{"gw:1", "[::1]:80", "10.0.0.1", "::1", ":", "[]:1", "a:99999"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, port, err := v1alpha1.GatewayAddress(s).HostPort(v1alpha1.DefaultGatewayPort)
		if err != nil {
			return
		}
		if host == "" || port < 1 || port > 65535 {
			t.Fatalf("HostPort(%q) = %q, %d: empty host or port out of range", s, host, port)
		}
	})
}

func TestPolicyTargetReferenceGroupOrDefault(t *testing.T) {
	tests := map[string]struct {
		ref  v1alpha1.PolicyTargetReference
		want string
	}{
		"Service without group":       {ref: v1alpha1.PolicyTargetReference{Kind: v1alpha1.TargetKindService, Name: "a"}, want: ""},
		"ServiceImport without group": {ref: v1alpha1.PolicyTargetReference{Kind: v1alpha1.TargetKindServiceImport, Name: "a"}, want: v1alpha1.MCSGroup},
		"explicit group is kept":      {ref: v1alpha1.PolicyTargetReference{Group: v1alpha1.MCSGroup, Kind: v1alpha1.TargetKindServiceImport, Name: "a"}, want: v1alpha1.MCSGroup},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tc.ref.GroupOrDefault(); got != tc.want {
				t.Errorf("GroupOrDefault() = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestAddToScheme checks that every kind is registered with its list, so
// clients built from the scheme can get and list all of them.
func TestAddToScheme(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatalf("AddToScheme: %v", err)
	}
	for _, kind := range []string{"MemberCluster", "TrafficPolicy", "FailoverPolicy", "AuthorizationPolicy", "MeshConfig"} {
		for _, k := range []string{kind, kind + "List"} {
			if !scheme.Recognizes(v1alpha1.GroupVersion.WithKind(k)) {
				t.Errorf("scheme does not recognise %s", v1alpha1.GroupVersion.WithKind(k))
			}
		}
	}
}
