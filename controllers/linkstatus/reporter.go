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

package linkstatus

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/internal/linkapi"
)

// Defaults of Options.
const (
	DefaultInterval = 5 * time.Second
	DefaultRefresh  = 30 * time.Second
	DefaultTimeout  = 2 * time.Second
)

// Bounds that need no option.
const (
	// maxBody bounds a /links answer: 1,000 links of a few hundred bytes.
	maxBody = 1 << 20
	// maxConcurrent bounds the gateways asked at once.
	maxConcurrent = 16
	// hubTimeout bounds each read or write on the hub.
	hubTimeout = 10 * time.Second
	// maxErrorLen bounds an error string kept in the report, so a gateway
	// with a chatty error cannot bloat the hub's ConfigMap.
	maxErrorLen = 512
)

// Gateway is one gateway to ask for its links.
type Gateway struct {
	// Node is the gateway's xDS node ID; when empty, AdminAddr names it.
	Node string
	// AdminAddr is the host:port of its admin endpoint; empty when the
	// gateway did not say (reported as an error).
	AdminAddr string
}

func (g Gateway) name() string { return cmp.Or(g.Node, g.AdminAddr) }

// ParseGateways parses a comma-separated list of gateways for a flag: each
// item is host:port (the admin address, which then also names the
// gateway) or node=host:port.
func ParseGateways(s string) ([]Gateway, error) {
	var gws []Gateway
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		node, addr, named := strings.Cut(item, "=")
		if !named {
			node, addr = "", item
		}
		if named && node == "" {
			return nil, fmt.Errorf("gateway %q: empty node name before =", item)
		}
		if err := checkAdminAddr(addr); err != nil {
			return nil, fmt.Errorf("gateway %q: %w", item, err)
		}
		gws = append(gws, Gateway{Node: node, AdminAddr: addr})
	}
	return gws, nil
}

// checkAdminAddr accepts host:port with a non-empty host and port.
func checkAdminAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" || strings.ContainsAny(addr, "/?#@") {
		return fmt.Errorf("admin address %q is not host:port", addr)
	}
	return nil
}

// Options configure a Reporter.
type Options struct {
	// Hub is a client of the hub that may get, create and update the
	// ConfigMap in the member's namespace. It should not be a cached
	// client: the Reporter reads one object, rarely.
	Hub client.Client
	// Cluster is the member cluster's name.
	Cluster string
	// Gateways returns the gateways to ask now; nil for none. It is called
	// once per interval and must not block.
	Gateways func() []Gateway
	// Static are gateways asked in addition to those of Gateways.
	Static []Gateway
	// Interval between rounds; DefaultInterval when zero.
	Interval time.Duration
	// Refresh is the longest time between writes while the member has a
	// gateway; DefaultRefresh when zero.
	Refresh time.Duration
	// Timeout of each GET /links; DefaultTimeout when zero, at most
	// Interval.
	Timeout time.Duration
	// Transport makes the GET requests; a transport that uses no HTTP
	// proxy when nil.
	Transport http.RoundTripper
	// Clock; the real clock when nil.
	Clock clock.WithTicker
	// Logger for state changes and failed writes.
	Logger logr.Logger
}

// Reporter asks the member's gateways for their links and writes the
// summary to the hub. Create it with New; add it to the agent's manager.
type Reporter struct {
	o      Options
	http   *http.Client
	key    client.ObjectKey
	loaded bool // whether the hub's ConfigMap has been read

	// last is the summary on the hub as last written or read (nil: none
	// there), written at lastWrite.
	last      *linkapi.Status
	lastWrite time.Time
	// gatewayErrs are the errors last logged per gateway.
	gatewayErrs  map[string]string
	writeFailing bool
}

// New checks o and returns a Reporter.
func New(o Options) (*Reporter, error) {
	if o.Hub == nil {
		return nil, errors.New("link status reporter: no hub client")
	}
	if o.Cluster == "" {
		return nil, errors.New("link status reporter: no cluster name")
	}
	for _, g := range o.Static {
		if err := checkAdminAddr(g.AdminAddr); err != nil {
			return nil, fmt.Errorf("link status reporter: static gateway %s: %w", g.name(), err)
		}
	}
	if o.Interval < 0 || o.Refresh < 0 || o.Timeout < 0 {
		return nil, errors.New("link status reporter: negative interval, refresh or timeout")
	}
	o.Interval = cmp.Or(o.Interval, DefaultInterval)
	o.Refresh = cmp.Or(o.Refresh, DefaultRefresh)
	o.Timeout = min(cmp.Or(o.Timeout, DefaultTimeout), o.Interval)
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Transport == nil {
		// Admin addresses are pod addresses inside the member: an
		// HTTP_PROXY from the environment must not apply.
		o.Transport = &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: o.Timeout}).DialContext,
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     2 * o.Interval,
		}
	}
	return &Reporter{
		o: o,
		http: &http.Client{
			Transport: o.Transport,
			Timeout:   o.Timeout,
			// A gateway's admin endpoint has no reason to redirect, and
			// following one would let it point the agent anywhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		key:         client.ObjectKey{Namespace: causewayv1alpha1.MemberNamespace(o.Cluster), Name: linkapi.StatusConfigMap},
		gatewayErrs: map[string]string{},
	}, nil
}

