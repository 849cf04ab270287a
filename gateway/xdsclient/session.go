package xdsclient

import (
	"fmt"
	"maps"
	"slices"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
)

// dependents maps a wildcard type to the named type whose subscription its
// resources decide.
var dependents = map[string]string{
	ListenerType: RouteType,
	ClusterType:  EndpointType,
}

// Order of the first requests of an ADS stream: clusters before
// listeners, and their dependents after both, as Envoy does, so that a
// listener never arrives before the clusters it routes to on a fresh
// start. An SDS stream has secrets only, by name.
var (
	adsWildcardTypes = []string{ClusterType, ListenerType}
	adsNamedTypes    = []string{EndpointType, RouteType}
	sdsNamedTypes    = []string{SecretType}
)

func (s *session) wildcardTypes() []string {
	if s.c.cfg.Service == ServiceSDS {
		return nil
	}
	return adsWildcardTypes
}

func (s *session) namedTypes() []string {
	if s.c.cfg.Service == ServiceSDS {
		return sdsNamedTypes
	}
	return adsNamedTypes
}

func (s *session) isKnownType(typeURL string) bool {
	return slices.Contains(s.wildcardTypes(), typeURL) || slices.Contains(s.namedTypes(), typeURL)
}

func (s *session) isNamedType(typeURL string) bool {
	return slices.Contains(s.namedTypes(), typeURL)
}

// rejection counts identical rejections in a row of one type.
type rejection struct {
	version string
	message string
	repeats int
}

// pendingNACK is a paced NACK waiting for its time.
type pendingNACK struct {
	req *discoveryv3.DiscoveryRequest
	due time.Time
}

// session is the protocol state of one ADS stream: nonces are only
// meaningful within the stream that carried them, so all of this starts
// afresh on reconnection. Accepted versions live in Client and survive it.
// A session is used by one goroutine.
type session struct {
	c        *Client
	sendFn   func(*discoveryv3.DiscoveryRequest) error
	nodeSent bool

	// nonces holds the last nonce received per type on this stream.
	nonces map[string]string
	// subscribed holds, for named types requested on this stream, the
	// names of the last request (possibly empty: unsubscribed).
	subscribed map[string][]string
	rejections map[string]rejection
	pending    map[string]pendingNACK
	now        func() time.Time
}

func newSession(c *Client, send func(*discoveryv3.DiscoveryRequest) error) *session {
	return &session{
		c:          c,
		sendFn:     send,
		nonces:     map[string]string{},
		subscribed: map[string][]string{},
		rejections: map[string]rejection{},
		pending:    map[string]pendingNACK{},
		now:        time.Now,
	}
}

// start sends the first requests of the stream, resuming from the last
// accepted versions.
func (s *session) start() error {
	for _, typeURL := range s.wildcardTypes() {
		if err := s.send(&discoveryv3.DiscoveryRequest{
			TypeUrl:     typeURL,
			VersionInfo: s.c.acceptedVersion(typeURL),
		}); err != nil {
			return err
		}
	}
	for _, typeURL := range s.namedTypes() {
		if err := s.resubscribe(typeURL); err != nil {
			return err
		}
	}
	return nil
}

// handle processes one response and sends the requests it calls for. It
// returns an error only when sending fails: bad input is NACKed, never
// returned.
func (s *session) handle(resp *discoveryv3.DiscoveryResponse) error {
	typeURL := resp.GetTypeUrl()
	if typeURL == "" {
		// There is no type to address an ACK or NACK to, and an ADS
		// request without a type URL ends the stream on the server.
		s.c.log.Warn("ignoring xDS response without a type URL", "nonce", resp.GetNonce())
		return nil
	}
	if _, ok := s.subscribed[typeURL]; s.isNamedType(typeURL) && !ok {
		// Not requested on this stream: like Envoy, ignore a response
		// for an unwatched type rather than answer it, since an answer
		// with no names would subscribe to everything.
		s.c.log.Debug("ignoring xDS response for an unsubscribed type", "type", typeURL, "nonce", resp.GetNonce())
		return nil
	}

	version, nonce := resp.GetVersionInfo(), resp.GetNonce()
	s.nonces[typeURL] = nonce
	s.c.recordNonce(typeURL, nonce)
	// A pending NACK of an older response of this type is moot now.
	delete(s.pending, typeURL)

	if err := s.apply(typeURL, resp); err != nil {
		if err := s.reject(typeURL, version, nonce, err); err != nil {
			return err
		}
	} else if err := s.accept(typeURL, version, nonce); err != nil {
		return err
	}

	if dep, ok := dependents[typeURL]; ok {
		return s.resubscribe(dep)
	}
	return nil
}

// apply checks what the client can check itself and hands the resources
// to the Applier.
func (s *session) apply(typeURL string, resp *discoveryv3.DiscoveryResponse) error {
	if !s.isKnownType(typeURL) {
		return fmt.Errorf("unsupported resource type %q", typeURL)
	}
	for i, r := range resp.GetResources() {
		if r == nil {
			return fmt.Errorf("resource %d is empty", i)
		}
		if r.GetTypeUrl() != typeURL {
			return fmt.Errorf("resource %d has type %q in a %q response", i, r.GetTypeUrl(), typeURL)
		}
	}
	// The Applier's error goes to the server as it is: the server knows
	// the type and version it sent.
	return s.c.cfg.Applier.Apply(typeURL, resp.GetVersionInfo(), resp.GetResources())
}

