package xdsclient

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// fakeApplier accepts everything but the versions listed in reject, and
// reports RDS and EDS names by the accepted LDS and CDS versions.
type fakeApplier struct {
	reject    map[string]string   // typeURL+" "+version → error message
	routes    map[string][]string // accepted LDS version → RDS names
	endpoints map[string][]string // accepted CDS version → EDS names
	accepted  map[string]string
	calls     int
}

func (a *fakeApplier) Apply(typeURL, version string, _ []*anypb.Any) error {
	a.calls++
	if msg, ok := a.reject[typeURL+" "+version]; ok {
		return errors.New(msg)
	}
	if a.accepted == nil {
		a.accepted = map[string]string{}
	}
	a.accepted[typeURL] = version
	return nil
}

func (a *fakeApplier) Names(typeURL string) []string {
	switch typeURL {
	case RouteType:
		return a.routes[a.accepted[ListenerType]]
	case EndpointType:
		return a.endpoints[a.accepted[ClusterType]]
	}
	return nil
}

// newTestSession returns a session of a fresh client and the requests it
// sends.
func newTestSession(applier Applier) (*session, *[]*discoveryv3.DiscoveryRequest) {
	c := New(Config{
		ServerAddress:  "unused",
		Node:           &corev3.Node{Id: testNodeID},
		Applier:        applier,
		InitialBackoff: 100 * time.Millisecond,
		MaxBackoff:     time.Second,
	})
	// The largest draw: delays equal their bound.
	c.randN = func(n int64) int64 { return n - 1 }
	var sent []*discoveryv3.DiscoveryRequest
	s := newSession(c, func(r *discoveryv3.DiscoveryRequest) error {
		sent = append(sent, proto.CloneOf(r))
		return nil
	})
	return s, &sent
}

func nack(typeURL, version, nonce string, names []string, msg string) *discoveryv3.DiscoveryRequest {
	return &discoveryv3.DiscoveryRequest{
		TypeUrl: typeURL, VersionInfo: version, ResponseNonce: nonce, ResourceNames: names,
		ErrorDetail: &statuspb.Status{Code: int32(codes.InvalidArgument), Message: msg},
	}
}

func req(typeURL, version, nonce string, names ...string) *discoveryv3.DiscoveryRequest {
	return &discoveryv3.DiscoveryRequest{TypeUrl: typeURL, VersionInfo: version, ResponseNonce: nonce, ResourceNames: names}
}

func resp(typeURL, version, nonce string, resources ...*anypb.Any) *discoveryv3.DiscoveryResponse {
	return &discoveryv3.DiscoveryResponse{TypeUrl: typeURL, VersionInfo: version, Nonce: nonce, Resources: resources}
}

