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

package jwtauthn

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtauthnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
)

func TestCompileRefuses(t *testing.T) {
	keys(t)
	jwks := jwksJSON(t, ecKey)
	// base returns a valid config; each case breaks it in one place.
	base := func() *jwtauthnv3.JwtAuthentication { return oneProvider(localProvider(jwks)) }
	provider := func(mod func(*jwtauthnv3.JwtProvider)) func(*jwtauthnv3.JwtAuthentication) {
		return func(c *jwtauthnv3.JwtAuthentication) { mod(c.Providers["p"]) }
	}
	match := func(mod func(*routev3.RouteMatch)) func(*jwtauthnv3.JwtAuthentication) {
		return func(c *jwtauthnv3.JwtAuthentication) { mod(c.Rules[0].Match) }
	}
	requires := func(r *jwtauthnv3.JwtRequirement) func(*jwtauthnv3.JwtAuthentication) {
		return func(c *jwtauthnv3.JwtAuthentication) {
			c.Rules[0].RequirementType = &jwtauthnv3.RequirementRule_Requires{Requires: r}
		}
	}
	tests := map[string]struct {
		mod  func(*jwtauthnv3.JwtAuthentication)
		want string // in the error
	}{
		"filter_state_rules": {
			mod:  func(c *jwtauthnv3.JwtAuthentication) { c.FilterStateRules = &jwtauthnv3.FilterStateRule{Name: "x"} },
			want: "filter_state_rules",
		},
		"header_in_metadata": {
			mod:  provider(func(p *jwtauthnv3.JwtProvider) { p.HeaderInMetadata = "h" }),
			want: "header_in_metadata",
		},
		"failed_status_in_metadata": {
			mod:  provider(func(p *jwtauthnv3.JwtProvider) { p.FailedStatusInMetadata = "s" }),
			want: "failed_status_in_metadata",
		},
		"extract_only_without_validation": {
			mod: requires(&jwtauthnv3.JwtRequirement{RequiresType: &jwtauthnv3.JwtRequirement_ExtractOnlyWithoutValidation{
				ExtractOnlyWithoutValidation: &jwtauthnv3.ExtractOnlyWithoutValidation{},
			}}),
			want: "extract_only_without_validation",
		},
		"extract_only_without_validation nested": {
			mod: requires(requireAny(requireProvider("p"), &jwtauthnv3.JwtRequirement{
				RequiresType: &jwtauthnv3.JwtRequirement_ExtractOnlyWithoutValidation{ExtractOnlyWithoutValidation: &jwtauthnv3.ExtractOnlyWithoutValidation{}},
			})),
			want: "requires_any[1]: extract_only_without_validation",
		},
		"empty requirement in requires_any": {
			mod:  requires(requireAny(requireProvider("p"), &jwtauthnv3.JwtRequirement{})),
			want: "requires_any[1]: empty requirement",
		},
		"unknown provider": {
			mod:  requires(requireProvider("nope")),
			want: `provider_name "nope"`,
		},
		"unknown requirement_name": {
			mod: func(c *jwtauthnv3.JwtAuthentication) {
				c.Rules[0].RequirementType = &jwtauthnv3.RequirementRule_RequirementName{RequirementName: "nope"}
			},
			want: `requirement_name "nope"`,
		},
		"watched_directory": {
			mod: provider(func(p *jwtauthnv3.JwtProvider) {
				p.GetLocalJwks().WatchedDirectory = &corev3.WatchedDirectory{Path: "/tmp"}
			}),
			want: "watched_directory",
		},
		"local_jwks not JSON": {
			mod:  func(c *jwtauthnv3.JwtAuthentication) { c.Providers["p"] = localProvider("nope") },
			want: "local_jwks: parse JWKS",
		},
		"local_jwks with only an HMAC key": {
			mod: func(c *jwtauthnv3.JwtAuthentication) {
				c.Providers["p"] = localProvider(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)
			},
			want: "no usable signature verification key",
		},
		"local_jwks file missing": {
			mod: provider(func(p *jwtauthnv3.JwtProvider) {
				p.GetLocalJwks().Specifier = &corev3.DataSource_Filename{Filename: "/nonexistent/jwks.json"}
			}),
			want: "/nonexistent/jwks.json",
		},
		"retry_on": {
			mod: func(c *jwtauthnv3.JwtAuthentication) {
				c.Providers["p"] = remoteProvider("https://idp.example/jwks", func(rj *jwtauthnv3.RemoteJwks) {
					rj.RetryPolicy = &corev3.RetryPolicy{RetryOn: "5xx"}
				})
			},
			want: "retry_policy.retry_on",
		},
		"runtime_fraction": {
			mod: match(func(m *routev3.RouteMatch) {
				m.RuntimeFraction = &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 1}}
			}),
			want: "runtime_fraction",
		},
		"grpc":        {mod: match(func(m *routev3.RouteMatch) { m.Grpc = &routev3.RouteMatch_GrpcRouteMatchOptions{} }), want: "grpc"},
		"tls_context": {mod: match(func(m *routev3.RouteMatch) { m.TlsContext = &routev3.RouteMatch_TlsContextMatchOptions{} }), want: "tls_context"},
		"cookies": {mod: match(func(m *routev3.RouteMatch) {
			m.Cookies = []*routev3.CookieMatcher{{Name: "c", StringMatch: exact("x")}}
		}), want: "cookies"},
		"filter_state": {mod: match(func(m *routev3.RouteMatch) {
			m.FilterState = []*matcherv3.FilterStateMatcher{{Key: "k", Matcher: &matcherv3.FilterStateMatcher_StringMatch{StringMatch: exact("x")}}}
		}), want: "filter_state"},
		"dynamic_meta": {mod: match(func(m *routev3.RouteMatch) {
			m.DynamicMetadata = []*matcherv3.MetadataMatcher{{
				Filter: "f",
				Path:   []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: "k"}}},
				Value:  &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_PresentMatch{PresentMatch: true}},
			}}
		}), want: "dynamic_metadata"},
		"connect":        {mod: match(func(m *routev3.RouteMatch) { m.PathSpecifier = &routev3.RouteMatch_ConnectMatcher_{} }), want: "connect_matcher"},
		"path policy":    {mod: match(func(m *routev3.RouteMatch) { m.PathSpecifier = &routev3.RouteMatch_PathMatchPolicy{} }), want: "path_match_policy"},
		"bad path regex": {mod: match(func(m *routev3.RouteMatch) { m.PathSpecifier = safeRegex("(") }), want: "safe_regex"},
		"range_match": {
			mod: match(func(m *routev3.RouteMatch) {
				m.Headers = []*routev3.HeaderMatcher{{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_RangeMatch{RangeMatch: &typev3.Int64Range{Start: 1, End: 2}}}}
			}),
			want: "range_match",
		},
		"custom subject matcher": {
			mod: provider(func(p *jwtauthnv3.JwtProvider) {
				p.Subjects = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Custom{Custom: &xdscorev3.TypedExtensionConfig{Name: "x", TypedConfig: mustAny(t)}}}
			}),
			want: "subjects: string matcher custom",
		},
		"claim_name and claim_path": {
			mod: provider(func(p *jwtauthnv3.JwtProvider) {
				p.ClaimToHeaders = []*jwtauthnv3.JwtClaimToHeader{{HeaderName: "x", ClaimName: "a", ClaimPath: []*jwtauthnv3.JwtClaimToHeader_PathSegment{{Key: "a"}}}}
			}),
			want: "claim_to_headers[0]",
		},
		"pseudo header for a token": {
			mod: provider(func(p *jwtauthnv3.JwtProvider) {
				p.FromHeaders = []*jwtauthnv3.JwtHeader{{Name: ":authority"}}
			}),
			want: "from_headers[0]",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := base()
			tc.mod(cfg)
			a, err := Compile(cfg, Options{})
			if err == nil {
				a.Close()
				t.Fatalf("Compile succeeded, want an error about %s", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Compile error = %q, want it to mention %q", err, tc.want)
			}
		})
	}
	if _, err := Compile(nil, Options{}); err == nil {
		t.Errorf("Compile(nil) succeeded")
	}
}

