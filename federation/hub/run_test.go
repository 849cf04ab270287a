package hub

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/federation/linkplan"
	"github.com/causeway-mesh/causeway/federation/trust"
)

// TestRunIssuesIntermediates runs the hub as causeway-hub does and checks
// that the trust and link plan reconcilers are wired: a member gets its
// intermediate CA and its link plan.
func TestRunIssuesIntermediates(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	c := directClient(t)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Config{REST: restConfig, MetricsAddr: "0", HealthAddr: "0"}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	create(ctx, t, c, &causewayv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "run-a"}})
	create(ctx, t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: causewayv1alpha1.MemberNamespace("run-a")}})
	eventually(t, "the member's intermediate CA and the trust bundle", func() error {
		var s corev1.Secret
		if err := c.Get(ctx, types.NamespacedName{Namespace: causewayv1alpha1.MemberNamespace("run-a"), Name: trust.MemberCASecretName}, &s); err != nil {
			return err
		}
		var cm corev1.ConfigMap
		if err := c.Get(ctx, types.NamespacedName{Namespace: causewayv1alpha1.MemberNamespace("run-a"), Name: linkplan.ConfigMapName}, &cm); err != nil {
			return err
		}
		if _, err := linkplan.Parse([]byte(cm.Data[linkplan.ConfigMapKey])); err != nil {
			return err
		}
		return c.Get(ctx, types.NamespacedName{Namespace: causewayv1alpha1.SystemNamespace, Name: trust.BundleConfigMapName}, &cm)
	})
}

func TestRunRefusesInvalidTrustSettings(t *testing.T) {
	err := Run(t.Context(), Config{REST: restConfig, MetricsAddr: "0", HealthAddr: "0", Trust: trust.Options{TrustDomain: "Not A Domain"}})
	if err == nil || !strings.Contains(err.Error(), `invalid trust domain "Not A Domain"`) {
		t.Errorf("Run = %v, want an invalid trust domain error", err)
	}
}
