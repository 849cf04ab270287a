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
	"bytes"
	"io"
	"os"
	"testing"
)

// FuzzReadRequest feeds peer-controlled stream headers to the listener's
// parser: it must never panic, and what it accepts must re-encode to the
// bytes it consumed.
func FuzzReadRequest(f *testing.F) {
	f.Add(appendRequest(nil, "10.0.0.1:80"))
	f.Add(appendRequest(nil, "[fd00::1]:443"))
	f.Add(appendRequest(nil, ""))
	f.Add([]byte{headerVersion, 200, 'a'})
	f.Add([]byte{2, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		a, err := readRequest(r)
		if err != nil {
			return
		}
		consumed := data[:len(data)-r.Len()]
		if re := appendRequest(nil, a); !bytes.Equal(re, consumed) {
			t.Fatalf("readRequest(%x) = %q, which encodes as %x", consumed, a, re)
		}
		if a != "" {
			if err := checkAuthority(a); err != nil {
				t.Fatalf("accepted authority %q fails checkAuthority: %v", a, err)
			}
		}
	})
}

// FuzzReadResponse: the opener parses the accepting side's answer. Read
// piecewise, interrupted by timeouts and resumed (as a read deadline does
// to an early stream's first Read), it must give the same verdict as read
// at once, and never consume a byte of the payload behind the answer.
func FuzzReadResponse(f *testing.F) {
	f.Add(appendResponse(nil, statusOK, ""))
	f.Add(appendResponse([]byte{}, statusRefused, "no"))
	f.Add(append(appendResponse(nil, statusOK, ""), "payload"...))
	f.Add([]byte{7, 0})
	f.Add([]byte{statusRefused, 5, 'a'})
	f.Fuzz(func(t *testing.T, data []byte) {
		whole := readResponse(bytes.NewReader(data))
		r := bytes.NewReader(data)
		sr := &stutter{r: r}
		var a answerReader
		var piecewise error
		for {
			piecewise = a.read(sr)
			if !isTimeout(piecewise) {
				break
			}
		}
		if (whole == nil) != (piecewise == nil) || isRefused(whole) != isRefused(piecewise) {
			t.Fatalf("answer %x: read at once %v, piecewise %v", data, whole, piecewise)
		}
		if len(data) >= 2 && len(data) >= 2+int(data[1]) {
			if consumed := len(data) - r.Len(); consumed != 2+int(data[1]) {
				t.Fatalf("answer %x: consumed %d bytes, want the answer's %d", data, consumed, 2+int(data[1]))
			}
		}
	})
}

// stutter reads one byte at a time from r, failing every other Read with
// a timeout.
type stutter struct {
	r    io.Reader
	tick bool
}

func (s *stutter) Read(p []byte) (int, error) {
	s.tick = !s.tick
	if s.tick {
		return 0, os.ErrDeadlineExceeded
	}
	return s.r.Read(p[:min(len(p), 1)])
}