func (s *session) accept(typeURL, version, nonce string) error {
	delete(s.rejections, typeURL)
	if s.c.recordAccept(typeURL, version) {
		s.c.log.Info("applied xDS update", "type", typeURL, "version", version)
	} else {
		s.c.log.Debug("applied xDS update", "type", typeURL, "version", version)
	}
	req := &discoveryv3.DiscoveryRequest{
		TypeUrl:       typeURL,
		VersionInfo:   version,
		ResponseNonce: nonce,
	}
	if s.isNamedType(typeURL) {
		req.ResourceNames = s.names(typeURL)
	}
	if err := s.send(req); err != nil {
		return err
	}
	if h := s.c.cfg.Hooks.OnAccept; h != nil {
		h(typeURL, version)
	}
	return nil
}

func (s *session) reject(typeURL, version, nonce string, cause error) error {
	msg := cause.Error()
	r := s.rejections[typeURL]
	if r.version == version && r.message == msg {
		r.repeats++
	} else {
		r = rejection{version: version, message: msg}
	}
	s.rejections[typeURL] = r
	s.c.recordReject(typeURL, version, msg)

	req := &discoveryv3.DiscoveryRequest{
		TypeUrl:       typeURL,
		VersionInfo:   s.c.acceptedVersion(typeURL),
		ResponseNonce: nonce,
		ErrorDetail:   &statuspb.Status{Code: int32(codes.InvalidArgument), Message: msg},
	}
	if s.isNamedType(typeURL) {
		req.ResourceNames = s.names(typeURL)
	}
	if r.repeats == 0 {
		s.c.log.Warn("rejected xDS update", "type", typeURL, "version", version, "error", msg)
		if err := s.send(req); err != nil {
			return err
		}
	} else {
		delay := nackDelay(r.repeats, s.c.cfg.InitialBackoff, s.c.cfg.MaxBackoff, s.c.randN)
		s.c.log.Debug("rejected xDS update again, pacing the NACK", "type", typeURL, "version", version, "repeats", r.repeats, "delay", delay)
		s.pending[typeURL] = pendingNACK{req: req, due: s.now().Add(delay)}
	}
	if h := s.c.cfg.Hooks.OnReject; h != nil {
		h(typeURL, version, cause)
	}
	return nil
}

// resubscribe sends a request for the named type typeURL when the names the
// Applier wants differ from those last requested on this stream. It
// carries the last accepted version and the last nonce of the type, which
// the server needs to take it as current rather than stale.
func (s *session) resubscribe(typeURL string) error {
	names := s.names(typeURL)
	prev, ok := s.subscribed[typeURL]
	if ok && slices.Equal(prev, names) {
		return nil
	}
	if !ok && len(names) == 0 {
		return nil
	}
	s.c.log.Debug("updating xDS subscription", "type", typeURL, "names", names)
	return s.send(&discoveryv3.DiscoveryRequest{
		TypeUrl:       typeURL,
		VersionInfo:   s.c.acceptedVersion(typeURL),
		ResponseNonce: s.nonces[typeURL],
		ResourceNames: names,
	})
}

// names returns the Applier's names for typeURL, sorted and without
// duplicates or empty names.
func (s *session) names(typeURL string) []string {
	return normalizeNames(s.c.cfg.Applier.Names(typeURL))
}

func normalizeNames(in []string) []string {
	out := make([]string, 0, len(in))
	for _, n := range in {
		if n != "" {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) == 0 {
		return nil
	}
	return out
}

// send sends req, with the node if it is the stream's first request, and
// records the subscription it makes. Any request of a type supersedes a
// paced NACK of that type.
func (s *session) send(req *discoveryv3.DiscoveryRequest) error {
	if !s.nodeSent {
		req.Node = s.c.cfg.Node
	}
	if err := s.sendFn(req); err != nil {
		return fmt.Errorf("send %s request: %w", req.GetTypeUrl(), err)
	}
	s.nodeSent = true
	delete(s.pending, req.GetTypeUrl())
	if s.isNamedType(req.GetTypeUrl()) {
		s.subscribed[req.GetTypeUrl()] = req.GetResourceNames()
		s.c.recordNames(req.GetTypeUrl(), req.GetResourceNames())
	}
	return nil
}

// nextDue returns when the earliest paced NACK is due.
func (s *session) nextDue() (time.Time, bool) {
	var due time.Time
	for _, p := range s.pending {
		if due.IsZero() || p.due.Before(due) {
			due = p.due
		}
	}
	return due, !due.IsZero()
}

// flush sends the paced NACKs due at now.
func (s *session) flush(now time.Time) error {
	for _, typeURL := range slices.Sorted(maps.Keys(s.pending)) {
		p := s.pending[typeURL]
		if p.due.After(now) {
			continue
		}
		if err := s.send(p.req); err != nil {
			return err
		}
	}
	return nil
}
