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
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/causeway-mesh/causeway/internal/linkapi"
	"github.com/causeway-mesh/causeway/internal/scheme"
)

var t0 = time.Date(2026, 12, 1, 5, 0, 0, 0, time.UTC)

// gatewayServer is a real HTTP server on 127.0.0.1 that answers GET /links
// as a gateway's admin endpoint would, with what the test sets.
type gatewayServer struct {
	srv *httptest.Server

	mu     sync.Mutex
	code   int
	body   string
	header http.Header
	hang   bool
}

func newGatewayServer(t *testing.T, body string) *gatewayServer {
	t.Helper()
	g := &gatewayServer{code: http.StatusOK, body: body}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		code, body, hang, header := g.code, g.body, g.hang, g.header
		g.mu.Unlock()
		if r.URL.Path != linkapi.LinksPath || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		if hang {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return
		}
		for k, v := range header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *gatewayServer) addr() string { return g.srv.Listener.Addr().String() }

func (g *gatewayServer) set(code int, body string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.code, g.body = code, body
}

// links encodes a /links answer.
func links(t *testing.T, cluster string, ls ...linkapi.Link) string {
	t.Helper()
	if ls == nil {
		ls = []linkapi.Link{}
	}
	b, err := json.Marshal(linkapi.GatewayLinks{Cluster: cluster, Links: ls})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// readStatus returns the member's summary on the hub and the ConfigMap's
// resourceVersion; nil and "" if there is none.
func readStatus(ctx context.Context, t *testing.T, cluster string) (*linkapi.Status, string) {
	t.Helper()
	var cm corev1.ConfigMap
	err := hub.Get(ctx, client.ObjectKey{Namespace: "causeway-member-" + cluster, Name: linkapi.StatusConfigMap}, &cm)
	if apierrors.IsNotFound(err) {
		return nil, ""
	}
	if err != nil {
		t.Fatal(err)
	}
	st, err := linkapi.DecodeStatus([]byte(cm.Data[linkapi.StatusKey]))
	if err != nil {
		t.Fatalf("the summary on the hub does not decode: %v\n%s", err, cm.Data[linkapi.StatusKey])
	}
	return st, cm.ResourceVersion
}

func newReporter(t *testing.T, o Options) *Reporter {
	t.Helper()
	if o.Hub == nil {
		o.Hub = hub
	}
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustTick(ctx context.Context, t *testing.T, r *Reporter) {
	t.Helper()
	if err := r.tick(ctx); err != nil {
		t.Fatalf("tick: %v", err)
	}
}

// TestReporterWritesOnlyOnChange: a gateway's links reach the hub; counters
// alone are written only after the refresh interval, a state change at
// once, a gateway that goes away is removed.
func TestReporterWritesOnlyOnChange(t *testing.T) {
	ctx := testContext(t)
	memberNamespace(ctx, t, "w1")
	up := linkapi.Link{Peer: "a", Role: linkapi.RoleDial, State: linkapi.StateUp, Transport: linkapi.TransportQUIC,
		RTTSeconds: 0.0012, OpenStreams: 3, BytesSent: 123, BytesReceived: 456, Since: t0.Add(-time.Hour).In(time.FixedZone("x", 7200))}
	accept := linkapi.Link{Peer: "c", Role: linkapi.RoleAccept, State: linkapi.StateDown, LastError: "no connection from the peer"}
	gw1 := newGatewayServer(t, links(t, "w1", up))
	gw2 := newGatewayServer(t, links(t, "w1", accept))

	var mu sync.Mutex
	dynamic := []Gateway{{Node: "gateway~10.1.0.5~gw-1.causeway-system~causeway-system.svc.cluster.local", AdminAddr: gw1.addr()}}
	clk := clocktesting.NewFakeClock(t0)
	r := newReporter(t, Options{
		Cluster: "w1", Clock: clk, Static: []Gateway{{AdminAddr: gw2.addr()}},
		Gateways: func() []Gateway { mu.Lock(); defer mu.Unlock(); return dynamic },
	})

	mustTick(ctx, t, r)
	st, rv := readStatus(ctx, t, "w1")
	if st == nil {
		t.Fatal("no summary on the hub after the first round")
	}
	wantUp := up
	wantUp.Since = up.Since.UTC()
	want := &linkapi.Status{Cluster: "w1", Updated: t0, Gateways: []linkapi.GatewayReport{
		{Node: gw2.addr(), Admin: gw2.addr(), Links: []linkapi.Link{accept}},
		{Node: dynamic[0].Node, Admin: gw1.addr(), Links: []linkapi.Link{wantUp}},
	}}
	if g, w := mustJSON(t, st), mustJSON(t, want); g != w {
		t.Errorf("summary\n got %s\nwant %s", g, w)
	}

	// Nothing changed: no write.
	clk.Step(5 * time.Second)
	mustTick(ctx, t, r)
	if _, rv2 := readStatus(ctx, t, "w1"); rv2 != rv {
		t.Errorf("an unchanged round wrote (resourceVersion %s → %s)", rv, rv2)
	}

	// Counters and RTT only: not written before the refresh is due.
	busier := up
	busier.BytesSent, busier.BytesReceived, busier.RTTSeconds, busier.OpenStreams = 9000, 8000, 0.0031, 7
	gw1.set(http.StatusOK, links(t, "w1", busier))
	clk.Step(5 * time.Second)
	mustTick(ctx, t, r)
	if st2, rv2 := readStatus(ctx, t, "w1"); rv2 != rv || st2.Gateways[1].Links[0].BytesSent != 123 {
		t.Errorf("counters alone were written before the refresh (resourceVersion %s → %s)", rv, rv2)
	}
	clk.Step(20 * time.Second) // 30 s since the write
	mustTick(ctx, t, r)
	st, rv2 := readStatus(ctx, t, "w1")
	if rv2 == rv || st.Gateways[1].Links[0].BytesSent != 9000 || st.Gateways[1].Links[0].OpenStreams != 7 || !st.Updated.Equal(t0.Add(30*time.Second)) {
		t.Errorf("the refresh did not write the counters: %s", mustJSON(t, st))
	}
	rv = rv2

	// A state change is written at once.
	down := busier
	down.State, down.LastError, down.Since = linkapi.StateDown, "idle timeout: no keepalive answer in 3s", t0.Add(31*time.Second)
	gw1.set(http.StatusOK, links(t, "w1", down))
	clk.Step(time.Second)
	mustTick(ctx, t, r)
	st, rv2 = readStatus(ctx, t, "w1")
	if rv2 == rv || st.Gateways[1].Links[0].State != linkapi.StateDown || st.Gateways[1].Links[0].LastError != down.LastError {
		t.Errorf("a state change was not written: %s", mustJSON(t, st))
	}
	rv = rv2

	// The dynamic gateway goes away: written at once.
	mu.Lock()
	dynamic = nil
	mu.Unlock()
	clk.Step(time.Second)
	mustTick(ctx, t, r)
	st, rv2 = readStatus(ctx, t, "w1")
	if rv2 == rv || len(st.Gateways) != 1 || st.Gateways[0].Node != gw2.addr() {
		t.Errorf("a gateway that went away is still reported: %s", mustJSON(t, st))
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReporterReportsBrokenGateways: every way a gateway can fail to
// answer is an entry with an error next to the gateways that answered,
// and the same failures again write nothing.
func TestReporterReportsBrokenGateways(t *testing.T) {
	ctx := testContext(t)
	memberNamespace(ctx, t, "w2")
	good := newGatewayServer(t, links(t, "w2", linkapi.Link{Peer: "a", Role: linkapi.RoleDial, State: linkapi.StateUp, Transport: linkapi.TransportTCP}))
	malformed := newGatewayServer(t, `{"cluster":"w2","links":[{"peer":"a","role":"dial","state":"sideways"}]}`)
	notJSON := newGatewayServer(t, `<html>admin</html>`)
	truncated := newGatewayServer(t, links(t, "w2", linkapi.Link{Peer: "a", Role: linkapi.RoleDial, State: linkapi.StateUp})[:30])
	failing := newGatewayServer(t, "")
	failing.set(http.StatusServiceUnavailable, "draining")
	redirect := newGatewayServer(t, "")
	redirect.set(http.StatusFound, "")
	redirect.mu.Lock()
	redirect.header = http.Header{"Location": {"http://" + good.addr() + "/links"}}
	redirect.mu.Unlock()
	other := newGatewayServer(t, links(t, "elsewhere"))
	huge := newGatewayServer(t, `{"cluster":"w2","links":[]}`+strings.Repeat(" ", maxBody))
	slow := newGatewayServer(t, "")
	slow.mu.Lock()
	slow.hang = true
	slow.mu.Unlock()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := ln.Addr().String()
	_ = ln.Close()

	gws := []Gateway{
		{Node: "good", AdminAddr: good.addr()},
		{Node: "malformed", AdminAddr: malformed.addr()},
		{Node: "not-json", AdminAddr: notJSON.addr()},
		{Node: "truncated", AdminAddr: truncated.addr()},
		{Node: "failing", AdminAddr: failing.addr()},
		{Node: "redirect", AdminAddr: redirect.addr()},
		{Node: "other-cluster", AdminAddr: other.addr()},
		{Node: "huge", AdminAddr: huge.addr()},
		{Node: "slow", AdminAddr: slow.addr()},
		{Node: "refused", AdminAddr: refused},
		{Node: "no-admin"},
		{Node: "bad-admin", AdminAddr: "http://10.0.0.1:15000/"},
	}
	clk := clocktesting.NewFakeClock(t0)
	r := newReporter(t, Options{Cluster: "w2", Clock: clk, Timeout: 300 * time.Millisecond, Gateways: func() []Gateway { return gws }})
	mustTick(ctx, t, r)
	st, rv := readStatus(ctx, t, "w2")
	if st == nil {
		t.Fatal("no summary on the hub")
	}
	wantErr := map[string]string{
		"good":          "",
		"malformed":     `malformed answer: link report of cluster w2: link 0: peer a: unknown state "sideways"`,
		"not-json":      "malformed answer: decode link report: invalid character '<'",
		"truncated":     "malformed answer: decode link report: unexpected end of JSON input",
		"failing":       "HTTP 503 Service Unavailable",
		"redirect":      "HTTP 302 Found",
		"other-cluster": `the gateway reports links of cluster "elsewhere", not "w2"`,
		"huge":          "answer larger than 1048576 bytes",
		"slow":          "no answer within 300ms",
		"refused":       "GET http://" + refused + "/links: connection refused",
		"no-admin":      "no admin address (xDS node metadata causeway.dev/admin)",
		"bad-admin":     `admin address "http://10.0.0.1:15000/" is not host:port`,
	}
	if len(st.Gateways) != len(wantErr) {
		t.Fatalf("%d gateways reported, want %d: %s", len(st.Gateways), len(wantErr), mustJSON(t, st))
	}
	for _, g := range st.Gateways {
		want, ok := wantErr[g.Node]
		switch {
		case !ok:
			t.Errorf("unexpected gateway %s", g.Node)
		case want == "" && (g.Error != "" || len(g.Links) != 1 || g.Links[0].Transport != linkapi.TransportTCP):
			t.Errorf("gateway %s: error %q, links %+v", g.Node, g.Error, g.Links)
		case want != "" && (!strings.Contains(g.Error, want) || len(g.Links) != 0):
			t.Errorf("gateway %s: error %q (want it to contain %q), links %+v", g.Node, g.Error, want, g.Links)
		}
	}

	// The same failures again: the errors read the same, nothing is
	// written.
	clk.Step(5 * time.Second)
	mustTick(ctx, t, r)
	if _, rv2 := readStatus(ctx, t, "w2"); rv2 != rv {
		st2, _ := readStatus(ctx, t, "w2")
		t.Errorf("the same failures were written again (resourceVersion %s → %s):\n%s\n%s", rv, rv2, mustJSON(t, st), mustJSON(t, st2))
	}
}

// TestReporterRestart: a new Reporter (a restarted agent) writes nothing
// while the summary on the hub is current, and replaces one that does not
// decode.
func TestReporterRestart(t *testing.T) {
	ctx := testContext(t)
	memberNamespace(ctx, t, "w3")
	gw := newGatewayServer(t, links(t, "w3", linkapi.Link{Peer: "a", Role: linkapi.RoleAccept, State: linkapi.StateUp, Transport: linkapi.TransportQUIC, BytesSent: 1}))
	gws := func() []Gateway { return []Gateway{{Node: "gw", AdminAddr: gw.addr()}} }
	clk := clocktesting.NewFakeClock(t0.Add(500 * time.Millisecond))
	mustTick(ctx, t, newReporter(t, Options{Cluster: "w3", Clock: clk, Gateways: gws}))
	_, rv := readStatus(ctx, t, "w3")
	if rv == "" {
		t.Fatal("no summary written")
	}

	gw.set(http.StatusOK, links(t, "w3", linkapi.Link{Peer: "a", Role: linkapi.RoleAccept, State: linkapi.StateUp, Transport: linkapi.TransportQUIC, BytesSent: 2}))
	clk.Step(10 * time.Second)
	restarted := newReporter(t, Options{Cluster: "w3", Clock: clk, Gateways: gws})
	mustTick(ctx, t, restarted)
	if _, rv2 := readStatus(ctx, t, "w3"); rv2 != rv {
		t.Errorf("a restarted reporter wrote an unchanged summary (resourceVersion %s → %s)", rv, rv2)
	}
	clk.Step(20 * time.Second) // 30.5 s since the write, 30 s since its truncated time
	mustTick(ctx, t, restarted)
	if st, rv2 := readStatus(ctx, t, "w3"); rv2 == rv || st.Gateways[0].Links[0].BytesSent != 2 {
		t.Errorf("the restarted reporter did not refresh: %s", mustJSON(t, st))
	}

	// A damaged summary is replaced at the first round.
	memberNamespace(ctx, t, "w4")
	if err := hub.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "causeway-member-w4", Name: linkapi.StatusConfigMap},
		Data:       map[string]string{linkapi.StatusKey: `{"cluster":`},
	}); err != nil {
		t.Fatal(err)
	}
	mustTick(ctx, t, newReporter(t, Options{Cluster: "w4", Clock: clk, Gateways: func() []Gateway { return []Gateway{{Node: "gw"}} }}))
	if st, _ := readStatus(ctx, t, "w4"); st == nil || len(st.Gateways) != 1 || st.Gateways[0].Error == "" {
		t.Errorf("the damaged summary was not replaced: %+v", st)
	}
}

// TestReporterWithoutGateways: a member without gateways gets no
// ConfigMap; once it had one, losing the last is written, and nothing is
// refreshed after that.
func TestReporterWithoutGateways(t *testing.T) {
	ctx := testContext(t)
	memberNamespace(ctx, t, "w5")
	clk := clocktesting.NewFakeClock(t0)
	var gws []Gateway
	r := newReporter(t, Options{Cluster: "w5", Clock: clk, Gateways: func() []Gateway { return gws }})
	mustTick(ctx, t, r)
	if st, _ := readStatus(ctx, t, "w5"); st != nil {
		t.Fatalf("a member without gateways got a summary: %+v", st)
	}
	gws = []Gateway{{Node: "gw", AdminAddr: "127.0.0.1:1"}}
	clk.Step(5 * time.Second)
	mustTick(ctx, t, r)
	if st, _ := readStatus(ctx, t, "w5"); st == nil || len(st.Gateways) != 1 || !strings.Contains(st.Gateways[0].Error, "connection refused") {
		t.Fatalf("the unreachable gateway is not reported: %+v", st)
	}
	gws = nil
	clk.Step(5 * time.Second)
	mustTick(ctx, t, r)
	st, rv := readStatus(ctx, t, "w5")
	if st == nil || len(st.Gateways) != 0 {
		t.Fatalf("the gateway's departure is not written: %+v", st)
	}
	clk.Step(time.Minute)
	mustTick(ctx, t, r)
	if _, rv2 := readStatus(ctx, t, "w5"); rv2 != rv {
		t.Errorf("a summary without gateways was refreshed")
	}
}

// The agent's hub Role rules for link status (see the package
// documentation), in two variants: createRules let the agent create the
// ConfigMap; byNameRules allow only the one name, and `causeway join`
// creates the ConfigMap (empty) beforehand.
var (
	byNameRules = []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{linkapi.StatusConfigMap}, Verbs: []string{"get", "update"}},
	}
	createRules = append([]rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"create"}},
	}, byNameRules...)
)

