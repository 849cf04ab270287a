package authz

import (
	"errors"
	"strings"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
)

func TestNormalizePath(t *testing.T) {
	tests := map[string]struct {
		raw  string
		keep bool
		want string
		err  error
	}{
		"canonical":                  {raw: "/api/v1/items", want: "/api/v1/items"},
		"root":                       {raw: "/", want: "/"},
		"asterisk":                   {raw: "*", want: "*"},
		"trailing slash kept":        {raw: "/a/", want: "/a/"},
		"query cut":                  {raw: "/a?b=/../c", want: "/a"},
		"fragment cut":               {raw: "/a#/../b", want: "/a"},
		"fragment before query":      {raw: "/a#x?y", want: "/a"},
		"merge slashes":              {raw: "///a//b///", want: "/a/b/"},
		"dot":                        {raw: "/a/./b/.", want: "/a/b/"},
		"dot dot":                    {raw: "/a/b/../c/..", want: "/a/"},
		"dot dot above root":         {raw: "/../../a", want: "/a"},
		"only dot dot":               {raw: "/..", want: "/"},
		"dots before merge (Envoy)":  {raw: "/a//../b", want: "/a/b"},
		"dots in names are names":    {raw: "/a/.../..b/b..", want: "/a/.../..b/b.."},
		"unreserved decoded":         {raw: "/%41%7a%30%2D%2e%5F%7E", want: "/Az0-._~"},
		"reserved kept upper":        {raw: "/a%3bb%3D%40", want: "/a%3Bb%3D%40"},
		"decoded once":               {raw: "/%2561dmin", want: "/%2561dmin"},
		"encoded dots":               {raw: "/a/%2e%2E/b/.%2e/c", want: "/c"},
		"encoded control kept":       {raw: "/a%0ab", want: "/a%0Ab"},
		"backslash":                  {raw: `/a\b\..\c`, want: "/a/c"},
		"leading backslash":          {raw: `\a`, want: "/a"},
		"space and quotes escaped":   {raw: `/a b"<>`, want: "/a%20b%22%3C%3E"},
		"other unsafe escaped":       {raw: "/[]^`{|}", want: "/%5B%5D%5E%60%7B%7C%7D"},
		"non-ASCII escaped":          {raw: "/caf\xc3\xa9", want: "/caf%C3%A9"},
		"sub-delims literal":         {raw: "/!$&'()*+,;=:@", want: "/!$&'()*+,;=:@"},
		"case preserved":             {raw: "/Admin/X", want: "/Admin/X"},
		"keep escaped slash":         {raw: "/a%2fb%5cc", keep: true, want: "/a%2Fb%5Cc"},
		"keep: no separator":         {raw: "/a/..%2F..%2Fb", keep: true, want: "/a/..%2F..%2Fb"},
		"escaped slash rejected":     {raw: "/a%2Fb", err: ErrEscapedSlash},
		"escaped backslash rejected": {raw: "/a%5cb", err: ErrEscapedSlash},
		"encoded NUL":                {raw: "/a%00", err: ErrEncodedNUL},
		"encoded NUL, keep":          {raw: "/a%00", keep: true, err: ErrEncodedNUL},
		"NUL":                        {raw: "/a\x00b", err: ErrControlChar},
		"CR in query":                {raw: "/a?b\r", err: ErrControlChar},
		"tab":                        {raw: "/a\tb", err: ErrControlChar},
		"DEL":                        {raw: "/a\x7f", err: ErrControlChar},
		"truncated escape":           {raw: "/a%4", err: ErrBadEscape},
		"bad hex":                    {raw: "/a%zz", err: ErrBadEscape},
		"lone percent":               {raw: "/100%", err: ErrBadEscape},
		"relative":                   {raw: "a/b", err: ErrNotOriginForm},
		"empty":                      {raw: "", err: ErrNotOriginForm},
		"only query":                 {raw: "?a", err: ErrNotOriginForm},
		"absolute-form":              {raw: "http://h/a", err: ErrNotOriginForm},
		"asterisk with query":        {raw: "*?a", err: ErrNotOriginForm},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			opts := NormalizeOptions{}
			if tc.keep {
				opts.EscapedSlashes = KeepEscapedSlashes
			}
			got, err := NormalizePath(tc.raw, opts)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !errors.Is(err, ErrInvalidPath) {
					t.Fatalf("NormalizePath(%q) = %q, %v; want error %v", tc.raw, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("NormalizePath(%q) = %q, %v; want %q", tc.raw, got, err, tc.want)
			}
			if again, err := NormalizePath(got, opts); err != nil || again != got {
				t.Fatalf("NormalizePath(%q) = %q, %v; not idempotent", got, again, err)
			}
		})
	}
}

