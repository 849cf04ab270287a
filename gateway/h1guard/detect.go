package h1guard

// Decisions about a protocol switch, published by Write and consumed by Read.
const (
	decNone int32 = iota
	decPass
	decRefused
)

// detector reads the status line of the response to an Upgrade or CONNECT
// request from the bytes the server writes. Interim 1xx responses are skipped
// (RFC 9110 §15.2); the first final status decides: 101 switches protocols
// for an Upgrade (RFC 9110 §7.8), 2xx opens the tunnel for a CONNECT (RFC 9110
// §9.3.6), anything else (or anything that is not a status line) keeps the
// connection in HTTP/1.1 and under validation.
type detector struct {
	connect  bool
	skipping bool // inside an interim response head, looking for CRLFCRLF
	crlf     int
	n        int
	line     [len("HTTP/1.1 200")]byte
}

// feed scans written bytes and returns a decision once it has one.
func (d *detector) feed(p []byte) int32 {
	for _, c := range p {
		if d.skipping {
			switch c {
			case "\r\n\r\n"[d.crlf]:
				d.crlf++
				if d.crlf == 4 {
					d.skipping, d.n = false, 0
				}
			case '\r':
				d.crlf = 1
			default:
				d.crlf = 0
			}
			continue
		}
		d.line[d.n] = c
		d.n++
		if d.n < len(d.line) {
			continue
		}
		l := d.line
		if string(l[:7]) != "HTTP/1." || !isDigit(l[7]) || l[8] != ' ' ||
			!isDigit(l[9]) || !isDigit(l[10]) || !isDigit(l[11]) {
			return decRefused
		}
		code := int(l[9]-'0')*100 + int(l[10]-'0')*10 + int(l[11]-'0')
		switch {
		case code == 101 && !d.connect:
			return decPass
		case code >= 100 && code < 200 && code != 101:
			// The status line's own CRLF starts the terminator match.
			d.skipping, d.crlf = true, 0
		case code >= 200 && code < 300 && d.connect:
			return decPass
		default:
			return decRefused
		}
	}
	return decNone
}
