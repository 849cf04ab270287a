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

package charts

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apimachinery/pkg/util/sets"
)

// wantCRDs is every CRD All returns, by name, with its group, kind and scope.
var wantCRDs = map[string]struct {
	group, kind string
	scope       apiextensionsv1.ResourceScope
}{
	"memberclusters.causeway.dev":               {"causeway.dev", "MemberCluster", apiextensionsv1.ClusterScoped},
	"trafficpolicies.causeway.dev":              {"causeway.dev", "TrafficPolicy", apiextensionsv1.NamespaceScoped},
	"failoverpolicies.causeway.dev":             {"causeway.dev", "FailoverPolicy", apiextensionsv1.NamespaceScoped},
	"authorizationpolicies.causeway.dev":        {"causeway.dev", "AuthorizationPolicy", apiextensionsv1.NamespaceScoped},
	"requestauthentications.causeway.dev":       {"causeway.dev", "RequestAuthentication", apiextensionsv1.NamespaceScoped},
	"meshconfigs.causeway.dev":                  {"causeway.dev", "MeshConfig", apiextensionsv1.ClusterScoped},
	"exportrecords.causeway.dev":                {"causeway.dev", "ExportRecord", apiextensionsv1.NamespaceScoped},
	"globalservices.causeway.dev":               {"causeway.dev", "GlobalService", apiextensionsv1.NamespaceScoped},
	"clusterproperties.about.k8s.io":            {"about.k8s.io", "ClusterProperty", apiextensionsv1.ClusterScoped},
	"serviceexports.multicluster.x-k8s.io":      {"multicluster.x-k8s.io", "ServiceExport", apiextensionsv1.NamespaceScoped},
	"serviceimports.multicluster.x-k8s.io":      {"multicluster.x-k8s.io", "ServiceImport", apiextensionsv1.NamespaceScoped},
	"httproutes.gateway.networking.k8s.io":      {"gateway.networking.k8s.io", "HTTPRoute", apiextensionsv1.NamespaceScoped},
	"grpcroutes.gateway.networking.k8s.io":      {"gateway.networking.k8s.io", "GRPCRoute", apiextensionsv1.NamespaceScoped},
	"referencegrants.gateway.networking.k8s.io": {"gateway.networking.k8s.io", "ReferenceGrant", apiextensionsv1.NamespaceScoped},
}

func TestAllDecodesEveryExpectedCRD(t *testing.T) {
	crds, err := All()
	if err != nil {
		t.Fatalf("All: %v", err)
	}
	seen := sets.New[string]()
	for _, crd := range crds {
		want, ok := wantCRDs[crd.Name]
		if !ok {
			t.Errorf("unexpected CRD %s", crd.Name)
			continue
		}
		if seen.Has(crd.Name) {
			t.Errorf("CRD %s returned twice", crd.Name)
		}
		seen.Insert(crd.Name)
		if crd.Spec.Group != want.group || crd.Spec.Names.Kind != want.kind || crd.Spec.Scope != want.scope {
			t.Errorf("CRD %s: group %q kind %q scope %q, want %q %q %q",
				crd.Name, crd.Spec.Group, crd.Spec.Names.Kind, crd.Spec.Scope, want.group, want.kind, want.scope)
		}
	}
	for name := range wantCRDs {
		if !seen.Has(name) {
			t.Errorf("CRD %s missing", name)
		}
	}
}

// TestGatewayAPICRDsAreExperimental checks that the copied Gateway API CRDs
// come from the experimental channel (HTTPRoute's retry field exists only
// there) and serve v1, the version the agent reads.
func TestGatewayAPICRDsAreExperimental(t *testing.T) {
	crds, err := GatewayAPICRDs()
	if err != nil {
		t.Fatalf("GatewayAPICRDs: %v", err)
	}
	if len(crds) != 3 {
		t.Fatalf("got %d CRDs, want HTTPRoute, GRPCRoute and ReferenceGrant", len(crds))
	}
	for _, crd := range crds {
		if got := crd.Annotations["gateway.networking.k8s.io/channel"]; got != "experimental" {
			t.Errorf("CRD %s: channel %q, want experimental", crd.Name, got)
		}
		servesV1 := false
		for _, v := range crd.Spec.Versions {
			servesV1 = servesV1 || (v.Name == "v1" && v.Served)
		}
		if !servesV1 {
			t.Errorf("CRD %s does not serve v1", crd.Name)
		}
		if crd.Spec.Names.Kind == "HTTPRoute" {
			rules := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["rules"].Items.Schema
			if _, ok := rules.Properties["retry"]; !ok {
				t.Errorf("HTTPRoute %s rules have no retry field", crd.Spec.Versions[0].Name)
			}
		}
	}
}