// TestPathBypass runs the known ways of spelling a denied path through
// NormalizePath and a DENY engine: each must be denied, or rejected with
// 400 before matching.
func TestPathBypass(t *testing.T) {
	deny := func(ignoreCase bool) *Engine {
		exact, prefix := sExact("/admin"), sPrefix("/admin/")
		exact.IgnoreCase, prefix.IgnoreCase = ignoreCase, ignoreCase
		e, err := Compile(denyRBAC(map[string]*rbacv3.Policy{
			"deny-admin": pol(perms(pPath(exact), pPath(prefix)), ids(idAny())),
		}))
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	sensitive, insensitive := deny(false), deny(true)

	tests := map[string]struct {
		raw       string
		keep      bool
		want      string // normalised path; "" when rejected
		err       error
		allowed   bool // by the case-sensitive DENY
		allowedCI bool // by the case-insensitive DENY
	}{
		"plain":                 {raw: "/admin", want: "/admin"},
		"double slash":          {raw: "//admin", want: "/admin"},
		"dot dot":               {raw: "/a/../admin", want: "/admin"},
		"encoded letter":        {raw: "/%61dmin", want: "/admin"},
		"encoded slash":         {raw: "/admin%2F", err: ErrEscapedSlash},
		"encoded slash lower":   {raw: "/admin%2fx", err: ErrEscapedSlash},
		"encoded backslash":     {raw: "/admin%5Cx", err: ErrEscapedSlash},
		"backslash":             {raw: `\admin`, want: "/admin"},
		"two backslashes":       {raw: `\\admin`, want: "/admin"},
		"backslash inside":      {raw: `/admin\x`, want: "/admin/x"},
		"dot":                   {raw: "/./admin", want: "/admin"},
		"trailing dot":          {raw: "/admin/.", want: "/admin/"},
		"query":                 {raw: "/admin?x", want: "/admin"},
		"fragment":              {raw: "/admin#x", want: "/admin"},
		"encoded dot dot":       {raw: "/%2e%2e/admin", want: "/admin"},
		"encoded dot dot upper": {raw: "/x/%2E%2E/admin/y", want: "/admin/y"},
		"half-encoded dot dot":  {raw: "/x/.%2e/admin", want: "/admin"},
		"encoded NUL":           {raw: "/admin%00", err: ErrEncodedNUL},
		"NUL":                   {raw: "/admin\x00", err: ErrControlChar},
		"upper case":            {raw: "/ADMIN", want: "/ADMIN", allowed: true},
		"mixed case prefix":     {raw: "/Admin/users", want: "/Admin/users", allowed: true},
		"sub-path":              {raw: "/admin//users/../keys", want: "/admin/keys"},
		"not a sub-path":        {raw: "/adminx", want: "/adminx", allowed: true, allowedCI: true},
		"kept encoded slash":    {raw: "/admin%2f", keep: true, want: "/admin%2F", allowed: true, allowedCI: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			opts := NormalizeOptions{}
			if tc.keep {
				opts.EscapedSlashes = KeepEscapedSlashes
			}
			got, err := NormalizePath(tc.raw, opts)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("NormalizePath(%q) = %q, %v; want %v (400)", tc.raw, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("NormalizePath(%q) = %q, %v; want %q", tc.raw, got, err, tc.want)
			}
			req := &Request{Method: "GET", Path: got}
			if ok, p := sensitive.Allowed(req); ok != tc.allowed || (!ok && p != "deny-admin") {
				t.Errorf("case-sensitive DENY: Allowed(%q) = %v, %q; want %v", got, ok, p, tc.allowed)
			}
			if ok, _ := insensitive.Allowed(req); ok != tc.allowedCI {
				t.Errorf("case-insensitive DENY: Allowed(%q) = %v; want %v", got, ok, tc.allowedCI)
			}
		})
	}
}

func TestNormalizePathNoAllocCanonical(t *testing.T) {
	for _, p := range []string{"/", "/api/v1/items", "/a%3Bb?q=1", "/x/y/"} {
		n := testing.AllocsPerRun(100, func() {
			if _, err := NormalizePath(p, NormalizeOptions{}); err != nil {
				t.Fatal(err)
			}
		})
		if n != 0 {
			t.Errorf("NormalizePath(%q) allocates %v times; want 0", p, n)
		}
	}
}