// Start reports every interval until ctx is done. It returns nil: failures
// are logged and retried at the next tick.
func (r *Reporter) Start(ctx context.Context) error {
	t := r.o.Clock.NewTicker(r.o.Interval)
	defer t.Stop()
	defer r.http.CloseIdleConnections()
	for {
		if err := r.tick(ctx); err != nil && ctx.Err() == nil {
			if !r.writeFailing {
				r.o.Logger.Error(err, "cannot publish link status on the hub; retrying every interval", "cluster", r.o.Cluster)
			}
			r.writeFailing = true
		} else if r.writeFailing && err == nil {
			r.o.Logger.Info("link status published on the hub again", "cluster", r.o.Cluster)
			r.writeFailing = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
	}
}

// tick runs one round: ask the gateways, decide, write if needed.
func (r *Reporter) tick(ctx context.Context) error {
	if !r.loaded {
		if err := r.load(ctx); err != nil {
			return err
		}
	}
	now := r.o.Clock.Now()
	next := r.collect(ctx, now)
	if err := ctx.Err(); err != nil {
		// Shutting down: the gateways' errors are ours, not theirs.
		return err
	}
	if !needWrite(r.last, r.lastWrite, next, now, r.o.Refresh) {
		return nil
	}
	if err := r.write(ctx, next); err != nil {
		return err
	}
	r.last, r.lastWrite = next, now
	return nil
}

// load reads the summary on the hub, if any, as the last written one.
func (r *Reporter) load(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, hubTimeout)
	defer cancel()
	var cm corev1.ConfigMap
	switch err := r.o.Hub.Get(ctx, r.key, &cm); {
	case apierrors.IsNotFound(err):
		r.last = nil
	case err != nil:
		return fmt.Errorf("read ConfigMap %s on the hub: %w", r.key, err)
	default:
		// A summary that does not decode (an older agent's, or damaged)
		// is simply replaced: last stays nil, which differs from any.
		st, err := linkapi.DecodeStatus([]byte(cm.Data[linkapi.StatusKey]))
		if err == nil {
			r.last, r.lastWrite = normalise(st), st.Updated
		} else {
			r.last, r.lastWrite = &linkapi.Status{}, time.Time{}
		}
	}
	r.loaded = true
	return nil
}

// collect asks every gateway for its links, concurrently.
func (r *Reporter) collect(ctx context.Context, now time.Time) *linkapi.Status {
	gws := r.gateways()
	st := &linkapi.Status{Cluster: r.o.Cluster, Updated: now.UTC().Truncate(time.Second), Gateways: make([]linkapi.GatewayReport, len(gws))}
	sem := make(chan struct{}, maxConcurrent)
	var wg sync.WaitGroup
	for i, g := range gws {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			st.Gateways[i] = r.ask(ctx, g)
		})
	}
	wg.Wait()
	for _, g := range st.Gateways {
		if g.Error != r.gatewayErrs[g.Node] {
			if g.Error != "" {
				r.o.Logger.Info("cannot read a gateway's links", "cluster", r.o.Cluster, "gateway", g.Node, "admin", g.Admin, "reason", g.Error)
			} else {
				r.o.Logger.Info("gateway's links readable again", "cluster", r.o.Cluster, "gateway", g.Node)
			}
		}
	}
	clear(r.gatewayErrs)
	for _, g := range st.Gateways {
		r.gatewayErrs[g.Node] = g.Error
	}
	return st
}

// gateways returns the gateways of Options.Gateways and Options.Static,
// one per name, sorted by name. A name given twice keeps its first
// non-empty admin address.
func (r *Reporter) gateways() []Gateway {
	var all []Gateway
	if r.o.Gateways != nil {
		all = append(all, r.o.Gateways()...)
	}
	all = append(all, r.o.Static...)
	byName := map[string]Gateway{}
	for _, g := range all {
		n := g.name()
		if n == "" {
			continue
		}
		if old, ok := byName[n]; !ok || old.AdminAddr == "" {
			byName[n] = Gateway{Node: n, AdminAddr: g.AdminAddr}
		}
	}
	out := make([]Gateway, 0, len(byName))
	for _, g := range byName {
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b Gateway) int { return cmp.Compare(a.Node, b.Node) })
	return out
}