func TestCausewayCRDsFollowConventions(t *testing.T) {
	crds, err := CRDs()
	if err != nil {
		t.Fatalf("CRDs: %v", err)
	}
	for _, crd := range crds {
		t.Run(crd.Spec.Names.Kind, func(t *testing.T) {
			if len(crd.Spec.Versions) != 1 || crd.Spec.Versions[0].Name != "v1alpha1" {
				t.Fatalf("want exactly version v1alpha1, got %+v", crd.Spec.Versions)
			}
			v := crd.Spec.Versions[0]
			if crd.Spec.Group == "about.k8s.io" {
				// KEP-2149 defines ClusterProperty without status, and the
				// group is protected: the CRD must point at the approved KEP.
				if got := crd.Annotations[apiextensionsv1.KubeAPIApprovedAnnotation]; got != "https://github.com/kubernetes/enhancements/pull/3084" {
					t.Errorf("annotation %s = %q", apiextensionsv1.KubeAPIApprovedAnnotation, got)
				}
				return
			}
			if len(crd.Spec.Names.ShortNames) == 0 {
				t.Error("no short names")
			}
			if crd.Spec.Names.Kind == "ExportRecord" || crd.Spec.Names.Kind == "GlobalService" {
				// The hub's own bookkeeping, written only by Causeway: the
				// hub's verdict on a record is its Conflict condition, and a
				// GlobalService is pure derived state with no status.
				return
			}
			if v.Subresources == nil || v.Subresources.Status == nil {
				t.Error("no status subresource")
			}
			if !hasReadyColumn(v.AdditionalPrinterColumns) {
				t.Error("no Ready printer column")
			}
			status := v.Schema.OpenAPIV3Schema.Properties["status"]
			conditions, ok := status.Properties["conditions"]
			if !ok {
				t.Fatal("status has no conditions")
			}
			if conditions.XListType == nil || *conditions.XListType != "map" || strings.Join(conditions.XListMapKeys, ",") != "type" {
				t.Error("status.conditions is not a list map keyed by type")
			}
			if _, ok := status.Properties["observedGeneration"]; !ok {
				t.Error("status has no observedGeneration")
			}
		})
	}
}

func hasReadyColumn(columns []apiextensionsv1.CustomResourceColumnDefinition) bool {
	for _, c := range columns {
		if c.Name == "Ready" {
			return true
		}
	}
	return false
}

// TestCRDsPassAPIServerValidation runs the API server's own CRD validation
// on every CRD: the schemas must be structural, and every CEL rule must
// compile and fit the cost budget. It catches most of what would make the
// API server refuse a CRD without starting one.
func TestCRDsPassAPIServerValidation(t *testing.T) {
	crds, err := All()
	if err != nil {
		t.Fatalf("All: %v", err)
	}
	for _, crd := range crds {
		t.Run(crd.Name, func(t *testing.T) {
			versioned := crd.DeepCopy()
			apiextensionsv1.SetObjectDefaults_CustomResourceDefinition(versioned)
			internal := &apiextensions.CustomResourceDefinition{}
			if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(versioned, internal, nil); err != nil {
				t.Fatalf("convert to internal version: %v", err)
			}
			for _, v := range internal.Spec.Versions {
				// The conversion hoists a schema shared by all versions to
				// spec.validation.
				validation := internal.Spec.Validation
				if v.Schema != nil {
					validation = v.Schema
				}
				if validation == nil || validation.OpenAPIV3Schema == nil {
					t.Fatalf("version %s has no schema", v.Name)
				}
				structural, err := structuralschema.NewStructural(validation.OpenAPIV3Schema)
				if err != nil {
					t.Fatalf("version %s: schema is not structural: %v", v.Name, err)
				}
				if errs := structuralschema.ValidateStructural(nil, structural); len(errs) > 0 {
					t.Errorf("version %s: schema is not structural: %v", v.Name, errs.ToAggregate())
				}
			}
			if errs := apiextensionsvalidation.ValidateCustomResourceDefinition(context.Background(), internal); len(errs) > 0 {
				t.Errorf("CRD is invalid: %v", errs.ToAggregate())
			}
		})
	}
}

func TestDecodeCRDsErrorsNameTheSource(t *testing.T) {
	tests := map[string]string{
		"not YAML":              "kind: [",
		"not a CRD":             "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
		"unknown field":         "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: x\nspec:\n  bogus: 1\n",
		"no name":               "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n",
		"only comments":         "# nothing here\n",
		"second document wrong": "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: x\n---\nkind: Pod\n",
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := decodeCRDs("some/file.yaml", []byte(data))
			if err == nil {
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), "some/file.yaml") {
				t.Errorf("error %q does not name the source", err)
			}
		})
	}
}

func TestDecodeCRDsSkipsCommentDocuments(t *testing.T) {
	data := "# header\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: a.example.com\n---\n# trailer\n"
	crds, err := decodeCRDs("x", []byte(data))
	if err != nil {
		t.Fatalf("decodeCRDs: %v", err)
	}
	if len(crds) != 1 || crds[0].Name != "a.example.com" {
		t.Fatalf("got %d CRDs, want a.example.com alone", len(crds))
	}
}

// FuzzDecodeCRDs checks that the decoder never panics and that whatever it
// accepts is a named CRD.
func FuzzDecodeCRDs(f *testing.F) {
	f.Add([]byte("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: a.example.com\n"))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("kind: [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		crds, err := decodeCRDs("fuzz", data)
		if err != nil {
			return
		}
		for _, crd := range crds {
			if crd.Name == "" || crd.Kind != "CustomResourceDefinition" {
				t.Fatalf("accepted %+v", crd.TypeMeta)
			}
		}
	})
}
