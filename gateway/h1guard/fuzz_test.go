package h1guard

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/FuzzGuard from the test cases")

// fuzzOptions are small limits, so that the fuzzer reaches them.
var fuzzOptions = Options{MaxHeaderBytes: 2048, MaxHeaderFields: 16}

// FuzzGuard feeds arbitrary streams through the guard, cut into arbitrary
// pieces and read with buffers of several sizes (one byte included, like
// net/http's background read). It checks that the guard delivers a prefix of
// the stream, unchanged, never part of a request head, with bounded memory;
// and, differentially, that net/http reads every request the guard let
// through exactly as the guard framed it.
func FuzzGuard(f *testing.F) {
	f.Add([]byte(okReq+okReq), uint16(0))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;a=\"b\"\r\nabc\r\n0\r\nX: y\r\n\r\n"+okReq), uint16(7))
	f.Fuzz(func(t *testing.T, stream []byte, split uint16) {
		chunk := int(split & 0x3f) // 0: as much as asked for
		sizes := [...]int{4096, 1, 2 + int(split>>6&0x3f), 4096, 1, 17}
		g := newConn(&memConn{data: stream, chunk: chunk}, fuzzOptions)
		var out []byte
		buf := make([]byte, 4096)
		for i := 0; ; i++ {
			n, err := g.Read(buf[:sizes[i%len(sizes)]])
			out = append(out, buf[:n]...)
			if limit := max(g.bufLimit, len(buf)); cap(g.buf) > limit {
				t.Fatalf("buffer grew to %d, limit %d", cap(g.buf), limit)
			}
			if err != nil {
				break
			}
			if i > 2*len(stream)+16 {
				t.Fatal("reads make no progress")
			}
		}
		if !bytes.HasPrefix(stream, out) {
			t.Fatalf("delivered bytes are not a prefix of the stream:\n%q\n%q", out, stream)
		}
		if rj := g.rej.Load(); rj != nil && rj.respond && g.del != g.cut {
			t.Fatalf("rejected at %d but delivered %d", g.cut, g.del)
		}
		checkAgainstNetHTTP(t, out)
	})
}

// checkAgainstNetHTTP replays the guard's scanner over what it delivered to
// find where it ended each request, then reads the same bytes with
// http.ReadRequest and compares.
func checkAgainstNetHTTP(t *testing.T, out []byte) {
	m := newMachine(int64(fuzzOptions.MaxHeaderBytes), fuzzOptions.MaxHeaderFields)
	var ends []int64
	rest := out
	for {
		n, ev := m.scan(rest)
		rest = rest[n:]
		switch ev {
		case evMsgDone:
			ends = append(ends, m.pos)
			continue
		case evHeadDone:
			continue
		case evPreface:
			return // HTTP/2 from here on: nothing for net/http/1 to read
		case evError:
			t.Fatalf("delivered bytes fail the guard's own scan at %d (%s):\n%q", m.pos, m.reason, out)
		}
		break
	}
	if m.headOpen() && m.pos > m.msgStart {
		t.Fatalf("delivered part of a request head (from %d):\n%q", m.msgStart, out)
	}

	cr := &countingReader{r: bytes.NewReader(out)}
	br := bufio.NewReaderSize(cr, 16<<10)
	pos := func() int64 { return cr.n - int64(br.Buffered()) }
	prevPOST := false
	for i, end := range ends {
		if prevPOST {
			// net/http's server skips an empty line after a POST.
			if b, _ := br.Peek(2); string(b) == "\r\n" {
				_, _ = br.Discard(2) // cannot fail: Peek returned the 2 bytes
			}
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			if refusedByNetHTTP(err) {
				return // net/http answers 400 and closes: no desync
			}
			t.Fatalf("request %d: the guard accepted a head http.ReadRequest refuses: %v\n%q", i, err, out)
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			// A body net/http cannot read makes the server close the
			// connection (server.go, closeAfterReply): no desync.
			return
		}
		if got := pos(); got != end {
			t.Fatalf("request %d: net/http ends it at %d, the guard at %d:\n%q", i, got, end, out)
		}
		prevPOST = req.Method == http.MethodPost
	}
}

// refusedByNetHTTP reports errors of http.ReadRequest about meaning rather
// than syntax or framing, which the guard leaves to net/http: URIs it cannot
// parse, and a Trailer field naming a forbidden field.
func refusedByNetHTTP(err error) bool {
	var ue *url.Error
	return errors.As(err, &ue) || strings.Contains(err.Error(), "bad trailer key")
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// corpusSeeds are the checked-in seeds: the smuggling cases of the server
// tests behind a valid request, and valid streams.
func corpusSeeds() map[string][]byte {
	seeds := map[string][]byte{
		"valid_pipelined": []byte(okReq + "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" + okReq),
		"valid_chunked": []byte("POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n" +
			"5;name=val;flag\r\nhello\r\n6;q=\"a \\\"b\\\"\"\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n" + okReq),
		"valid_upgrade": []byte("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n" + tunnelData),
		"valid_connect": []byte("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n\x16\x03\x01"),
		"valid_h2":      []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"),
	}
	for name, tc := range rejectCases {
		if strings.Contains(name, "oversized") {
			continue // larger than the fuzz limits anyway; keep the corpus small
		}
		seeds[strings.NewReplacer(" ", "_", "/", "_", "'", "", ",", "").Replace(name)] = []byte(first + tc.bad)
	}
	return seeds
}

func corpusFile(data []byte) string {
	return fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nuint16(%d)\n", data, len(data)%64)
}

// TestSeedCorpus keeps testdata/fuzz/FuzzGuard in step with the test cases;
// run with -update-corpus to rewrite it.
func TestSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzGuard")
	for name, data := range corpusSeeds() {
		path := filepath.Join(dir, name)
		want := corpusFile(data)
		if *updateCorpus {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("seed %s: %v (run go test -run TestSeedCorpus -update-corpus)", name, err)
		}
		if string(got) != want {
			t.Fatalf("seed %s is stale (run go test -run TestSeedCorpus -update-corpus)", name)
		}
	}
}
