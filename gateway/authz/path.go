package authz

import (
	"errors"
	"fmt"
	"strings"
)

// EscapedSlashes is what NormalizePath does with an encoded slash or
// backslash (%2F, %5C, either case): Envoy's path_with_escaped_slashes_action.
type EscapedSlashes uint8

const (
	// RejectEscapedSlashes fails the path with ErrEscapedSlash (the caller
	// answers 400). It is the default, because an upstream that decodes %2F
	// after the proxy matched the path would see a different path.
	RejectEscapedSlashes EscapedSlashes = iota

	// KeepEscapedSlashes keeps them encoded (upper-case hex): they are part
	// of a segment, never a separator, for matching and for the upstream.
	KeepEscapedSlashes
)

// NormalizeOptions configure NormalizePath. The zero value is the safe
// default.
type NormalizeOptions struct {
	// EscapedSlashes is the action on %2F and %5C. Any value other than
	// KeepEscapedSlashes rejects them.
	EscapedSlashes EscapedSlashes
}

// Errors of NormalizePath. Each wraps ErrInvalidPath; the caller answers
// 400 Bad Request to any of them and forwards nothing.
var (
	ErrInvalidPath   = errors.New("invalid request path")
	ErrControlChar   = fmt.Errorf("%w: control character", ErrInvalidPath)
	ErrEncodedNUL    = fmt.Errorf("%w: encoded NUL (%%00)", ErrInvalidPath)
	ErrBadEscape     = fmt.Errorf("%w: '%%' not followed by two hex digits", ErrInvalidPath)
	ErrEscapedSlash  = fmt.Errorf("%w: encoded slash or backslash", ErrInvalidPath)
	ErrNotOriginForm = fmt.Errorf("%w: path does not start with '/'", ErrInvalidPath)
)

// NormalizePath returns the canonical form of a request path (the
// request-target of an origin-form request, or the :path pseudo-header),
// which is what the proxy matches routes and authorization rules against
// and what it forwards. It is Envoy's normalize_path, merge_slashes and
// path_with_escaped_slashes_action together:
//
//  1. "*" (an OPTIONS request for the server) is returned unchanged.
//  2. A control character (0x00–0x1F, 0x7F) anywhere in raw is an error.
//  3. The query and fragment are cut off (at the first '?' or '#').
//  4. Each %XX escape is decoded once if XX is an unreserved character
//     (RFC 3986 §2.3: ALPHA DIGIT - . _ ~); %00 is an error; %2F and %5C
//     follow opts.EscapedSlashes; every other escape is kept with
//     upper-case hex. A '%' without two hex digits is an error.
//  5. A backslash becomes a slash. Bytes that RFC 3986 does not allow in a
//     path (space, '"', '<', '>', '[', ']', '^', '`', '{', '|', '}' and
//     non-ASCII bytes) are percent-encoded, so that each path has one
//     spelling.
//  6. The result must start with '/'.
//  7. Dot segments are removed (RFC 3986 §5.2.4), including those that
//     were encoded ("/%2e%2e/" is ".."), then runs of slashes are merged.
//
// Letter case is preserved: matchers decide whether it matters. The result
// never contains "//", a "." or ".." segment, a backslash or a control
// character, and NormalizePath(result) == result. A path that is already
// canonical is returned without allocating.
func NormalizePath(raw string, opts NormalizeOptions) (string, error) {
	if raw == "*" {
		return raw, nil
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c < 0x20 || c == 0x7f {
			return "", ErrControlChar
		}
	}
	p := raw
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	keep := opts.EscapedSlashes == KeepEscapedSlashes
	if isCanonical(p, keep) {
		return p, nil
	}
	b, err := decodePath(p, keep)
	if err != nil {
		return "", err
	}
	if len(b) == 0 || b[0] != '/' {
		return "", ErrNotOriginForm
	}
	b = removeDotSegments(b)
	b = mergeSlashes(b)
	return string(b), nil
}

// Byte classes of a path.
const (
	clsEscape     = iota // not allowed literally: percent-encode
	clsUnreserved        // RFC 3986 unreserved: literal, and decoded when escaped
	clsLiteral           // sub-delims, ':', '@', '/': literal, and kept encoded when escaped
	clsControl           // rejected
	clsPercent
	clsBackslash
)

