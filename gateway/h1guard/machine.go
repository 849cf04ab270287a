package h1guard

import "math"

// state is the position of the scanner inside an HTTP/1.1 request. The
// head states come first so that headOpen is one comparison.
type state uint8

const (
	stStart       state = iota // before the first byte of a request
	stLeadLF                   // after the CR of an allowed leading empty line
	stMethodStart              // after an allowed leading empty line
	stMethod
	stTargetStart
	stTarget
	stPct1 // after "%" in the path of the request-target
	stPct2
	stVersion
	stReqLF
	stPreface // after "PRI * HTTP/2.0\r\n", matching the rest of the preface
	stFieldStart
	stName
	stValue
	stFieldLF
	stHeadLF // after the CR of the empty line that ends a section
	stBodyFixed
	stChunkSizeStart
	stChunkSize
	stExtNameStart
	stExtName
	stExtValStart
	stExtToken
	stExtQuoted
	stExtQuotedPair
	stExtQuotedEnd
	stChunkLF
	stChunkData
	stChunkDataCR
	stChunkDataLF
	stPass   // HTTP/2 preface seen: not HTTP/1.1 any more
	stFailed // a violation was found; the scanner accepts no more input
)

// event tells the guard why scan stopped before the end of its input.
type event uint8

const (
	evNone     event = iota // all input consumed
	evHeadDone              // a request head is complete and valid
	evMsgDone               // a request message (head and content) is complete
	evPreface               // the HTTP/2 connection preface was matched
	evError                 // a violation; status and reason say which
)

type fieldKind uint8

const (
	kindOther fieldKind = iota
	kindCL
	kindTE
	kindHost
	kindUpgrade
)

// Sub-states of a Content-Length or Transfer-Encoding value.
const (
	vLead  = iota // leading OWS
	vBody         // the value itself
	vTrail        // trailing OWS
)

// maxChunkExt bounds the chunk-ext of one chunk line, so that the line stays
// well under the 4 KiB that net/http's chunked reader accepts.
const maxChunkExt = 1024

// prefaceTail is what follows "PRI * HTTP/2.0\r\n" in the HTTP/2 connection
// preface (RFC 9113 §3.4).
const prefaceTail = "\r\nSM\r\n\r\n"

// machine is the incremental request scanner. It never looks back at bytes
// it has consumed: what it needs later (method, field names) it copies into
// small fixed arrays, so it works across reads of any size and allocates
// nothing.
type machine struct {
	maxHead   int64
	maxFields int

	st          state
	pos         int64 // absolute offset of the next byte to scan
	msgStart    int64 // absolute offset of the current request's first byte
	sectStart   int64 // start of the current header or trailer section
	msgs        int   // requests started on this connection
	trailer     bool  // the field states scan a trailer section
	fields      int
	prevPOST    bool // the previous request was a POST: one leading CRLF is allowed
	pendingDone bool // evMsgDone is owed for a request without content

	method    [8]byte
	methodLen int
	targetLen int
	target0   byte
	inQuery   bool
	scheme    uint8 // 0 start, 1 in scheme, 2 scheme ":" seen, 3 not a scheme
	version   [8]byte
	verLen    int
	http10    bool
	pri       bool
	prefIdx   int

	name    [17]byte // lower-cased prefix of the field-name; len("transfer-encoding") == 17
	nameLen int
	kind    fieldKind
	vst     uint8
	digits  int
	val     int64
	teIdx   int

	clSeen    bool
	clVal     int64
	clDigits  int
	teCount   int
	hostCount int
	upgrade   bool

	// Set by evHeadDone for the guard.
	headStart int64
	candidate bool // Upgrade field or CONNECT: the connection may switch protocols
	connect   bool

	remaining   uint64 // content or chunk-data bytes still to come
	chunkDigits int
	extLen      int

	status int
	reason string
}

func newMachine(maxHead int64, maxFields int) machine {
	return machine{maxHead: maxHead, maxFields: maxFields}
}

// headOpen reports whether the scanner is inside a request head, whose bytes
// must not be released before the head is complete and valid.
func (m *machine) headOpen() bool { return m.st <= stHeadLF && !m.trailer }

// scan consumes a prefix of b, which continues the stream at m.pos. It
// returns how many bytes it consumed and why it stopped: evNone means all of
// b was consumed. After evError or evPreface it must not be called again.
func (m *machine) scan(b []byte) (int, event) {
	n, ev := m.run(b)
	m.pos += int64(n)
	return n, ev
}

func (m *machine) fail(status int, reason string) event {
	m.st = stFailed
	m.status, m.reason = status, reason
	return evError
}

