package h1guard

import (
	"errors"
	"strings"
	"testing"
)

const okReq = "GET /ok HTTP/1.1\r\nHost: a\r\n\r\n"

// TestScan drives the guard over an in-memory connection, with the input cut
// into pieces of several sizes and read with several buffer sizes, and checks
// what it delivers: a valid stream entirely, an invalid one up to the end of
// the last valid request before the violation, with the expected status and
// reason.
func TestScan(t *testing.T) {
	tests := map[string]struct {
		in         string
		wantStatus int // 0: the whole input is valid
		wantReason string
		// inBody: the violation is in the content, so the bad request's
		// head may already have been delivered when the input trickles.
		inBody bool
		// upgrade: an Upgrade/CONNECT request, which is never released to
		// one-byte reads (they are net/http's background reads).
		upgrade bool
	}{
		"get":               {in: okReq},
		"pipelined":         {in: okReq + okReq + okReq},
		"post cl":           {in: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" + okReq},
		"cl zero":           {in: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n" + okReq},
		"cl ows":            {in: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: \t5 \r\n\r\nhello"},
		"cl identical dups": {in: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 5 \r\n\r\nhello"},
		"chunked": {in: "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"5;a=b;c;d=\"x \\\" y\"\r\nhello\r\nA\r\n0123456789\r\n0;last\r\nX-T: v\r\nY-T:\r\n\r\n" + okReq},
		"chunked upper sp":  {in: "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  CHUNKED  \r\n\r\n0\r\n\r\n"},
		"chunk 16 digits":   {in: "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0000000000000001\r\nx\r\n0\r\n\r\n"},
		"crlf after post":   {in: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx\r\n" + okReq},
		"http10 no host":    {in: "GET / HTTP/1.0\r\n\r\n"},
		"options asterisk":  {in: "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"},
		"absolute form":     {in: "GET http://a/b?c%zz HTTP/1.1\r\nHost: a\r\n\r\n"},
		"connect":           {in: "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", upgrade: true},
		"obs-text in value": {in: "GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n"},
		"empty value":       {in: "GET / HTTP/1.1\r\nHost: a\r\nX:\r\n\r\n"},
		"h2 preface":        {in: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00GET / HTTP/1.1\n"},

		"cl and te":              {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", wantStatus: 400, wantReason: "Content-Length with Transfer-Encoding"},
		"te and cl":              {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", wantStatus: 400, wantReason: "Content-Length with Transfer-Encoding"},
		"cl conflict":            {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", wantStatus: 400, wantReason: "conflicting Content-Length fields"},
		"cl leading zero dup":    {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 05\r\n\r\nhello", wantStatus: 400, wantReason: "conflicting Content-Length fields"},
		"cl list":                {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello", wantStatus: 400, wantReason: "invalid Content-Length"},
		"cl plus":                {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello", wantStatus: 400, wantReason: "invalid Content-Length"},
		"cl hex":                 {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello", wantStatus: 400, wantReason: "invalid Content-Length"},
		"cl inner space":         {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:  5 5\r\n\r\nhello", wantStatus: 400, wantReason: "invalid Content-Length"},
		"cl empty":               {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", wantStatus: 400, wantReason: "invalid Content-Length"},
		"cl overflow":            {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n", wantStatus: 400, wantReason: "Content-Length overflows int64"},
		"te list":                {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", wantStatus: 400, wantReason: "unsupported Transfer-Encoding"},
		"te gzip chunked":        {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", wantStatus: 400, wantReason: "unsupported Transfer-Encoding"},
		"te leading tab":         {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n", wantStatus: 400, wantReason: "HTAB in Transfer-Encoding"},
		"te trailing tab":        {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n", wantStatus: 400, wantReason: "HTAB in Transfer-Encoding"},
		"te xchunked":            {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", wantStatus: 400, wantReason: "unsupported Transfer-Encoding"},
		"te chunk":               {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunk\r\n\r\n0\r\n\r\n", wantStatus: 400, wantReason: "unsupported Transfer-Encoding"},
		"te empty":               {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", wantStatus: 400, wantReason: "unsupported Transfer-Encoding"},
		"te twice":               {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", wantStatus: 400, wantReason: "multiple Transfer-Encoding fields"},
		"te http10":              {in: okReq + "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", wantStatus: 400, wantReason: "Transfer-Encoding in HTTP/1.0 request"},
		"chunk negative":         {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n\r\n", inBody: true, wantStatus: 400, wantReason: "invalid chunk-size"},
		"chunk 0x":               {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x10\r\n", inBody: true, wantStatus: 400, wantReason: "invalid chunk-size"},
		"chunk inner space":      {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1 0\r\n", inBody: true, wantStatus: 400, wantReason: "invalid chunk-size"},
		"chunk trailing space":   {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1 \r\nx\r\n0\r\n\r\n", inBody: true, wantStatus: 400, wantReason: "invalid chunk-size"},
		"chunk 17 digits":        {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000001\r\nx\r\n0\r\n\r\n", inBody: true, wantStatus: 400, wantReason: "chunk-size too long"},
		"chunk data no crlf":     {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n", inBody: true, wantStatus: 400, wantReason: "chunk-data not followed by CRLF"},
		"chunk data bare lf":     {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n", inBody: true, wantStatus: 400, wantReason: "chunk-data not followed by CRLF"},
		"chunk ext bws":          {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3; a=b\r\nabc\r\n0\r\n\r\n", inBody: true, wantStatus: 400, wantReason: "invalid chunk-ext"},
		"chunk ext too long":     {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;a=" + strings.Repeat("b", 1100) + "\r\nabc\r\n0\r\n\r\n", inBody: true, wantStatus: 400, wantReason: "chunk-ext too long"},
		"chunk line bare lf":     {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", inBody: true, wantStatus: 400, wantReason: "invalid chunk-size"},
		"trailer obs-fold":       {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\r\n b\r\n\r\n", inBody: true, wantStatus: 400, wantReason: "obs-fold"},
		"obs-fold":               {in: okReq + "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", wantStatus: 400, wantReason: "obs-fold"},
		"space after start":      {in: okReq + "GET / HTTP/1.1\r\n Host: a\r\n\r\n", wantStatus: 400, wantReason: "obs-fold"},
		"space before colon":     {in: okReq + "GET / HTTP/1.1\r\nHost : a\r\n\r\n", wantStatus: 400, wantReason: "whitespace before colon"},
		"tab before colon":       {in: okReq + "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", wantStatus: 400, wantReason: "whitespace before colon"},
		"empty name":             {in: okReq + "GET / HTTP/1.1\r\nHost: a\r\n: a\r\n\r\n", wantStatus: 400, wantReason: "invalid field-name"},
		"cr in value":            {in: okReq + "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", wantStatus: 400, wantReason: "bare CR"},
		"nul in value":           {in: okReq + "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", wantStatus: 400, wantReason: "NUL in field value"},
		"ctl in value":           {in: okReq + "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", wantStatus: 400, wantReason: "control character in field value"},
		"lf in value":            {in: okReq + "GET / HTTP/1.1\r\nHost: a\r\nX: a\nb: c\r\n\r\n", wantStatus: 400, wantReason: "bare LF"},
		"bare lf lines":          {in: okReq + "GET / HTTP/1.1\nHost: a\n\n", wantStatus: 400, wantReason: "bare LF"},
		"bare lf end of head":    {in: okReq + "GET / HTTP/1.1\r\nHost: a\r\n\n", wantStatus: 400, wantReason: "bare LF"},
		"leading crlf":           {in: okReq + "\r\n" + okReq, wantStatus: 400, wantReason: "empty line before request-line"},
		"two crlf after post":    {in: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx\r\n\r\n" + okReq, wantStatus: 400, wantReason: "empty line before request-line"},
		"bad method":             {in: okReq + "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", wantStatus: 400, wantReason: "invalid method"},
		"double space":           {in: okReq + "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", wantStatus: 400, wantReason: "invalid request-target"},
		"fragment":               {in: okReq + "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", wantStatus: 400, wantReason: "invalid request-target"},
		"relative target":        {in: okReq + "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", wantStatus: 400, wantReason: "invalid request-target"},
		"bad escape":             {in: okReq + "GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n", wantStatus: 400, wantReason: "invalid percent-encoding in request-target"},
		"asterisk get":           {in: okReq + "GET * HTTP/1.1\r\nHost: a\r\n\r\n", wantStatus: 400, wantReason: "asterisk-form request-target"},
		"http09":                 {in: okReq + "GET /\r\n\r\n", wantStatus: 400, wantReason: "invalid request-target"},
		"lower version":          {in: okReq + "GET / http/1.1\r\nHost: a\r\n\r\n", wantStatus: 400, wantReason: "malformed HTTP-version"},
		"http12":                 {in: okReq + "GET / HTTP/1.2\r\nHost: a\r\n\r\n", wantStatus: 505, wantReason: "unsupported HTTP version"},
		"http20 get":             {in: okReq + "GET / HTTP/2.0\r\nHost: a\r\n\r\n", wantStatus: 505, wantReason: "unsupported HTTP version"},
		"late preface":           {in: okReq + "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", wantStatus: 505, wantReason: "unsupported HTTP version"},
		"bad preface":            {in: "PRI * HTTP/2.0\r\n\r\nXM\r\n\r\n", wantStatus: 400, wantReason: "malformed HTTP/2 connection preface"},
		"missing host":           {in: okReq + "GET / HTTP/1.1\r\n\r\n", wantStatus: 400, wantReason: "missing Host field"},
		"two hosts":              {in: okReq + "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", wantStatus: 400, wantReason: "multiple Host fields"},
		"connect with content":   {in: okReq + "CONNECT a:443 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", wantStatus: 400, wantReason: "CONNECT request with content"},
		"header too large":       {in: okReq + "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 70<<10) + "\r\n\r\n", wantStatus: 431, wantReason: "header section too large"},
		"unterminated too large": {in: okReq + "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 80<<10), wantStatus: 431, wantReason: "header section too large"},
		"too many fields":        {in: okReq + "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X: y\r\n", 100) + "\r\n", wantStatus: 431, wantReason: "too many header fields"},
		"trailer too large":      {in: okReq + "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + strings.Repeat("a", 70<<10) + "\r\n\r\n", inBody: true, wantStatus: 431, wantReason: "trailer section too large"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for _, chunk := range []int{0, 1, 7, 100} {
				for _, readSize := range []int{4096, 1, 5} {
					out, g := pump([]byte(tc.in), chunk, readSize, Options{})
					err := g.Err()
					if tc.wantStatus == 0 {
						if err != nil {
							t.Fatalf("chunk %d read %d: rejected: %v", chunk, readSize, err)
						}
						if tc.upgrade && readSize == 1 {
							if len(out) != 0 {
								t.Fatalf("chunk %d read %d: upgrade request released to a one-byte read", chunk, readSize)
							}
							continue
						}
						if string(out) != tc.in {
							t.Fatalf("chunk %d read %d: delivered %q, want all of %q", chunk, readSize, out, tc.in)
						}
						continue
					}
					var e *Error
					if !errors.As(err, &e) {
						t.Fatalf("chunk %d read %d: Err() = %v, want a rejection", chunk, readSize, err)
					}
					if e.Status != tc.wantStatus || e.Reason != tc.wantReason {
						t.Fatalf("chunk %d read %d: rejected with %d %q, want %d %q", chunk, readSize, e.Status, e.Reason, tc.wantStatus, tc.wantReason)
					}
					// Everything before the bad request, nothing of it; or,
					// for a violation in content, the bad request's head
					// and content up to the violation, and no response
					// from the guard (net/http answers that request).
					want := ""
					if strings.HasPrefix(tc.in, okReq) {
						want = okReq
					}
					if strings.HasPrefix(tc.in, "POST /p") {
						want = "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx"
					}
					if g.rej.Load().respond {
						if string(out) != want {
							t.Fatalf("chunk %d read %d: delivered %q, want %q", chunk, readSize, out, want)
						}
						continue
					}
					if !tc.inBody {
						t.Fatalf("chunk %d read %d: head violation exposed the request: delivered %q", chunk, readSize, out)
					}
					if len(out) <= len(want) || !strings.HasPrefix(tc.in, string(out)) || len(out) == len(tc.in) {
						t.Fatalf("chunk %d read %d: delivered %q, want a proper prefix of the input longer than %q", chunk, readSize, out, want)
					}
				}
			}
		})
	}
}

// TestScanLimits checks that the limits in Options are applied.
func TestScanLimits(t *testing.T) {
	head := "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 100) + "\r\n\r\n"
	if _, g := pump([]byte(head), 0, 4096, Options{MaxHeaderBytes: len(head)}); g.Err() != nil {
		t.Fatalf("head of exactly MaxHeaderBytes rejected: %v", g.Err())
	}
	if _, g := pump([]byte(head), 0, 4096, Options{MaxHeaderBytes: len(head) - 1}); g.Err() == nil {
		t.Fatal("head of MaxHeaderBytes+1 accepted")
	}
	fields := "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nY: 2\r\n\r\n"
	if _, g := pump([]byte(fields), 0, 4096, Options{MaxHeaderFields: 3}); g.Err() != nil {
		t.Fatalf("MaxHeaderFields fields rejected: %v", g.Err())
	}
	if _, g := pump([]byte(fields), 0, 4096, Options{MaxHeaderFields: 2}); g.Err() == nil {
		t.Fatal("MaxHeaderFields+1 fields accepted")
	}
}

// TestDetector checks the reading of the status line that decides a
// protocol switch.
func TestDetector(t *testing.T) {
	tests := map[string]struct {
		connect bool
		written []string
		want    int32
	}{
		"101":             {written: []string{"HTTP/1.1 101 Switching Protocols\r\n\r\n"}, want: decPass},
		"101 split":       {written: []string{"HTT", "P/1.1 1", "01 Switching"}, want: decPass},
		"continue 101":    {written: []string{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 OK\r\n\r\n"}, want: decPass},
		"hints 403":       {written: []string{"HTTP/1.1 103 Early Hints\r\nLink: <a>\r\n\r", "\nHTTP/1.1 403 Forbidden\r\n"}, want: decRefused},
		"200 upgrade":     {written: []string{"HTTP/1.1 200 OK\r\n"}, want: decRefused},
		"garbage":         {written: []string{"hello world!"}, want: decRefused},
		"incomplete":      {written: []string{"HTTP/1.1 10"}, want: decNone},
		"connect 200":     {connect: true, written: []string{"HTTP/1.1 200 Connection established\r\n\r\n"}, want: decPass},
		"connect 101":     {connect: true, written: []string{"HTTP/1.1 101 Switching Protocols\r\n\r\n"}, want: decRefused},
		"connect 407":     {connect: true, written: []string{"HTTP/1.1 407 Proxy Authentication Required\r\n"}, want: decRefused},
		"connect http10":  {connect: true, written: []string{"HTTP/1.0 204 No Content\r\n"}, want: decPass},
		"interim unended": {written: []string{"HTTP/1.1 100 Continue\r\nHTTP/1.1 101"}, want: decNone},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d := detector{connect: tc.connect}
			got := decNone
			for _, w := range tc.written {
				if got = d.feed([]byte(w)); got != decNone {
					break
				}
			}
			if got != tc.want {
				t.Fatalf("decision %d, want %d", got, tc.want)
			}
		})
	}
}