var pathClass = func() (t [256]uint8) {
	for c := 0; c < 0x20; c++ {
		t[c] = clsControl
	}
	t[0x7f] = clsControl
	for c := 'a'; c <= 'z'; c++ {
		t[c] = clsUnreserved
		t[c-'a'+'A'] = clsUnreserved
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = clsUnreserved
	}
	for _, c := range "-._~" {
		t[c] = clsUnreserved
	}
	for _, c := range "!$&'()*+,;=:@/" {
		t[c] = clsLiteral
	}
	t['%'] = clsPercent
	t['\\'] = clsBackslash
	return t
}()

const upperHex = "0123456789ABCDEF"

// unhex returns the value of an upper- or lower-case hex digit, or -1.
func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}

// isCanonical reports whether NormalizePath would return p unchanged. It
// is the allocation-free fast path; anything doubtful returns false and
// takes the full path.
func isCanonical(p string, keep bool) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		switch pathClass[p[i]] {
		case clsUnreserved:
		case clsLiteral:
			if p[i] == '/' {
				rest := p[i+1:]
				if strings.HasPrefix(rest, "/") || isDotSegment(rest) {
					return false
				}
			}
		case clsPercent:
			if i+2 >= len(p) || !isUpperHex(p[i+1]) || !isUpperHex(p[i+2]) {
				return false
			}
			v := byte(unhex(p[i+1])<<4 | unhex(p[i+2]))
			if v == 0 || pathClass[v] == clsUnreserved || (!keep && (v == '/' || v == '\\')) {
				return false
			}
			i += 2
		default:
			return false
		}
	}
	return true
}

func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

// isDotSegment reports whether rest, the text after a '/', starts with a
// "." or ".." segment.
func isDotSegment(rest string) bool {
	seg := rest
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		seg = rest[:i]
	}
	return seg == "." || seg == ".."
}

// decodePath does steps 4 and 5 of NormalizePath on p, which has no
// control characters.
func decodePath(p string, keep bool) ([]byte, error) {
	b := make([]byte, 0, len(p)+8)
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch pathClass[c] {
		case clsUnreserved, clsLiteral:
			b = append(b, c)
		case clsBackslash:
			b = append(b, '/')
		case clsPercent:
			if i+2 >= len(p) {
				return nil, ErrBadEscape
			}
			hi, lo := unhex(p[i+1]), unhex(p[i+2])
			if hi < 0 || lo < 0 {
				return nil, ErrBadEscape
			}
			v := byte(hi<<4 | lo)
			switch {
			case v == 0:
				return nil, ErrEncodedNUL
			case (v == '/' || v == '\\') && !keep:
				return nil, ErrEscapedSlash
			case pathClass[v] == clsUnreserved:
				b = append(b, v)
			default:
				b = append(b, '%', upperHex[v>>4], upperHex[v&0xf])
			}
			i += 2
		default: // clsEscape; clsControl was rejected by the caller
			b = append(b, '%', upperHex[c>>4], upperHex[c&0xf])
		}
	}
	return b, nil
}

// removeDotSegments is RFC 3986 §5.2.4 for an absolute path (b[0] == '/'),
// in place. The write position never passes the read position, so the
// segments it keeps can be moved down within b.
func removeDotSegments(b []byte) []byte {
	w := 0
	for r := 0; r < len(b); {
		end := r + 1
		for end < len(b) && b[end] != '/' {
			end++
		}
		seg := b[r+1 : end]
		last := end == len(b)
		switch {
		case len(seg) == 1 && seg[0] == '.':
			if last {
				b[w] = '/'
				w++
			}
		case len(seg) == 2 && seg[0] == '.' && seg[1] == '.':
			// Drop the last output segment (and its '/').
			for w > 0 {
				w--
				if b[w] == '/' {
					break
				}
			}
			if last {
				b[w] = '/'
				w++
			}
		default:
			b[w] = '/'
			w++
			w += copy(b[w:], seg)
		}
		r = end
	}
	return b[:w]
}

// mergeSlashes replaces each run of slashes in b with one, in place.
func mergeSlashes(b []byte) []byte {
	w := 0
	for r := 0; r < len(b); r++ {
		if b[r] == '/' && w > 0 && b[w-1] == '/' {
			continue
		}
		b[w] = b[r]
		w++
	}
	return b[:w]
}