func TestSessionRequests(t *testing.T) {
	initial := []*discoveryv3.DiscoveryRequest{req(ClusterType, "", ""), req(ListenerType, "", "")}
	tests := map[string]struct {
		applier   *fakeApplier
		responses []*discoveryv3.DiscoveryResponse
		// want lists the requests after the initial ones.
		want      []*discoveryv3.DiscoveryRequest
		wantCalls int
	}{
		"nothing accepted yet: only wildcard requests": {
			applier: &fakeApplier{},
		},
		"LDS accepted: RDS subscribed by sorted unique names": {
			applier:   &fakeApplier{routes: map[string][]string{"1": {"b", "a", "a", ""}}},
			responses: []*discoveryv3.DiscoveryResponse{resp(ListenerType, "1", "n1")},
			want:      []*discoveryv3.DiscoveryRequest{req(ListenerType, "1", "n1"), req(RouteType, "", "", "a", "b")},
			wantCalls: 1,
		},
		"CDS accepted: EDS subscribed": {
			applier:   &fakeApplier{endpoints: map[string][]string{"1": {"c1"}}},
			responses: []*discoveryv3.DiscoveryResponse{resp(ClusterType, "1", "n1")},
			want:      []*discoveryv3.DiscoveryRequest{req(ClusterType, "1", "n1"), req(EndpointType, "", "", "c1")},
			wantCalls: 1,
		},
		"RDS ACK carries the names": {
			applier:   &fakeApplier{routes: map[string][]string{"1": {"a"}}},
			responses: []*discoveryv3.DiscoveryResponse{resp(ListenerType, "1", "n1"), resp(RouteType, "r1", "n2")},
			want: []*discoveryv3.DiscoveryRequest{
				req(ListenerType, "1", "n1"), req(RouteType, "", "", "a"), req(RouteType, "r1", "n2", "a"),
			},
			wantCalls: 2,
		},
		"unchanged names are not requested again": {
			applier:   &fakeApplier{routes: map[string][]string{"1": {"a"}, "2": {"a"}}},
			responses: []*discoveryv3.DiscoveryResponse{resp(ListenerType, "1", "n1"), resp(ListenerType, "2", "n2")},
			want: []*discoveryv3.DiscoveryRequest{
				req(ListenerType, "1", "n1"), req(RouteType, "", "", "a"), req(ListenerType, "2", "n2"),
			},
			wantCalls: 2,
		},
		"changed names carry the last accepted version and nonce": {
			applier: &fakeApplier{routes: map[string][]string{"1": {"a"}, "2": {"a", "b"}}},
			responses: []*discoveryv3.DiscoveryResponse{
				resp(ListenerType, "1", "n1"), resp(RouteType, "r1", "n2"), resp(ListenerType, "2", "n3"),
			},
			want: []*discoveryv3.DiscoveryRequest{
				req(ListenerType, "1", "n1"), req(RouteType, "", "", "a"), req(RouteType, "r1", "n2", "a"),
				req(ListenerType, "2", "n3"), req(RouteType, "r1", "n2", "a", "b"),
			},
			wantCalls: 3,
		},
		"names shrinking to none unsubscribe": {
			applier: &fakeApplier{routes: map[string][]string{"1": {"a"}}},
			responses: []*discoveryv3.DiscoveryResponse{
				resp(ListenerType, "1", "n1"), resp(RouteType, "r1", "n2"), resp(ListenerType, "2", "n3"),
			},
			want: []*discoveryv3.DiscoveryRequest{
				req(ListenerType, "1", "n1"), req(RouteType, "", "", "a"), req(RouteType, "r1", "n2", "a"),
				req(ListenerType, "2", "n3"), req(RouteType, "r1", "n2"),
			},
			wantCalls: 3,
		},
		"rejection NACKs with the last accepted version": {
			applier:   &fakeApplier{reject: map[string]string{ListenerType + " 2": "boom"}},
			responses: []*discoveryv3.DiscoveryResponse{resp(ListenerType, "1", "n1"), resp(ListenerType, "2", "n2")},
			want:      []*discoveryv3.DiscoveryRequest{req(ListenerType, "1", "n1"), nack(ListenerType, "1", "n2", nil, "boom")},
			wantCalls: 2,
		},
		"RDS rejection NACK carries the names": {
			applier: &fakeApplier{routes: map[string][]string{"1": {"a"}}, reject: map[string]string{RouteType + " r1": "bad route"}},
			responses: []*discoveryv3.DiscoveryResponse{
				resp(ListenerType, "1", "n1"), resp(RouteType, "r1", "n2"),
			},
			want: []*discoveryv3.DiscoveryRequest{
				req(ListenerType, "1", "n1"), req(RouteType, "", "", "a"), nack(RouteType, "", "n2", []string{"a"}, "bad route"),
			},
			wantCalls: 2,
		},
		"nil resource is NACKed without applying": {
			applier:   &fakeApplier{},
			responses: []*discoveryv3.DiscoveryResponse{resp(ClusterType, "1", "n1", nil)},
			want:      []*discoveryv3.DiscoveryRequest{nack(ClusterType, "", "n1", nil, "resource 0 is empty")},
		},
		"EDS response before any EDS request is ignored": {
			applier:   &fakeApplier{},
			responses: []*discoveryv3.DiscoveryResponse{resp(EndpointType, "1", "n1")},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, sent := newTestSession(tc.applier)
			if err := s.start(); err != nil {
				t.Fatalf("start: %v", err)
			}
			for _, r := range tc.responses {
				if err := s.handle(r); err != nil {
					t.Fatalf("handle: %v", err)
				}
			}
			if got := (*sent)[0].GetNode().GetId(); got != testNodeID {
				t.Errorf("first request node id %q, want %q", got, testNodeID)
			}
			for i, r := range *sent {
				if i > 0 && r.GetNode() != nil {
					t.Errorf("request %d carries the node; only the first should", i)
				}
				r.Node = nil
			}
			want := append(append([]*discoveryv3.DiscoveryRequest{}, initial...), tc.want...)
			if !slices.EqualFunc(want, *sent, func(a, b *discoveryv3.DiscoveryRequest) bool { return proto.Equal(a, b) }) {
				t.Errorf("requests:%s\nwant:%s", fmtRequests(*sent), fmtRequests(want))
			}
			if tc.applier.calls != tc.wantCalls {
				t.Errorf("Apply called %d times, want %d", tc.applier.calls, tc.wantCalls)
			}
		})
	}
}

