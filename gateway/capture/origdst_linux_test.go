package capture

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// sockaddr builds kernel-layout sockaddr bytes: family in host order, port
// in network order, then the rest as given.
func sockaddr(family uint16, port uint16, rest ...byte) []byte {
	b := binary.NativeEndian.AppendUint16(nil, family)
	b = binary.BigEndian.AppendUint16(b, port)
	return append(b, rest...)
}

func TestParseSockaddr(t *testing.T) {
	v6 := netip.MustParseAddr("fd00:250::2").As16()
	tests := map[string]struct {
		in      []byte
		want    netip.AddrPort
		wantErr bool
	}{
		"sockaddr_in": {
			in:   sockaddr(unix.AF_INET, 8080, 10, 250, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0),
			want: netip.MustParseAddrPort("10.250.0.2:8080"),
		},
		"sockaddr_in without padding": {
			in:   sockaddr(unix.AF_INET, 65535, 255, 255, 255, 255),
			want: netip.MustParseAddrPort("255.255.255.255:65535"),
		},
		"sockaddr_in6": {
			in:   append(sockaddr(unix.AF_INET6, 443, 0, 0, 0, 7), append(v6[:], 0, 0, 0, 3)...),
			want: netip.MustParseAddrPort("[fd00:250::2]:443"),
		},
		"empty":                {in: nil, wantErr: true},
		"one byte":             {in: []byte{2}, wantErr: true},
		"unset family":         {in: make([]byte, 16), wantErr: true},
		"unknown family":       {in: sockaddr(unix.AF_UNIX, 80, 1, 2, 3, 4), wantErr: true},
		"short sockaddr_in":    {in: sockaddr(unix.AF_INET, 80, 10, 0, 0), wantErr: true},
		"short sockaddr_in6":   {in: append(sockaddr(unix.AF_INET6, 80, 0, 0, 0, 0), v6[:15]...), wantErr: true},
		"sockaddr_in6 no addr": {in: sockaddr(unix.AF_INET6, 80), wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseSockaddr(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseSockaddr(%v) = %v, %v; want error: %t", tc.in, got, err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("parseSockaddr(%v) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func FuzzParseSockaddr(f *testing.F) {
	f.Add(sockaddr(unix.AF_INET, 8080, 10, 250, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0))
	f.Add(append(sockaddr(unix.AF_INET6, 443, 0, 0, 0, 0), make([]byte, 20)...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseSockaddr(b)
		if err != nil {
			if got.IsValid() {
				t.Fatalf("parseSockaddr returned %v with error %v", got, err)
			}
			return
		}
		// Success means a known family and enough bytes for it, and the
		// result reproduces the port and address bytes.
		port := binary.BigEndian.Uint16(b[2:4])
		switch binary.NativeEndian.Uint16(b[0:2]) {
		case unix.AF_INET:
			if !got.Addr().Is4() || got.Addr().As4() != [4]byte(b[4:8]) || got.Port() != port {
				t.Fatalf("parseSockaddr(%v) = %v", b, got)
			}
		case unix.AF_INET6:
			if !got.Addr().Is6() || got.Addr().As16() != [16]byte(b[8:24]) || got.Port() != port {
				t.Fatalf("parseSockaddr(%v) = %v", b, got)
			}
		default:
			t.Fatalf("parseSockaddr(%v) = %v for an unknown family", b, got)
		}
	})
}
