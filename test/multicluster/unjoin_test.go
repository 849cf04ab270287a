package multicluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/federation/membership"
)

// TestUnjoinWithdrawsAndRevokes: unjoining north withdraws what it
// exported from every other member and its hub credentials stop working at
// once; joining it again brings its exports back.
func TestUnjoinWithdrawsAndRevokes(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	ns := uniqueNS(t)
	exportEverywhere(t, ctx, "north", ns, "billing", 1)

	asNorth := asMember(t, ctx, "north")
	var recs causewayv1alpha1.ExportRecordList
	if err := asNorth.List(ctx, &recs, client.InNamespace(causewayv1alpha1.MemberNamespace("north"))); err != nil {
		t.Fatalf("north's credentials before unjoin: %v", err)
	}

	hub, north := w.Cluster("hub"), w.Cluster("north")
	if err := membership.Unjoin(ctx, hub.Config, north.Config, "north"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Put north back for the tests that follow, if the test failed
		// before it did.
		ctx := context.Background()
		var mc causewayv1alpha1.MemberCluster
		if err := clients["hub"].Get(ctx, client.ObjectKey{Name: "north"}, &mc); err == nil {
			return
		}
		_ = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			_, err := kube("hub").CoreV1().Namespaces().Get(ctx, causewayv1alpha1.MemberNamespace("north"), metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
		_ = membership.Join(ctx, membership.JoinOptions{Name: "north", Region: north.Region, Zone: north.Zone, Hub: hub.Config, Member: north.Config, HubServer: hub.InnerServer})
		cs.Agent("north").Stop()
		_ = cs.StartAgent("north")
	})
	for _, m := range []string{"east", "west"} {
		eventually(t, 20*time.Second, "north's export withdrawn from "+m, func(ctx context.Context) error {
			if _, err := getImport(ctx, m, ns, "billing"); !apierrors.IsNotFound(err) {
				return fmt.Errorf("import still there (err=%w)", err)
			}
			return nil
		})
	}
	eventually(t, 10*time.Second, "north's hub credentials revoked", func(ctx context.Context) error {
		err := asNorth.List(ctx, &recs, client.InNamespace(causewayv1alpha1.MemberNamespace("north")))
		if !apierrors.IsUnauthorized(err) && !apierrors.IsForbidden(err) {
			return fmt.Errorf("north's old token still answers: err=%w", err)
		}
		return nil
	})
	var mc causewayv1alpha1.MemberCluster
	if err := clients["hub"].Get(ctx, client.ObjectKey{Name: "north"}, &mc); !apierrors.IsNotFound(err) {
		t.Errorf("MemberCluster north after unjoin: err=%v", err)
	}

	// Join again once the old hub namespace is gone: new credentials, the
	// agent restarted, the export is back.
	eventually(t, time.Minute, "north's old hub namespace gone", func(ctx context.Context) error {
		_, err := kube("hub").CoreV1().Namespaces().Get(ctx, causewayv1alpha1.MemberNamespace("north"), metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there (err=%w)", err)
		}
		return nil
	})
	if err := membership.Join(ctx, membership.JoinOptions{Name: "north", Region: north.Region, Zone: north.Zone, Hub: hub.Config, Member: north.Config, HubServer: hub.InnerServer}); err != nil {
		t.Fatal(err)
	}
	cs.Agent("north").Stop()
	if err := cs.StartAgent("north"); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"east", "west"} {
		eventually(t, 30*time.Second, "north's export back in "+m, func(ctx context.Context) error {
			_, err := getImport(ctx, m, ns, "billing")
			return err
		})
	}
}
