package multicluster_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/causeway-mesh/causeway/internal/scheme"
	"github.com/causeway-mesh/causeway/test/multicluster/clusterset"
	"github.com/causeway-mesh/causeway/test/multicluster/world"
)

// The scenarios share one world: a hub cluster and three members, with
// short leases so member loss is quick to see.
const (
	leaseDuration = 3 * time.Second
	gracePeriod   = 3 * time.Second
)

var (
	w       *world.World
	cs      *clusterset.ClusterSet
	members = []string{"east", "west", "north"}
	// clients are controller-runtime clients of each cluster, by name.
	clients = map[string]client.Client{}
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	var err error
	start := time.Now()
	w, err = world.Start(ctx, world.Options{
		HandleSignals: true,
		Clusters: []world.ClusterSpec{
			{Name: "hub", Region: "hub-region"},
			{Name: "east", Region: "us-east", Zone: "us-east-1a"},
			{Name: "west", Region: "us-west", Zone: "us-west-2b"},
			{Name: "north", Region: "ca-central", Zone: "ca-central-1a"},
		},
	})
	if err == nil {
		fmt.Fprintf(os.Stderr, "test world: 4 clusters ready in %s\n", time.Since(start).Round(10*time.Millisecond))
		cs, err = clusterset.Start(ctx, w, clusterset.Options{Hub: "hub", Members: members, LeaseDuration: leaseDuration, GracePeriod: gracePeriod})
	}
	if err == nil {
		for _, c := range w.Clusters {
			cl, cerr := client.New(c.Config, client.Options{Scheme: scheme.New()})
			if cerr != nil {
				err = cerr
				break
			}
			clients[c.Name] = cl
		}
	}
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "start the cluster set: %v\n", err)
		if w != nil {
			_ = w.Stop()
		}
		os.Exit(1)
	}
	code := m.Run()
	if err := w.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "processes of the world died during the tests: %v\n", err)
		code = 1
	}
	if err := w.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stop test world: %v\n", err)
		code = 1
	}
	os.Exit(code)
}

func kube(name string) kubernetes.Interface { return w.Cluster(name).Client }

func testContext(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}