func TestSessionPacesRepeatedRejections(t *testing.T) {
	applier := &fakeApplier{reject: map[string]string{ListenerType + " 2": "boom"}}
	s, sent := newTestSession(applier)
	now := time.Unix(1000, 0)
	s.now = func() time.Time { return now }
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	last := func() *discoveryv3.DiscoveryRequest { return (*sent)[len(*sent)-1] }
	handle := func(r *discoveryv3.DiscoveryResponse) {
		t.Helper()
		if err := s.handle(r); err != nil {
			t.Fatal(err)
		}
	}

	handle(resp(ListenerType, "2", "n1"))
	if got := last(); got.GetResponseNonce() != "n1" || got.GetErrorDetail() == nil {
		t.Fatalf("first rejection: last request %v, want an immediate NACK of n1", got)
	}
	if _, ok := s.nextDue(); ok {
		t.Fatalf("first rejection left a paced NACK")
	}

	// The same rejection again: held for InitialBackoff (the largest
	// draw in [InitialBackoff/2, InitialBackoff]).
	count := len(*sent)
	handle(resp(ListenerType, "2", "n2"))
	if len(*sent) != count {
		t.Fatalf("repeated rejection sent %v at once, want it paced", last())
	}
	due, ok := s.nextDue()
	if want := now.Add(100 * time.Millisecond); !ok || !due.Equal(want) {
		t.Fatalf("paced NACK due %v (%v), want %v", due, ok, want)
	}
	if err := s.flush(due.Add(-time.Millisecond)); err != nil || len(*sent) != count {
		t.Fatalf("flush before due sent %d requests (err %v), want none", len(*sent)-count, err)
	}
	if err := s.flush(due); err != nil {
		t.Fatal(err)
	}
	if got := last(); got.GetResponseNonce() != "n2" || got.GetErrorDetail().GetMessage() != "boom" {
		t.Fatalf("flush sent %v, want the NACK of n2", got)
	}

	// The third time waits twice as long.
	handle(resp(ListenerType, "2", "n3"))
	if due, _ := s.nextDue(); !due.Equal(now.Add(200 * time.Millisecond)) {
		t.Errorf("third rejection due %v, want %v", due, now.Add(200*time.Millisecond))
	}

	// A newer response supersedes the paced NACK.
	handle(resp(ListenerType, "3", "n4"))
	if _, ok := s.nextDue(); ok {
		t.Errorf("paced NACK kept after a newer response")
	}
	if got := last(); got.GetResponseNonce() != "n4" || got.GetErrorDetail() != nil || got.GetVersionInfo() != "3" {
		t.Errorf("last request %v, want the ACK of n4", got)
	}

	// After an accept, the count starts over: the next rejection is
	// immediate.
	handle(resp(ListenerType, "2", "n5"))
	if got := last(); got.GetResponseNonce() != "n5" || got.GetErrorDetail() == nil || got.GetVersionInfo() != "3" {
		t.Errorf("last request %v, want an immediate NACK of n5 with version 3", got)
	}
}

func TestSessionReturnsSendErrors(t *testing.T) {
	c := New(Config{Node: &corev3.Node{Id: testNodeID}, Applier: &fakeApplier{}})
	broken := errors.New("stream broken")
	s := newSession(c, func(*discoveryv3.DiscoveryRequest) error { return broken })
	if err := s.start(); !errors.Is(err, broken) {
		t.Errorf("start() = %v, want the send error", err)
	}
	if err := s.handle(resp(ListenerType, "1", "n1")); !errors.Is(err, broken) {
		t.Errorf("handle() = %v, want the send error", err)
	}
}

func TestNormalizeNames(t *testing.T) {
	tests := map[string]struct {
		in, want []string
	}{
		"nil":                  {nil, nil},
		"only empty names":     {[]string{"", ""}, nil},
		"sorted and compacted": {[]string{"b", "a", "b", "", "c"}, []string{"a", "b", "c"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := normalizeNames(tc.in); !slices.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
				t.Errorf("normalizeNames(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// FuzzSessionHandle checks that no response, however malformed, makes the
// client panic, and that every response to a subscribed or unknown type is
// answered with its nonce.
func FuzzSessionHandle(f *testing.F) {
	listener, err := anypb.New(&listenerv3.Listener{Name: "l"})
	if err != nil {
		f.Fatal(err)
	}
	for _, r := range []*discoveryv3.DiscoveryResponse{
		resp(ListenerType, "1", "n1", listener),
		resp(ListenerType, "1", "n1", &anypb.Any{TypeUrl: ListenerType, Value: []byte{0xff}}),
		resp(ClusterType, "1", "n1", listener),
		resp("type.googleapis.com/unknown", "1", "n1"),
		resp(RouteType, "1", "n1"),
		resp("", "", ""),
	} {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r discoveryv3.DiscoveryResponse
		if proto.Unmarshal(data, &r) != nil {
			return
		}
		s, sent := newTestSession(newTestApplier())
		if err := s.start(); err != nil {
			t.Fatal(err)
		}
		if err := s.handle(&r); err != nil {
			t.Fatal(err)
		}
		if r.GetTypeUrl() == "" || s.isNamedType(r.GetTypeUrl()) {
			return // ignored: no type, or not subscribed on this stream
		}
		for _, q := range *sent {
			if q.GetTypeUrl() == r.GetTypeUrl() && q.GetResponseNonce() == r.GetNonce() {
				if q.GetErrorDetail() != nil && q.GetVersionInfo() != "" {
					t.Errorf("NACK with version %q, want the last accepted (none)", q.GetVersionInfo())
				}
				return
			}
		}
		t.Errorf("no ACK or NACK for %s nonce %q; sent %v", r.GetTypeUrl(), r.GetNonce(), fmtRequests(*sent))
	})
}

func fmtRequests(reqs []*discoveryv3.DiscoveryRequest) string {
	var b strings.Builder
	for _, r := range reqs {
		fmt.Fprintf(&b, "\n  %v", r)
	}
	return b.String()
}
