package membership

import (
	"encoding/base64"
	"testing"
	"time"
)

func TestTokenExpiry(t *testing.T) {
	jwt := func(payload string) string {
		return "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".c2ln"
	}
	cases := map[string]struct {
		token  string
		want   time.Time
		wantOK bool
	}{
		"exp claim":       {token: jwt(`{"exp":1800000000,"sub":"x"}`), want: time.Unix(1800000000, 0), wantOK: true},
		"no exp claim":    {token: jwt(`{"sub":"x"}`)},
		"not JSON":        {token: jwt(`exp`)},
		"not base64":      {token: "a.!!!.c"},
		"two parts":       {token: "a.b"},
		"empty":           {token: ""},
		"legacy SA token": {token: jwt(`{"iss":"kubernetes/serviceaccount"}`)},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, ok := tokenExpiry(tc.token)
			if ok != tc.wantOK || !got.Equal(tc.want) {
				t.Errorf("tokenExpiry = %v, %v; want %v, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func FuzzTokenExpiry(f *testing.F) {
	f.Add("a.eyJleHAiOjF9.c")
	f.Add("..")
	f.Fuzz(func(_ *testing.T, token string) { tokenExpiry(token) })
}

func TestTokenOf(t *testing.T) {
	p := &joinPlan{opts: JoinOptions{Name: "a", Hub: hubCluster.config()}, hubServer: "https://hub:6443", caData: []byte("CA")}
	kc, err := renderKubeconfig(p, "secret-token")
	if err != nil {
		t.Fatal(err)
	}
	if got := tokenOf(kc); got != "secret-token" {
		t.Errorf("tokenOf(rendered) = %q", got)
	}
	for _, bad := range []string{"", "not yaml: [", "apiVersion: v1\nkind: Config\ncurrent-context: missing\n"} {
		if got := tokenOf([]byte(bad)); got != "" {
			t.Errorf("tokenOf(%q) = %q, want empty", bad, got)
		}
	}
}
