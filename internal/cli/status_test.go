package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/federation/linkplan"
	"github.com/causeway-mesh/causeway/federation/membership"
	"github.com/causeway-mesh/causeway/internal/linkapi"
)

func requireMatch(t *testing.T, out, re string) {
	t.Helper()
	if !regexp.MustCompile(re).MatchString(out) {
		t.Errorf("output does not match %s:\n%s", re, out)
	}
}

func TestPrintStatusTable(t *testing.T) {
	cases := map[string]struct {
		st   membership.Status
		want []string
	}{
		"empty": {
			want: []string{`(?m)^CLUSTERS\nNo member clusters\.$`, `(?m)^SERVICES\nNo multi-cluster services\.$`, `(?m)^LINKS\nNo cluster links\.$`},
		},
		"withdrawn exports and conflicts": {
			st: membership.Status{
				Clusters: []membership.ClusterStatus{
					{Name: "east", Region: "us-east-1", Joined: "True", Healthy: "False", LeaseAge: &metav1.Duration{Duration: 200 * time.Second}, Exports: 2, Imports: 1},
				},
				Services: []membership.ServiceStatus{{
					Namespace: "shop", Name: "cart", Type: "Headless",
					ExportedFrom: []membership.ExportingCluster{{Name: "east"}, {Name: "west", Withdrawn: true}},
					ImportedInto: []string{"east", "west"},
					Conflicts:    []membership.ExportConflict{{Cluster: "east", Reason: "PortConflict"}, {Cluster: "west", Reason: "TypeConflict"}},
				}},
			},
			want: []string{
				`(?m)^east +us-east-1 +True +False +3m20s +2 +1$`,
				`(?m)^shop/cart +Headless +east,west\(withdrawn\) +east,west +east:PortConflict,west:TypeConflict$`,
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			if err := printStatusTable(&out, &tc.st); err != nil {
				t.Fatal(err)
			}
			for _, re := range tc.want {
				requireMatch(t, out.String(), re)
			}
		})
	}
}

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func TestFormatBytesAndRTT(t *testing.T) {
	for n, want := range map[uint64]string{0: "0B", 1023: "1023B", 1024: "1.0KiB", 1536: "1.5KiB", 5 << 20: "5.0MiB", 3<<30 + 1<<29: "3.5GiB", math.MaxUint64: "16.0EiB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %s, want %s", n, got, want)
		}
	}
	for d, want := range map[time.Duration]string{850 * time.Microsecond: "850µs", 1234567 * time.Nanosecond: "1.2ms", 87654 * time.Microsecond: "87.7ms", 1500 * time.Millisecond: "1.5s"} {
		if got := formatRTT(d); got != want {
			t.Errorf("formatRTT(%s) = %s, want %s", d, got, want)
		}
	}
}

