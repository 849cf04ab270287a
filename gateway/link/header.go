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

package link

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
)

// Stream header on QUIC. HTTP/2 needs none: the authority is the CONNECT
// request's :authority and the answer its status. On QUIC the opener
// writes
//
//	version (1 byte, headerVersion) | length (1 byte) | authority
//
// and the listener answers
//
//	status (1 byte, statusOK or statusRefused) | length (1 byte) | reason
//
// before any payload flows back. An empty authority is a probe: the
// listener answers statusOK itself, which tells the dialer that the
// listener accepted its certificate (in TLS 1.3 the client finishes the
// handshake before the server has checked the client's certificate). One length byte is enough: an authority
// is a host (at most 253 bytes as a DNS name, less as an IP) and a port,
// and a longer reason is cut.
const (
	headerVersion = 1
	statusOK      = 0
	statusRefused = 1
	maxAuthority  = 255
	maxReason     = 255
)

// ErrBadAuthority: a stream's destination is not a valid host:port.
var ErrBadAuthority = errors.New("bad authority")

// checkAuthority accepts "host:port" and "ip:port" (IPv6 in brackets) with a
// numeric port in 1..65535 and a host free of spaces and control bytes.
func checkAuthority(a string) error {
	if len(a) > maxAuthority {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrBadAuthority, len(a), maxAuthority)
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%w: %q: %w", ErrBadAuthority, a, err)
	}
	if host == "" {
		return fmt.Errorf("%w: %q has no host", ErrBadAuthority, a)
	}
	if strings.ContainsFunc(host, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '/' || r == '@' }) {
		return fmt.Errorf("%w: %q: host has a forbidden character", ErrBadAuthority, a)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 || port[0] == '0' {
		return fmt.Errorf("%w: %q: port must be 1..65535", ErrBadAuthority, a)
	}
	return nil
}

func appendRequest(b []byte, authority string) []byte {
	b = append(b, headerVersion, byte(len(authority)))
	return append(b, authority...)
}

// readRequest reads and checks an opener's header; "" is a probe. r is
// peer input.
func readRequest(r io.Reader) (string, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return "", fmt.Errorf("read stream header: %w", err)
	}
	if h[0] != headerVersion {
		return "", fmt.Errorf("read stream header: unknown version %d", h[0])
	}
	buf := make([]byte, h[1])
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", fmt.Errorf("read stream header: %w", err)
	}
	a := string(buf)
	if a == "" {
		return "", nil
	}
	if err := checkAuthority(a); err != nil {
		return "", fmt.Errorf("read stream header: %w", err)
	}
	return a, nil
}

func appendResponse(b []byte, status byte, reason string) []byte {
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	b = append(b, status, byte(len(reason)))
	return append(b, reason...)
}

// readResponse reads the listener's answer: nil when the stream was
// accepted, a *RefusedError when refused.
func readResponse(r io.Reader) error {
	var a answerReader
	return a.read(r)
}

// answerReader reads the accepting side's answer on the opening side of a
// QUIC stream. It can be resumed: a read interrupted by a deadline leaves
// what it read so far, and never consumes a byte of the payload behind the
// answer.
type answerReader struct {
	buf [2 + maxReason]byte
	n   int
}

// read reads the rest of the answer: nil when the stream was accepted, a
// *RefusedError when refused, another error when the stream failed first
// (a timeout among them, after which read may be called again).
func (a *answerReader) read(r io.Reader) error {
	for {
		need := 2
		if a.n >= 2 {
			need += int(a.buf[1])
		}
		if a.n == need {
			break
		}
		m, err := r.Read(a.buf[a.n:need])
		a.n += m
		if err != nil && (a.n < 2 || a.n < 2+int(a.buf[1])) {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("read stream answer: %w", err)
		}
	}
	switch a.buf[0] {
	case statusOK:
		return nil
	case statusRefused:
		return &RefusedError{Reason: string(a.buf[2:a.n])}
	}
	return fmt.Errorf("read stream answer: unknown status %d", a.buf[0])
}

// RefusedError is how a stream the peer gateway refused (Stream.Refuse)
// fails: Open returns it; on a conn from OpenEarly, Read returns it, and
// Write once the refusal is known. Reason is the peer's text.
type RefusedError struct {
	Reason string
}

func (e *RefusedError) Error() string { return "stream refused by peer gateway: " + e.Reason }