// TestReporterRBAC runs the reporter as a ServiceAccount bound to the
// rules in its own hub namespace only: it publishes there, and may neither
// publish in another member's namespace nor change another ConfigMap in
// its own.
func TestReporterRBAC(t *testing.T) {
	for name, tc := range map[string]struct {
		member     string
		rules      []rbacv1.PolicyRule
		preCreated bool
	}{
		"create allowed":      {member: "rb-create", rules: createRules},
		"pre-created by join": {member: "rb-name", rules: byNameRules, preCreated: true},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := testContext(t)
			ns := memberNamespace(ctx, t, tc.member)
			otherNS := memberNamespace(ctx, t, tc.member+"-other")
			objs := []client.Object{
				&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "agent"}, Rules: tc.rules},
				&rbacv1.RoleBinding{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "agent"},
					RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "agent"},
					Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "agent"}},
				},
			}
			unrelated := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "causeway-link-plan"}, Data: map[string]string{"plan.json": "{}"}}
			objs = append(objs, unrelated)
			if tc.preCreated {
				objs = append(objs, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: linkapi.StatusConfigMap}})
			}
			agent := serviceAccountClient(ctx, t, ns, "agent", objs...)

			gw := newGatewayServer(t, links(t, tc.member, linkapi.Link{Peer: "a", Role: linkapi.RoleDial, State: linkapi.StateConnecting}))
			gws := func() []Gateway { return []Gateway{{Node: "gw", AdminAddr: gw.addr()}} }
			clk := clocktesting.NewFakeClock(t0)
			r := newReporter(t, Options{Hub: agent, Cluster: tc.member, Clock: clk, Gateways: gws})
			// RBAC takes effect asynchronously after the binding is
			// created.
			deadline := time.Now().Add(10 * time.Second)
			for err := r.tick(ctx); err != nil; err = r.tick(ctx) {
				if time.Now().After(deadline) {
					t.Fatalf("the reporter cannot publish with the agent's rules: %v", err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if st, _ := readStatus(ctx, t, tc.member); st == nil || st.Gateways[0].Links[0].State != linkapi.StateConnecting {
				t.Fatalf("summary %+v", st)
			}
			gw.set(http.StatusOK, links(t, tc.member, linkapi.Link{Peer: "a", Role: linkapi.RoleDial, State: linkapi.StateUp}))
			clk.Step(5 * time.Second)
			mustTick(ctx, t, r) // the update is allowed too
			if st, _ := readStatus(ctx, t, tc.member); st.Gateways[0].Links[0].State != linkapi.StateUp {
				t.Fatalf("summary not updated: %+v", st)
			}

			// The same credentials posing as another member: refused.
			if err := newReporter(t, Options{Hub: agent, Cluster: tc.member + "-other", Clock: clk, Gateways: gws}).tick(ctx); !apierrors.IsForbidden(err) {
				t.Errorf("publishing in %s: got %v, want Forbidden", otherNS, err)
			}
			// Another ConfigMap in its own namespace: refused.
			unrelated.Data["plan.json"] = `{"cluster":"x","peers":[]}`
			if err := agent.Update(ctx, unrelated); !apierrors.IsForbidden(err) {
				t.Errorf("updating ConfigMap %s/%s: got %v, want Forbidden", ns, unrelated.Name, err)
			}
			if !tc.preCreated {
				return
			}
			// Without create, the agent cannot make the ConfigMap again.
			if err := hub.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: linkapi.StatusConfigMap}}); err != nil {
				t.Fatal(err)
			}
			gw.set(http.StatusOK, links(t, tc.member, linkapi.Link{Peer: "a", Role: linkapi.RoleDial, State: linkapi.StateDown}))
			if err := r.tick(ctx); !apierrors.IsForbidden(err) {
				t.Errorf("re-creating the deleted ConfigMap: got %v, want Forbidden", err)
			}
		})
	}
}

