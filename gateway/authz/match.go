package authz

import (
	"encoding/json"
	"net/netip"
	"strings"

	"github.com/causeway-mesh/causeway/gateway/match"
)

// matcher is one compiled permission or principal rule. match must not
// allocate on the common paths: it runs for every request.
type matcher interface {
	match(r *Request) bool
}

func anyMatch(ms []matcher, r *Request) bool {
	for _, m := range ms {
		if m.match(r) {
			return true
		}
	}
	return false
}

// and_rules, and_ids.
type andMatcher []matcher

func (m andMatcher) match(r *Request) bool {
	for _, x := range m {
		if !x.match(r) {
			return false
		}
	}
	return true
}

// or_rules, or_ids.
type orMatcher []matcher

func (m orMatcher) match(r *Request) bool { return anyMatch(m, r) }

// not_rule, not_id.
type notMatcher struct{ m matcher }

func (m notMatcher) match(r *Request) bool { return !m.m.match(r) }

// filter_state with string_match: a key that is not set matches nothing.
type filterStateMatcher struct {
	key string
	s   match.String
}

func (m *filterStateMatcher) match(r *Request) bool {
	v, ok := r.FilterState[m.key]
	return ok && m.s.Match(v)
}

// any.
type anyMatcher struct{}

func (anyMatcher) match(*Request) bool { return true }

// destination_port.
type portMatcher uint32

func (m portMatcher) match(r *Request) bool { return uint32(r.DestinationPort) == uint32(m) }

// destination_port_range: [start, end).
type portRangeMatcher struct{ start, end int32 }

func (m portRangeMatcher) match(r *Request) bool {
	p := int32(r.DestinationPort)
	return m.start <= p && p < m.end
}

// destination_ip, source_ip, remote_ip, direct_remote_ip.
type ipMatcher struct {
	prefix netip.Prefix
	source bool // match SourceIP, else DestinationIP
}

func (m ipMatcher) match(r *Request) bool {
	a := r.DestinationIP
	if m.source {
		a = r.SourceIP
	}
	if !a.IsValid() {
		return false
	}
	return m.prefix.Contains(a.Unmap().WithZone(""))
}

// url_path: the path without query.
type pathMatcher struct{ s match.String }

func (m *pathMatcher) match(r *Request) bool {
	p := r.Path
	if p == "" {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] == '?' || p[i] == '#' {
			p = p[:i]
			break
		}
	}
	return m.s.Match(p)
}

// requested_server_name: "" when there is no SNI, as in Envoy.
type serverNameMatcher struct{ s match.String }

func (m *serverNameMatcher) match(r *Request) bool { return m.s.Match(r.ServerName) }

// authenticated: URI SAN, then DNS SANs, then the subject.
type authenticatedMatcher struct {
	name *match.String // nil: any TLS peer
}

func (m *authenticatedMatcher) match(r *Request) bool {
	if !r.authenticated() {
		return false
	}
	if m.name == nil {
		return true
	}
	if r.PeerPrincipal != "" && m.name.Match(r.PeerPrincipal) {
		return true
	}
	for _, dns := range r.PeerDNSSANs {
		if m.name.Match(dns) {
			return true
		}
	}
	return m.name.Match(r.PeerSubject)
}

// Header matchers (envoy.config.route.v3.HeaderMatcher).
const (
	hdrString = iota // match.String (an empty deprecated exact_match matches any value)
	hdrPresent
	hdrRange
)

const (
	pseudoNone = iota
	pseudoMethod
	pseudoPath
	pseudoAuthority
)

type headerMatcher struct {
	key            string // canonical header key, when pseudo is pseudoNone
	pseudo         uint8
	kind           uint8
	s              match.String
	present        bool
	start, end     int64 // range_match [start, end)
	invert         bool
	missingAsEmpty bool
}

func (m *headerMatcher) value(r *Request) (string, bool) {
	switch m.pseudo {
	case pseudoMethod:
		return r.Method, r.Method != ""
	case pseudoAuthority:
		return r.Host, r.Host != ""
	case pseudoPath:
		if r.Path == "" {
			return "", false
		}
		if r.Query == "" {
			return r.Path, true
		}
		return r.Path + "?" + r.Query, true
	}
	vs := r.Header[m.key]
	switch len(vs) {
	case 0:
		return "", false
	case 1:
		return vs[0], true
	}
	return strings.Join(vs, ","), true
}

