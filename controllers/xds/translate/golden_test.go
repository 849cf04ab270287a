package translate_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/causeway-mesh/causeway/controllers/xds/translate"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the current output")

// TestGolden translates every testdata/*.yaml and compares the result with
// its .golden.json (regenerate with -update and review the diff). Every
// output is also checked for validity and snapshot consistency, and
// translating twice must give the same bytes.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			in, pods := loadInputs(t, file)
			before := deepCopyInputs(in)
			res := translate.Translate(in)
			checkResources(t, "proxy", res.Proxy)
			checkResources(t, "proxyless", res.Proxyless)
			checkResources(t, "gateway", res.Resources(translate.Gateway))
			for _, p := range pods {
				checkResources(t, "sidecar "+p.Name, sidecarResources(res, p))
			}
			if !reflect.DeepEqual(in, before) {
				t.Error("Translate modified its inputs")
			}
			got := goldenJSON(t, res, pods)
			if again := goldenJSON(t, translate.Translate(in), pods); !bytes.Equal(got, again) {
				t.Error("two translations of the same inputs differ")
			}
			golden := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s; run `go test ./controllers/xds/translate -run TestGolden -update` and review the diff", golden)
			}
		})
	}
}

// deepCopyInputs copies every object of the inputs.
func deepCopyInputs(in *translate.Inputs) *translate.Inputs {
	out := *in
	out.Services = nil
	for _, o := range in.Services {
		out.Services = append(out.Services, o.DeepCopy())
	}
	out.EndpointSlices = nil
	for _, o := range in.EndpointSlices {
		out.EndpointSlices = append(out.EndpointSlices, o.DeepCopy())
	}
	out.ServiceImports = nil
	for _, o := range in.ServiceImports {
		out.ServiceImports = append(out.ServiceImports, o.DeepCopy())
	}
	out.HTTPRoutes = nil
	for _, o := range in.HTTPRoutes {
		out.HTTPRoutes = append(out.HTTPRoutes, o.DeepCopy())
	}
	out.GRPCRoutes = nil
	for _, o := range in.GRPCRoutes {
		out.GRPCRoutes = append(out.GRPCRoutes, o.DeepCopy())
	}
	out.TrafficPolicies = nil
	for _, o := range in.TrafficPolicies {
		out.TrafficPolicies = append(out.TrafficPolicies, o.DeepCopy())
	}
	out.AuthorizationPolicies = nil
	for _, o := range in.AuthorizationPolicies {
		out.AuthorizationPolicies = append(out.AuthorizationPolicies, o.DeepCopy())
	}
	out.RequestAuthentications = nil
	for _, o := range in.RequestAuthentications {
		out.RequestAuthentications = append(out.RequestAuthentications, o.DeepCopy())
	}
	if in.LinkPlan != nil {
		p := *in.LinkPlan
		p.Peers = nil
		for _, peer := range in.LinkPlan.Peers {
			peer.Addresses = slices.Clone(peer.Addresses)
			p.Peers = append(p.Peers, peer)
		}
		out.LinkPlan = &p
	}
	return &out
}
