package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"
)

// TestWaitValidSlowReads: when reads are slow (here, held back by the
// client's rate limiter) and the wait ends while one is pending, the user
// gets the timeout message, not an error about the read.
func TestWaitValidSlowReads(t *testing.T) {
	_, clusters := startClusters(t)
	ctx := t.Context()
	se := &mcsv1beta1.ServiceExport{ObjectMeta: metav1.ObjectMeta{Namespace: "slow", Name: "slow"}}
	mustCreate(ctx, t, adminClient(t, clusters["a"]), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "slow"}}, se)

	cfg := rest.CopyConfig(clusters["a"].env.Config)
	cfg.QPS, cfg.Burst = 0.5, 1 // the second read waits 2s, past the 1s wait
	slow, err := newMCSClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := slow.Get(ctx, client.ObjectKeyFromObject(se), &mcsv1beta1.ServiceExport{}); err != nil { // discovery, first token
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = waitValid(ctx, &out, slow, client.ObjectKeyFromObject(se), time.Second)
	if err == nil || !strings.Contains(err.Error(), "ServiceExport slow/slow has no Valid condition after 1s") {
		t.Errorf("got %v, want the timeout message", err)
	}
}