// match follows Envoy's HeaderUtility: present_match compares presence
// (treat_missing_header_as_empty makes a missing header present, with an
// empty value); any other matcher fails on a missing header, inverted or
// not, unless treat_missing_header_as_empty, and is inverted otherwise.
func (m *headerMatcher) match(r *Request) bool {
	v, ok := m.value(r)
	if !ok && m.missingAsEmpty {
		v, ok = "", true
	}
	if m.kind == hdrPresent {
		return (m.present == ok) != m.invert
	}
	if !ok {
		return false
	}
	var matched bool
	switch m.kind {
	case hdrString:
		matched = m.s.Match(v)
	case hdrRange:
		n, ok := parseInt64(v)
		matched = ok && m.start <= n && n < m.end
	}
	return matched != m.invert
}

// parseInt64 parses an optional sign and decimal digits, the whole string,
// without allocating (strconv allocates its error).
func parseInt64(s string) (int64, bool) {
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "" {
		return 0, false
	}
	const limit = 1 << 63 // magnitude of math.MinInt64
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' || n > (limit-uint64(c-'0'))/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if neg {
		return -int64(n), true // n == limit wraps to math.MinInt64, as wanted
	}
	if n == limit {
		return 0, false
	}
	return int64(n), true
}

// metadata and sourced_metadata: a value in Request.JWTMetadata.
type metadataMatcher struct {
	path   []string
	value  *valueMatcher
	invert bool
}

func (m *metadataMatcher) match(r *Request) bool {
	var v any
	set := true
	cur := r.JWTMetadata
	for i, k := range m.path {
		v, set = cur[k]
		if !set {
			break
		}
		if i < len(m.path)-1 {
			next, ok := v.(map[string]any)
			if !ok {
				v, set = nil, false
				break
			}
			cur = next
		}
	}
	return m.value.match(v, set) != m.invert
}

// Value matchers (envoy.type.matcher.v3.ValueMatcher).
const (
	valNull = iota
	valDouble
	valString
	valBool
	valPresent
	valList
	valOr
)

type valueMatcher struct {
	kind       uint8
	b          bool // bool_match, present_match
	s          match.String
	exact      float64
	start, end float64
	isRange    bool
	oneOf      *valueMatcher
	or         []*valueMatcher
}

// match matches a value; set is false when the path led nowhere (Envoy's
// KIND_NOT_SET). A map is a Struct, which only present_match matches.
func (m *valueMatcher) match(v any, set bool) bool {
	if !set {
		return false // even present_match; null_match needs an explicit null
	}
	switch m.kind {
	case valNull:
		return v == nil
	case valDouble:
		f, ok := number(v)
		if !ok {
			return false
		}
		if m.isRange {
			return m.start <= f && f < m.end
		}
		return f == m.exact
	case valString:
		s, ok := v.(string)
		return ok && m.s.Match(s)
	case valBool:
		b, ok := v.(bool)
		return ok && b == m.b
	case valPresent:
		return m.b
	case valList:
		switch l := v.(type) {
		case []any:
			for _, e := range l {
				if m.oneOf.match(e, true) {
					return true
				}
			}
		case []string:
			for _, e := range l {
				if m.oneOf.matchString(e) {
					return true
				}
			}
		}
		return false
	case valOr:
		for _, o := range m.or {
			if o.match(v, set) {
				return true
			}
		}
	}
	return false
}

// matchString is match for a string value, without converting it to an
// interface (which would allocate).
func (m *valueMatcher) matchString(s string) bool {
	switch m.kind {
	case valString:
		return m.s.Match(s)
	case valPresent:
		return m.b
	case valOr:
		for _, o := range m.or {
			if o.matchString(s) {
				return true
			}
		}
	}
	return false
}

// number converts the numeric types a claims map may hold to a double, the
// only number a protobuf Value has.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int8:
		return float64(n), true
	case int16:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint:
		return float64(n), true
	case uint8:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint64:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}