// TestStatusLinks writes link plans and link reports into a real hub as
// the hub and the agents would, and compares `causeway status`'s LINKS
// section with testdata/status-links.golden (-update rewrites it).
func TestStatusLinks(t *testing.T) {
	kubeconfig, clusters := startClusters(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	hub := adminClient(t, clusters["hub"])
	for _, m := range []string{"gl-a", "gl-b", "gl-c", "gl-d", "gl-e", "gl-f", "gl-g"} {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: causewayv1alpha1.MemberNamespace(m)}}
		if err := client.IgnoreAlreadyExists(hub.Create(ctx, ns)); err != nil {
			t.Fatal(err)
		}
	}
	cm := func(member, name, key, value string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: causewayv1alpha1.MemberNamespace(member), Name: name}, Data: map[string]string{key: value}}
	}
	plan := func(member, plan string) *corev1.ConfigMap {
		return cm(member, linkplan.ConfigMapName, linkplan.ConfigMapKey, plan)
	}
	report := func(member string, age time.Duration, gws ...linkapi.GatewayReport) *corev1.ConfigMap {
		b, err := json.Marshal(linkapi.Status{Cluster: member, Updated: time.Now().Add(-age).UTC().Truncate(time.Second), Gateways: gws})
		if err != nil {
			t.Fatal(err)
		}
		return cm(member, linkapi.StatusConfigMap, linkapi.StatusKey, string(b))
	}
	objs := []*corev1.ConfigMap{
		plan("gl-a", `{"cluster":"gl-a","peers":[{"cluster":"gl-b","role":"dial","addresses":["10.2.0.1:15443"],"transport":"QUIC"},`+
			`{"cluster":"gl-c","role":"dial","addresses":["10.3.0.1:15443"],"transport":"TCP"},{"cluster":"gl-d","role":"accept","transport":"QUIC"},`+
			`{"cluster":"gl-e","role":"accept","transport":"QUIC"},{"cluster":"gl-g","role":"accept","transport":"QUIC"}]}`),
		plan("gl-b", `{"cluster":"gl-b","peers":[{"cluster":"gl-a","role":"accept","transport":"QUIC"}]}`),
		plan("gl-d", `{"cluster":"gl-d","peers":[{"cluster":"gl-a","role":"dial","addresses":["10.1.0.1:15443"],"transport":"QUIC"}]}`),
		plan("gl-f", `{"cluster":"gl-f","peers":[{"cluster":"gl-a"}]}`),
		report("gl-a", 2*time.Second,
			linkapi.GatewayReport{Node: "gw-a", Admin: "10.1.0.9:15000", Links: []linkapi.Link{
				{Peer: "gl-b", Role: "dial", State: "up", Transport: "quic", RTTSeconds: 0.00123, OpenStreams: 3, BytesSent: 1536, BytesReceived: 3<<20 + 1<<19},
				{Peer: "gl-c", Role: "dial", State: "down", LastError: "dial tcp 10.3.0.1:15443:\n\tconnect: connection refused"},
				{Peer: "gl-d", Role: "accept", State: "up", Transport: "tcp", BytesSent: 10, BytesReceived: 20},
			}}),
		report("gl-d", 5*time.Minute, linkapi.GatewayReport{Node: "gw-d", Links: []linkapi.Link{
			{Peer: "gl-a", Role: "dial", State: "connecting", LastError: "handshake: timeout\nafter 3s"},
		}}),
		// gl-g's agent stopped reporting five minutes ago, and gl-a's
		// gateway does not list the link: the last known values, stale.
		report("gl-g", 5*time.Minute, linkapi.GatewayReport{Node: "gw-g", Links: []linkapi.Link{
			{Peer: "gl-a", Role: "dial", State: "up", Transport: "quic", RTTSeconds: 0.0876, OpenStreams: 1, BytesSent: 5 << 30, BytesReceived: 7},
		}}),
		report("gl-e", time.Second, linkapi.GatewayReport{Node: "gw-e", Admin: "10.5.0.9:15000", Error: "GET http://10.5.0.9:15000/links: connection refused", Links: []linkapi.Link{}}),
	}
	for _, obj := range objs {
		if err := hub.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = hub.Delete(context.WithoutCancel(ctx), obj) })
	}

	out, err := runCLI(ctx, "status", "--hub-context", "hub", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	i := strings.Index(out, "\nLINKS\n")
	if i < 0 {
		t.Fatalf("no LINKS section:\n%s", out)
	}
	got := out[i+1:]
	golden := filepath.Join("testdata", "status-links.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("LINKS section differs from %s (-update rewrites it)\n got:\n%s\nwant:\n%s", golden, got, want)
	}

	out, err = runCLI(ctx, "status", "--hub-context", "hub", "--kubeconfig", kubeconfig, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var st membership.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	if len(st.Links) != 5 || st.Links[0].From != "gl-a" || st.Links[0].To != "gl-b" || st.Links[0].BytesReceived != 3<<20+1<<19 ||
		st.Links[0].RTT == nil || st.Links[0].RTT.Duration != 1230*time.Microsecond || len(st.Warnings) != 1 {
		t.Errorf("status -o json links: %+v warnings %q", st.Links, st.Warnings)
	}
	out, err = runCLI(ctx, "status", "--hub-context", "hub", "--kubeconfig", kubeconfig, "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	st = membership.Status{}
	if err := yaml.UnmarshalStrict([]byte(out), &st); err != nil || len(st.Links) != 5 || st.Links[4].State != "stale" {
		t.Errorf("status -o yaml: %v %+v", err, st.Links)
	}
}