// ask GETs one gateway's /links and turns every failure into the report's
// Error.
func (r *Reporter) ask(ctx context.Context, g Gateway) linkapi.GatewayReport {
	rep := linkapi.GatewayReport{Node: g.Node, Admin: g.AdminAddr, Links: []linkapi.Link{}}
	gl, err := r.get(ctx, g.AdminAddr)
	switch {
	case err != nil:
		rep.Error = truncate(err.Error())
	case gl.Cluster != r.o.Cluster:
		rep.Error = truncate(fmt.Sprintf("the gateway reports links of cluster %q, not %q", gl.Cluster, r.o.Cluster))
	default:
		rep.Links = normaliseLinks(gl.Links)
	}
	return rep
}

// get fetches and decodes GET http://addr/links.
func (r *Reporter) get(ctx context.Context, addr string) (*linkapi.GatewayLinks, error) {
	if addr == "" {
		return nil, errors.New("no admin address (xDS node metadata causeway.dev/admin)")
	}
	if err := checkAdminAddr(addr); err != nil {
		return nil, err
	}
	url := "http://" + addr + linkapi.LinksPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %s", url, describeFetchError(err, r.o.Timeout))
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: read the answer: %s", url, describeFetchError(err, r.o.Timeout))
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("GET %s: answer larger than %d bytes", url, maxBody)
	}
	gl, err := linkapi.DecodeGatewayLinks(body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: malformed answer: %w", url, err)
	}
	return gl, nil
}

// describeFetchError says why a GET failed in words that do not change
// from one attempt to the next (no ephemeral ports), so that a gateway
// that stays unreachable does not cause a write every interval.
func describeFetchError(err error, timeout time.Duration) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("no answer within %s", timeout)
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to host"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed before a complete answer"
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return "cannot resolve " + dns.Name
	}
	return err.Error()
}

// normaliseLinks sorts links, puts times in UTC and bounds error strings,
// so that equal reports compare and encode equal.
func normaliseLinks(in []linkapi.Link) []linkapi.Link {
	out := slices.Clone(in)
	if out == nil {
		out = []linkapi.Link{}
	}
	for i := range out {
		out[i].LastError = truncate(out[i].LastError)
		if !out[i].Since.IsZero() {
			out[i].Since = out[i].Since.UTC()
		}
	}
	slices.SortFunc(out, func(a, b linkapi.Link) int {
		return cmp.Or(cmp.Compare(a.Peer, b.Peer), cmp.Compare(a.Role, b.Role))
	})
	return out
}

// normalise normalises a summary read back from the hub.
func normalise(st *linkapi.Status) *linkapi.Status {
	out := *st
	out.Gateways = slices.Clone(st.Gateways)
	for i := range out.Gateways {
		out.Gateways[i].Links = normaliseLinks(out.Gateways[i].Links)
	}
	return &out
}

// truncate bounds s to maxErrorLen bytes, on a rune boundary.
func truncate(s string) string {
	if len(s) <= maxErrorLen {
		return s
	}
	cut := maxErrorLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// needWrite decides whether next must be written, given the summary on the
// hub (last, nil if none) written at lastWrite.
func needWrite(last *linkapi.Status, lastWrite time.Time, next *linkapi.Status, now time.Time, refresh time.Duration) bool {
	if last == nil {
		// Nothing on the hub: create it once there is something to say.
		return len(next.Gateways) > 0
	}
	if !sameShape(last, next) {
		return true
	}
	return len(next.Gateways) > 0 && now.Sub(lastWrite) >= refresh
}

// sameShape compares two summaries without their time, counters and RTTs.
func sameShape(a, b *linkapi.Status) bool {
	return a.Cluster == b.Cluster && slices.EqualFunc(a.Gateways, b.Gateways, func(x, y linkapi.GatewayReport) bool {
		return x.Node == y.Node && x.Admin == y.Admin && x.Error == y.Error && slices.EqualFunc(x.Links, y.Links, func(l, m linkapi.Link) bool {
			return l.Peer == m.Peer && l.Role == m.Role && l.State == m.State && l.Transport == m.Transport &&
				l.LastError == m.LastError && l.Since.Equal(m.Since)
		})
	})
}

// write creates or updates the ConfigMap with st.
func (r *Reporter) write(ctx context.Context, st *linkapi.Status) error {
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode link status: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, hubTimeout)
	defer cancel()
	var cm corev1.ConfigMap
	err = r.o.Hub.Get(ctx, r.key, &cm)
	switch {
	case apierrors.IsNotFound(err):
		cm = corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: r.key.Namespace, Name: r.key.Name},
			Data:       map[string]string{linkapi.StatusKey: string(data)},
		}
		if err := r.o.Hub.Create(ctx, &cm); err != nil {
			return fmt.Errorf("create ConfigMap %s on the hub: %w", r.key, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("read ConfigMap %s on the hub: %w", r.key, err)
	}
	if cm.Data[linkapi.StatusKey] == string(data) {
		return nil
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[linkapi.StatusKey] = string(data)
	if err := r.o.Hub.Update(ctx, &cm); err != nil {
		return fmt.Errorf("update ConfigMap %s on the hub: %w", r.key, err)
	}
	return nil
}