func (m *machine) methodIs(s string) bool {
	return m.methodLen == len(s) && string(m.method[:m.methodLen]) == s
}

func (m *machine) nameIs(s string) bool {
	return m.nameLen == len(s) && string(m.name[:m.nameLen]) == s
}

func (m *machine) beginRequest(at int64) {
	m.msgStart, m.sectStart = at, at
	m.msgs++
	m.trailer = false
	m.fields = 0
	m.methodLen = 0
	m.http10, m.pri = false, false
	m.clSeen, m.teCount, m.hostCount, m.upgrade = false, 0, 0, false
}

func (m *machine) endRequest(end int64) {
	m.st = stStart
	m.msgStart = end
	m.trailer = false
}

// tooBig reports whether a section that ends at absolute offset end exceeds
// the limit.
func (m *machine) tooBig(end int64) bool { return end-m.sectStart > m.maxHead }

func (m *machine) sectionTooBig() event {
	if m.trailer {
		return m.fail(431, "trailer section too large")
	}
	return m.fail(431, "header section too large")
}

func (m *machine) run(b []byte) (int, event) {
	if m.pendingDone {
		m.pendingDone = false
		return 0, evMsgDone
	}
	i := 0
	for i < len(b) {
		c := b[i]
		switch m.st {
		case stStart:
			m.beginRequest(m.pos + int64(i))
			if c == '\r' && m.prevPOST {
				// RFC 9112 §2.2: a server SHOULD ignore at least one empty
				// line before the request-line. net/http skips it only after
				// a POST, so that is the only place it is accepted here.
				m.st = stLeadLF
				i++
				continue
			}
			m.st = stMethodStart
		case stLeadLF:
			if c != '\n' {
				return i, m.fail(400, "bare CR")
			}
			m.st = stMethodStart
			i++
		case stMethodStart:
			if !isTchar(c) {
				if c == '\r' || c == '\n' {
					return i, m.fail(400, "empty line before request-line")
				}
				return i, m.fail(400, "invalid method")
			}
			m.st = stMethod
		case stMethod:
			if isTchar(c) {
				if m.methodLen < len(m.method) {
					m.method[m.methodLen] = c
				}
				m.methodLen++
				i++
				continue
			}
			if c != ' ' {
				return i, m.fail(400, "invalid method")
			}
			m.st = stTargetStart
			i++
		case stTargetStart:
			if class[c]&cTarget == 0 {
				return i, m.fail(400, "invalid request-target")
			}
			m.targetLen, m.target0, m.inQuery, m.scheme = 0, c, false, 0
			m.st = stTarget
		case stTarget:
			if c == ' ' {
				if ev := m.endTarget(); ev != evNone {
					return i, ev
				}
				m.verLen = 0
				m.st = stVersion
				i++
				continue
			}
			if class[c]&cTarget == 0 {
				return i, m.fail(400, "invalid request-target")
			}
			m.targetLen++
			switch m.scheme {
			case 0:
				if 'a' <= lower(c) && lower(c) <= 'z' {
					m.scheme = 1
				} else {
					m.scheme = 3
				}
			case 1:
				if c == ':' {
					m.scheme = 2
				} else if class[c]&cScheme == 0 {
					m.scheme = 3
				}
			}
			switch {
			case c == '?':
				m.inQuery = true
			case c == '%' && !m.inQuery:
				// url.ParseRequestURI, behind net/http, rejects a bad
				// escape in the path (RFC 3986 §2.1); the query it keeps raw.
				m.st = stPct1
			}
			i++
		case stPct1, stPct2:
			if class[c]&cHex == 0 {
				return i, m.fail(400, "invalid percent-encoding in request-target")
			}
			m.targetLen++
			if m.st == stPct1 {
				m.st = stPct2
			} else {
				m.st = stTarget
			}
			i++
		case stVersion:
			if c == '\r' {
				if m.tooBig(m.pos + int64(i) + 2) {
					return i, m.sectionTooBig()
				}
				if ev := m.endVersion(); ev != evNone {
					return i, ev
				}
				m.st = stReqLF
				i++
				continue
			}
			if c == '\n' {
				return i, m.fail(400, "bare LF")
			}
			if class[c]&cVersion == 0 || m.verLen == len(m.version) {
				return i, m.fail(400, "malformed HTTP-version")
			}
			m.version[m.verLen] = c
			m.verLen++
			i++
		case stReqLF:
			if c != '\n' {
				return i, m.fail(400, "bare CR")
			}
			i++
			if m.pri {
				m.prefIdx = 0
				m.st = stPreface
				continue
			}
			m.st = stFieldStart
		case stPreface:
			if c != prefaceTail[m.prefIdx] {
				return i, m.fail(400, "malformed HTTP/2 connection preface")
			}
			m.prefIdx++
			i++
			if m.prefIdx == len(prefaceTail) {
				m.st = stPass
				return i, evPreface
			}
		case stFieldStart:
			switch {
			case c == '\r':
				m.st = stHeadLF
				i++
				continue
			case c == ' ' || c == '\t':
				// RFC 9112 §5.2 (obs-fold) and §2.2 (whitespace between
				// the start-line and the first field).
				return i, m.fail(400, "obs-fold")
			case c == '\n':
				return i, m.fail(400, "bare LF")
			case !isTchar(c):
				return i, m.fail(400, "invalid field-name")
			}
			m.fields++
			if m.fields > m.maxFields {
				if m.trailer {
					return i, m.fail(431, "too many trailer fields")
				}
				return i, m.fail(431, "too many header fields")
			}
			m.nameLen = 0
			m.st = stName
		case stName:
			for i < len(b) && isTchar(b[i]) {
				if m.nameLen < len(m.name) {
					m.name[m.nameLen] = lower(b[i])
				}
				m.nameLen++
				i++
			}
			if i == len(b) {
				continue
			}
			switch c = b[i]; c {
			case ':':
				if ev := m.startValue(); ev != evNone {
					return i, ev
				}
				m.st = stValue
				i++
			case ' ', '\t':
				// RFC 9112 §5.1: no whitespace between field-name and colon.
				return i, m.fail(400, "whitespace before colon")
			default:
				return i, m.fail(400, "invalid field-name")
			}
		case stValue:
			if m.kind == kindCL || m.kind == kindTE {
				if class[c]&cValue != 0 {
					if ev := m.specialByte(c); ev != evNone {
						return i, ev
					}
					i++
					continue
				}
			} else {
				for i < len(b) && class[b[i]]&cValue != 0 {
					i++
				}
				if i == len(b) {
					continue
				}
				c = b[i]
			}
			switch c {
			case '\r':
				if m.tooBig(m.pos + int64(i) + 2) {
					return i, m.sectionTooBig()
				}
				m.st = stFieldLF
				i++
			case '\n':
				return i, m.fail(400, "bare LF")
			case 0:
				return i, m.fail(400, "NUL in field value")
			default:
				return i, m.fail(400, "control character in field value")
			}
		case stFieldLF:
			if c != '\n' {
				return i, m.fail(400, "bare CR")
			}
			if ev := m.endField(); ev != evNone {
				return i, ev
			}
			m.st = stFieldStart
			i++
		case stHeadLF:
			if c != '\n' {
				return i, m.fail(400, "bare CR")
			}
			end := m.pos + int64(i) + 1
			if m.tooBig(end) {
				return i, m.sectionTooBig()
			}
			i++
			if m.trailer {
				m.endRequest(end)
				return i, evMsgDone
			}
			return i, m.headDone(end)
		case stBodyFixed:
			k := len(b) - i
			if uint64(k) > m.remaining {
				k = int(m.remaining)
			}
			i += k
			m.remaining -= uint64(k)
			if m.remaining == 0 {
				m.endRequest(m.pos + int64(i))
				return i, evMsgDone
			}
		case stChunkSizeStart:
			if class[c]&cHex == 0 {
				return i, m.fail(400, "invalid chunk-size")
			}
			m.chunkDigits, m.remaining = 0, 0
			m.st = stChunkSize
		case stChunkSize:
			switch {
			case class[c]&cHex != 0:
				// RFC 9112 §7.1: chunk-size is 1*HEXDIG. Sixteen digits
				// fill a uint64, and net/http refuses more.
				m.chunkDigits++
				if m.chunkDigits > 16 {
					return i, m.fail(400, "chunk-size too long")
				}
				m.remaining = m.remaining<<4 | hexVal(c)
			case c == ';':
				m.extLen = 0
				m.st = stExtNameStart
			case c == '\r':
				m.st = stChunkLF
			default:
				return i, m.fail(400, "invalid chunk-size")
			}
			i++
		case stExtNameStart, stExtName, stExtValStart, stExtToken, stExtQuoted, stExtQuotedPair, stExtQuotedEnd:
			if ev := m.extByte(c); ev != evNone {
				return i, ev
			}
			i++
		case stChunkLF:
			if c != '\n' {
				return i, m.fail(400, "bare CR")
			}
			i++
			if m.remaining == 0 {
				// last-chunk: a trailer section follows (RFC 9112 §7.1.2).
				m.trailer = true
				m.sectStart = m.pos + int64(i)
				m.fields = 0
				m.st = stFieldStart
				continue
			}
			m.st = stChunkData
		case stChunkData:
			k := len(b) - i
			if uint64(k) > m.remaining {
				k = int(m.remaining)
			}
			i += k
			m.remaining -= uint64(k)
			if m.remaining == 0 {
				m.st = stChunkDataCR
			}
		case stChunkDataCR, stChunkDataLF:
			want := byte('\r')
			if m.st == stChunkDataLF {
				want = '\n'
			}
			if c != want {
				return i, m.fail(400, "chunk-data not followed by CRLF")
			}
			if m.st == stChunkDataCR {
				m.st = stChunkDataLF
			} else {
				m.st = stChunkSizeStart
			}
			i++
		case stPass:
			return len(b), evNone
		default: // stFailed
			return i, evError
		}
	}
	return i, evNone
}

