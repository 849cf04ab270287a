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

package certmanagercrds

import (
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// TestCRDs checks that the embedded manifests decode to exactly the four
// cert-manager.io CRDs, each serving and storing v1, the version the
// typed clientset speaks. That the API server accepts them is shown by
// test/certmanager's users, which install them on a real one.
func TestCRDs(t *testing.T) {
	want := map[string]struct {
		kind  string
		scope apiextensionsv1.ResourceScope
	}{
		"certificates.cert-manager.io":        {"Certificate", apiextensionsv1.NamespaceScoped},
		"certificaterequests.cert-manager.io": {"CertificateRequest", apiextensionsv1.NamespaceScoped},
		"issuers.cert-manager.io":             {"Issuer", apiextensionsv1.NamespaceScoped},
		"clusterissuers.cert-manager.io":      {"ClusterIssuer", apiextensionsv1.ClusterScoped},
	}
	crds, err := CRDs()
	if err != nil {
		t.Fatalf("CRDs: %v", err)
	}
	if len(crds) != len(want) {
		t.Errorf("got %d CRDs, want %d", len(crds), len(want))
	}
	for _, crd := range crds {
		w, ok := want[crd.Name]
		if !ok {
			t.Errorf("unexpected CRD %s", crd.Name)
			continue
		}
		delete(want, crd.Name)
		if crd.Spec.Group != "cert-manager.io" || crd.Spec.Names.Kind != w.kind || crd.Spec.Scope != w.scope {
			t.Errorf("CRD %s: group %s kind %s scope %s", crd.Name, crd.Spec.Group, crd.Spec.Names.Kind, crd.Spec.Scope)
		}
		if len(crd.Spec.Versions) != 1 || crd.Spec.Versions[0].Name != "v1" || !crd.Spec.Versions[0].Served || !crd.Spec.Versions[0].Storage {
			t.Errorf("CRD %s: versions %+v, want v1 served and stored", crd.Name, crd.Spec.Versions)
		}
	}
	for name := range want {
		t.Errorf("CRD %s missing", name)
	}
}