// TestCompileAccepts covers settings that are accepted although they do
// nothing here, and the other sources of a local JWKS.
func TestCompileAccepts(t *testing.T) {
	keys(t)
	jwks := jwksJSON(t, ecKey)
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, []byte(jwks), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CAUSEWAY_TEST_JWKS", jwks)
	sources := map[string]*corev3.DataSource{
		"inline_bytes":         {Specifier: &corev3.DataSource_InlineBytes{InlineBytes: []byte(jwks)}},
		"filename":             {Specifier: &corev3.DataSource_Filename{Filename: file}},
		"environment_variable": {Specifier: &corev3.DataSource_EnvironmentVariable{EnvironmentVariable: "CAUSEWAY_TEST_JWKS"}},
	}
	for name, ds := range sources {
		t.Run(name, func(t *testing.T) {
			p := localProvider(jwks)
			p.JwksSourceSpecifier = &jwtauthnv3.JwtProvider_LocalJwks{LocalJwks: ds}
			p.JwtCacheConfig = &jwtauthnv3.JwtCacheConfig{JwtCacheSize: 10}
			cfg := oneProvider(p)
			cfg.StatPrefix = "edge"
			a := compile(t, cfg, Options{})
			mustAuthenticate(t, a, sign(t, ecKey, claims()))
		})
	}
	t.Run("allow_missing only", func(t *testing.T) {
		cfg := oneProvider(localProvider(jwks))
		cfg.Rules[0].RequirementType = &jwtauthnv3.RequirementRule_Requires{Requires: &jwtauthnv3.JwtRequirement{
			RequiresType: &jwtauthnv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}},
		}}
		compile(t, cfg, Options{})
	})
	t.Run("remote with every supported field", func(t *testing.T) {
		compile(t, oneProvider(remoteProvider("https://idp.example/jwks", cacheFor(time.Minute), func(rj *jwtauthnv3.RemoteJwks) {
			rj.RetryPolicy = &corev3.RetryPolicy{}
		})), Options{})
	})
}

func mustAny(t *testing.T) *anypb.Any {
	t.Helper()
	a, err := anypb.New(&emptypb.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

func safeRegex(re string) *routev3.RouteMatch_SafeRegex {
	return &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: re}}
}