// endTarget checks the form of the request-target (RFC 9112 §3.2).
func (m *machine) endTarget() event {
	switch {
	case m.targetLen == 1 && m.target0 == '*':
		// asterisk-form is only for OPTIONS (§3.2.4); PRI is the HTTP/2
		// preface, checked with the version.
		if !m.methodIs("OPTIONS") && !m.methodIs("PRI") {
			return m.fail(400, "asterisk-form request-target")
		}
	case m.target0 == '/': // origin-form
	case m.methodIs("CONNECT"): // authority-form, parsed by net/http
	case m.scheme == 2: // absolute-form
	default:
		return m.fail(400, "invalid request-target")
	}
	return evNone
}

// endVersion checks HTTP-version (RFC 9112 §2.3): only HTTP/1.1 and
// HTTP/1.0, and HTTP/2.0 in the connection preface.
func (m *machine) endVersion() event {
	v := m.version[:m.verLen]
	switch {
	case string(v) == "HTTP/1.1":
	case string(v) == "HTTP/1.0":
		m.http10 = true
	case string(v) == "HTTP/2.0" && m.methodIs("PRI") && m.targetLen == 1 && m.target0 == '*' &&
		m.msgs == 1 && m.msgStart == 0:
		m.pri = true
	case len(v) == 8 && string(v[:5]) == "HTTP/" && isDigit(v[5]) && v[6] == '.' && isDigit(v[7]):
		return m.fail(505, "unsupported HTTP version")
	default:
		return m.fail(400, "malformed HTTP-version")
	}
	return evNone
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// startValue classifies the field whose name just ended.
func (m *machine) startValue() event {
	m.kind = kindOther
	m.vst, m.digits, m.val, m.teIdx = vLead, 0, 0, 0
	if m.trailer {
		return evNone
	}
	switch {
	case m.nameIs("content-length"):
		m.kind = kindCL
	case m.nameIs("transfer-encoding"):
		m.kind = kindTE
		m.teCount++
		if m.teCount > 1 {
			return m.fail(400, "multiple Transfer-Encoding fields")
		}
	case m.nameIs("host"):
		m.kind = kindHost
		m.hostCount++
	case m.nameIs("upgrade"):
		m.kind = kindUpgrade
		m.upgrade = true
	}
	return evNone
}

// specialByte scans one byte of a Content-Length or Transfer-Encoding value.
// c is already known to be a valid field-value byte.
func (m *machine) specialByte(c byte) event {
	ows := c == ' ' || c == '\t'
	if m.kind == kindCL {
		// RFC 9112 §6.3 and RFC 9110 §8.6: Content-Length = 1*DIGIT.
		// A list ("5, 5"), a sign or inner space is an error here:
		// net/http rejects lists as well, so accepting one would only
		// move the rejection.
		switch m.vst {
		case vLead:
			if ows {
				return evNone
			}
			m.vst = vBody
			fallthrough
		case vBody:
			if isDigit(c) {
				d := int64(c - '0')
				if m.val > (math.MaxInt64-d)/10 {
					return m.fail(400, "Content-Length overflows int64")
				}
				m.val = m.val*10 + d
				m.digits++
				return evNone
			}
			if ows && m.digits > 0 {
				m.vst = vTrail
				return evNone
			}
		case vTrail:
			if ows {
				return evNone
			}
		}
		return m.fail(400, "invalid Content-Length")
	}
	// Transfer-Encoding: exactly "chunked", case-insensitive (RFC 9112
	// §6.1, §7), with optional SP around it. HTAB is refused: front-ends
	// disagree on whether it is whitespace or part of the coding.
	if c == '\t' {
		return m.fail(400, "HTAB in Transfer-Encoding")
	}
	switch m.vst {
	case vLead:
		if c == ' ' {
			return evNone
		}
		m.vst = vBody
		fallthrough
	case vBody:
		if m.teIdx < len("chunked") && lower(c) == "chunked"[m.teIdx] {
			m.teIdx++
			return evNone
		}
		if c == ' ' && m.teIdx == len("chunked") {
			m.vst = vTrail
			return evNone
		}
	case vTrail:
		if c == ' ' {
			return evNone
		}
	}
	return m.fail(400, "unsupported Transfer-Encoding")
}

// endField finishes a field line whose CRLF was just read.
func (m *machine) endField() event {
	switch m.kind {
	case kindCL:
		if m.digits == 0 {
			return m.fail(400, "invalid Content-Length")
		}
		if m.clSeen {
			// RFC 9112 §6.3 allows repeated identical values. net/http
			// compares the strings, so leading zeros make them differ.
			if m.val != m.clVal || m.digits != m.clDigits {
				return m.fail(400, "conflicting Content-Length fields")
			}
			return evNone
		}
		m.clSeen, m.clVal, m.clDigits = true, m.val, m.digits
	case kindTE:
		if m.teIdx != len("chunked") {
			return m.fail(400, "unsupported Transfer-Encoding")
		}
	}
	return evNone
}

// headDone applies the framing rules of RFC 9112 §6 to a complete head
// ending at absolute offset end, and sets up the scan of its content.
func (m *machine) headDone(end int64) event {
	connect := m.methodIs("CONNECT")
	switch {
	case m.teCount > 0 && m.http10:
		// net/http ignores Transfer-Encoding in HTTP/1.0 (Go issue 12785)
		// and RFC 9112 §6.1 makes the framing faulty: refuse it.
		return m.fail(400, "Transfer-Encoding in HTTP/1.0 request")
	case m.teCount > 0 && m.clSeen:
		// RFC 9112 §6.1, §11.2: net/http would drop Content-Length and go
		// on; an intermediary in front of it may have used it.
		return m.fail(400, "Content-Length with Transfer-Encoding")
	case m.hostCount > 1:
		return m.fail(400, "multiple Host fields")
	case m.hostCount == 0 && !m.http10 && !connect:
		// RFC 9112 §3.2; net/http exempts CONNECT, and so does this.
		return m.fail(400, "missing Host field")
	case connect && (m.teCount > 0 || m.clSeen && m.clVal > 0):
		// RFC 9110 §9.3.6: a CONNECT request has no content.
		return m.fail(400, "CONNECT request with content")
	}
	m.prevPOST = m.methodIs("POST")
	m.headStart = m.msgStart
	m.candidate = m.upgrade || connect
	m.connect = connect
	switch {
	case m.teCount > 0:
		m.st = stChunkSizeStart
	case m.clSeen && m.clVal > 0:
		m.st = stBodyFixed
		m.remaining = uint64(m.clVal)
	default:
		// RFC 9112 §6.3 rule 6: a request without framing fields has no
		// content.
		m.endRequest(end)
		m.pendingDone = true
	}
	return evHeadDone
}

// extByte scans one byte of a chunk-ext (RFC 9112 §7.1.1). BWS, which the
// RFC tolerates around ";" and "=", is refused: net/http refuses it before
// the first ";" anyway, and no client sends it.
func (m *machine) extByte(c byte) event {
	if c != '\r' {
		m.extLen++
		if m.extLen > maxChunkExt {
			return m.fail(400, "chunk-ext too long")
		}
	}
	switch m.st {
	case stExtNameStart:
		if isTchar(c) {
			m.st = stExtName
			return evNone
		}
	case stExtName, stExtToken, stExtQuotedEnd:
		switch {
		case isTchar(c) && m.st != stExtQuotedEnd:
			return evNone
		case c == '=' && m.st == stExtName:
			m.st = stExtValStart
			return evNone
		case c == ';':
			m.st = stExtNameStart
			return evNone
		case c == '\r':
			m.st = stChunkLF
			return evNone
		}
	case stExtValStart:
		switch {
		case c == '"':
			m.st = stExtQuoted
			return evNone
		case isTchar(c):
			m.st = stExtToken
			return evNone
		}
	case stExtQuoted:
		switch {
		case c == '"':
			m.st = stExtQuotedEnd
			return evNone
		case c == '\\':
			m.st = stExtQuotedPair
			return evNone
		case class[c]&cQdtext != 0:
			return evNone
		}
	case stExtQuotedPair:
		if class[c]&cValue != 0 {
			m.st = stExtQuoted
			return evNone
		}
	}
	return m.fail(400, "invalid chunk-ext")
}