// serviceAccountClient creates ServiceAccount ns/name and objs (its RBAC)
// on the hub and returns a client that authenticates as it.
func serviceAccountClient(ctx context.Context, t *testing.T, ns, name string, objs ...client.Object) client.Client {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	for _, obj := range append([]client.Object{sa}, objs...) {
		if err := hub.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	tr := &authenticationv1.TokenRequest{}
	if err := hub.SubResource("token").Create(ctx, sa, tr); err != nil {
		t.Fatal(err)
	}
	cfg := rest.AnonymousClientConfig(hubConfig)
	cfg.BearerToken = tr.Status.Token
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestStart runs the loop on the real clock until the summary appears,
// and stops it.
func TestStart(t *testing.T) {
	ctx := testContext(t)
	memberNamespace(ctx, t, "w6")
	gw := newGatewayServer(t, links(t, "w6"))
	r := newReporter(t, Options{Cluster: "w6", Interval: 20 * time.Millisecond, Static: []Gateway{{AdminAddr: gw.addr()}}})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Start(runCtx) }()
	deadline := time.Now().Add(20 * time.Second)
	for st, _ := readStatus(ctx, t, "w6"); st == nil; st, _ = readStatus(ctx, t, "w6") {
		if time.Now().After(deadline) {
			t.Fatal("no summary within 20 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Start: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Start did not return after its context ended")
	}
}
