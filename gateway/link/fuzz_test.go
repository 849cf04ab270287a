package link

import (
	"bytes"
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

// FuzzReadResponse: the dialer parses the listener's answer.
func FuzzReadResponse(f *testing.F) {
	f.Add(appendResponse(nil, statusOK, ""))
	f.Add(appendResponse(nil, statusRefused, "no"))
	f.Add([]byte{7, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = readResponse(bytes.NewReader(data))
	})
}
