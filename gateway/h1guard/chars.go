package h1guard

// Byte classes of RFC 9110 §5.6 and RFC 9112, as lookup tables so that the
// scanner spends one load per byte.
const (
	cTchar   = 1 << iota // tchar (RFC 9110 §5.6.2)
	cValue               // field-vchar / SP / HTAB (RFC 9110 §5.5), obs-text included
	cTarget              // VCHAR except "#": request-target bytes (RFC 9112 §3.2)
	cHex                 // HEXDIG
	cQdtext              // qdtext (RFC 9110 §5.6.4)
	cScheme              // ALPHA / DIGIT / "+" / "-" / "." (RFC 3986 §3.1)
	cVersion             // bytes of an HTTP-version token
)

var class = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		alpha := 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z'
		digit := '0' <= b && b <= '9'
		vchar := 0x21 <= b && b <= 0x7e
		if alpha || digit {
			t[c] |= cTchar | cScheme
		}
		switch b {
		case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
			t[c] |= cTchar
		}
		switch b {
		case '+', '-', '.':
			t[c] |= cScheme
		}
		if vchar || b >= 0x80 || b == ' ' || b == '\t' {
			t[c] |= cValue
		}
		if vchar && b != '#' {
			t[c] |= cTarget
		}
		if digit || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F' {
			t[c] |= cHex
		}
		if b == '\t' || b == ' ' || b == 0x21 || 0x23 <= b && b <= 0x5b || 0x5d <= b && b <= 0x7e || b >= 0x80 {
			t[c] |= cQdtext
		}
		if vchar {
			t[c] |= cVersion
		}
	}
	return t
}()

func isTchar(b byte) bool { return class[b]&cTchar != 0 }

func hexVal(b byte) uint64 {
	switch {
	case b <= '9':
		return uint64(b - '0')
	case b >= 'a':
		return uint64(b - 'a' + 10)
	default:
		return uint64(b - 'A' + 10)
	}
}

func lower(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + ('a' - 'A')
	}
	return b
}
