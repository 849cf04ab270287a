package cli

import (
	"bytes"
	"regexp"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/federation/membership"
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
			want: []string{`(?m)^CLUSTERS\nNo member clusters\.$`, `(?m)^SERVICES\nNo multi-cluster services\.$`},
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