// checkNormalized asserts the properties every result of NormalizePath has.
func checkNormalized(t *testing.T, raw, got string, opts NormalizeOptions) {
	t.Helper()
	if got == "*" {
		if raw != "*" {
			t.Fatalf("NormalizePath(%q) = %q", raw, got)
		}
		return
	}
	if !strings.HasPrefix(got, "/") {
		t.Fatalf("NormalizePath(%q) = %q: does not start with '/'", raw, got)
	}
	for _, bad := range []string{"//", "/./", "/../", `\`, "?", "#"} {
		if strings.Contains(got, bad) {
			t.Fatalf("NormalizePath(%q) = %q: contains %q", raw, got, bad)
		}
	}
	if strings.HasSuffix(got, "/.") || strings.HasSuffix(got, "/..") {
		t.Fatalf("NormalizePath(%q) = %q: ends with a dot segment", raw, got)
	}
	for i := 0; i < len(got); i++ {
		c := got[i]
		if c < 0x21 || c >= 0x7f {
			t.Fatalf("NormalizePath(%q) = %q: byte %#x at %d", raw, got, c, i)
		}
		if c == '%' {
			if i+2 >= len(got) || !isUpperHex(got[i+1]) || !isUpperHex(got[i+2]) {
				t.Fatalf("NormalizePath(%q) = %q: escape at %d is not upper-case hex", raw, got, i)
			}
			v := byte(unhex(got[i+1])<<4 | unhex(got[i+2]))
			if v == 0 || pathClass[v] == clsUnreserved {
				t.Fatalf("NormalizePath(%q) = %q: escape %%%02X should not remain", raw, got, v)
			}
			if (v == '/' || v == '\\') && opts.EscapedSlashes != KeepEscapedSlashes {
				t.Fatalf("NormalizePath(%q) = %q: escaped slash accepted", raw, got)
			}
		}
	}
	again, err := NormalizePath(got, opts)
	if err != nil || again != got {
		t.Fatalf("NormalizePath(%q) = %q, then %q, %v: not idempotent", raw, got, again, err)
	}
}

func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{
		"/", "*", "//admin", "/a/../admin", "/%61dmin", "/admin%2F", `\\admin`, "/./admin",
		"/admin/.", "/admin?x", "/admin#x", "/%2e%2e/admin", "/admin%00", "/ADMIN",
		"/a//../b", "/a b/\xc3\xa9", "/%zz", "/..%2f..%5c", "/.%2e/.%2E./...",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, raw string, keep bool) {
		opts := NormalizeOptions{}
		if keep {
			opts.EscapedSlashes = KeepEscapedSlashes
		}
		got, err := NormalizePath(raw, opts)
		if err != nil {
			if !errors.Is(err, ErrInvalidPath) || got != "" {
				t.Fatalf("NormalizePath(%q) = %q, %v", raw, got, err)
			}
			return
		}
		checkNormalized(t, raw, got, opts)
		// Differentially, for plain paths: RFC 3986 §5.2.4 as the RFC
		// writes it, then slashes merged.
		if plain(raw) {
			if want := rfcMergeSlashes(rfcRemoveDotSegments(raw)); got != want {
				t.Fatalf("NormalizePath(%q) = %q; RFC 3986 gives %q", raw, got, want)
			}
		}
		// Without escaped slashes, both modes agree.
		if !keep {
			other, err := NormalizePath(raw, NormalizeOptions{EscapedSlashes: KeepEscapedSlashes})
			if err != nil || other != got {
				t.Fatalf("NormalizePath(%q): reject mode %q, keep mode %q, %v", raw, got, other, err)
			}
		}
	})
}

// plain reports whether p is an absolute path of unreserved characters and
// slashes only, which NormalizePath changes only by removing dot segments
// and merging slashes.
func plain(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c != '/' && pathClass[c] != clsUnreserved {
			return false
		}
	}
	return true
}

// rfcRemoveDotSegments is the loop of RFC 3986 §5.2.4, rule by rule, on
// strings: slow and obviously faithful, to check the in-place version.
func rfcRemoveDotSegments(in string) string {
	out := ""
	dropLast := func() {
		if i := strings.LastIndexByte(out, '/'); i >= 0 {
			out = out[:i]
		} else {
			out = ""
		}
	}
	for in != "" {
		switch {
		case strings.HasPrefix(in, "../"): // A
			in = in[3:]
		case strings.HasPrefix(in, "./"): // A
			in = in[2:]
		case strings.HasPrefix(in, "/./"): // B
			in = in[2:]
		case in == "/.": // B
			in = "/"
		case strings.HasPrefix(in, "/../"): // C
			in = in[3:]
			dropLast()
		case in == "/..": // C
			in = "/"
			dropLast()
		case in == "." || in == "..": // D
			in = ""
		default: // E
			i := strings.IndexByte(in[1:], '/')
			if i < 0 {
				out, in = out+in, ""
			} else {
				out, in = out+in[:i+1], in[i+1:]
			}
		}
	}
	return out
}

func rfcMergeSlashes(p string) string {
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	return p
}

func TestRemoveDotSegmentsRFCExamples(t *testing.T) {
	// RFC 3986 §5.2.4 and §5.4.2 examples, with the merged-slash step.
	for in, want := range map[string]string{
		"/a/b/c/./../../g": "/a/g",
		"/b/c/d;p/../../g": "/b/g",
		"/../g":            "/g",
		"/./g/.":           "/g/",
		"/g/..":            "/",
		"/a/b/..":          "/a/",
	} {
		if got := string(removeDotSegments([]byte(in))); got != want {
			t.Errorf("removeDotSegments(%q) = %q; want %q", in, got, want)
		}
		if got := rfcRemoveDotSegments(in); got != want {
			t.Errorf("rfcRemoveDotSegments(%q) = %q; want %q", in, got, want)
		}
	}
}
