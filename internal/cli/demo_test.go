package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/test/multicluster/world"
)

// syncBuffer is a bytes.Buffer safe for the demo's writer and the test's
// reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDemoPlayground runs the demo as a user would get it: a cluster set
// whose printed kubeconfig and contexts work with kubectl, echo pods that
// are real processes, and nothing left behind after Ctrl-C.
func TestDemoPlayground(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var out syncBuffer
	var pids []int
	var kubeconfig, dir string
	var checked bool
	o := &demoOptions{clusters: 2, ready: func(w *world.World) {
		defer cancel() // Ctrl-C, once the checks below are done
		kubeconfig, dir = w.Kubeconfig, w.Dir
		for _, p := range w.Procs() {
			pids = append(pids, p.PID())
		}
		bins, err := world.FindBinDir()
		if err != nil {
			t.Error(err)
			return
		}
		for _, c := range w.Clusters {
			got, err := exec.CommandContext(ctx, filepath.Join(bins, "kubectl"), "--kubeconfig", w.Kubeconfig, "--context", c.Name,
				"-n", demoNamespace, "get", "pods", "-o", "jsonpath={.items[*].status.phase}").CombinedOutput()
			if err != nil {
				t.Errorf("kubectl --context %s get pods: %v\n%s", c.Name, err, got)
				continue
			}
			if phases := strings.Fields(string(got)); len(phases) != demoReplicas || phases[0] != "Running" {
				t.Errorf("cluster %s: demo pod phases %q, want %d Running", c.Name, phases, demoReplicas)
			}
			// The sample is exported from every cluster and imported in each.
			got, err = exec.CommandContext(ctx, filepath.Join(bins, "kubectl"), "--kubeconfig", w.Kubeconfig, "--context", c.Name,
				"-n", demoNamespace, "get", "serviceimports", demoApp, "-o", "jsonpath={.status.clusters[*].cluster}").CombinedOutput()
			if err != nil || strings.TrimSpace(string(got)) != "c1 c2" {
				t.Errorf("cluster %s: ServiceImport %s/%s clusters = %q (err %v), want \"c1 c2\"", c.Name, demoNamespace, demoApp, got, err)
			}
		}
		checked = true
	}}
	if err := runDemo(ctx, &out, o); err != nil {
		t.Fatalf("demo: %v\noutput:\n%s", err, out.String())
	}
	if !checked {
		t.Fatalf("the demo returned without becoming ready; output:\n%s", out.String())
	}
	for _, want := range []string{"kubeconfig: " + kubeconfig, "c1 ", "c2 ", "kubectl --context c1 get nodes", "curl -H 'Host: echo.demo.svc.clusterset.local:8080' http://127.0.0.1:", "Press Ctrl-C", "Tearing down"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	// 2 clusters × 5 control-plane processes + 2 × 2 echo pods + the hub,
	// 2 agents and the proxy.
	if len(pids) != 18 {
		t.Errorf("demo ran %d processes, want 18", len(pids))
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("pid %d still exists after the demo ended", pid)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("demo directory %s still exists", dir)
	}
}

// TestDemoIdle: --idle brings up the joined cluster set with no sample.
func TestDemoIdle(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var out syncBuffer
	var members string
	o := &demoOptions{clusters: 2, idle: true, ready: func(w *world.World) {
		defer cancel()
		bins, err := world.FindBinDir()
		if err != nil {
			t.Error(err)
			return
		}
		got, err := exec.CommandContext(ctx, filepath.Join(bins, "kubectl"), "--kubeconfig", w.Kubeconfig, "--context", "c1",
			"get", "memberclusters", "-o", "jsonpath={.items[*].metadata.name}").CombinedOutput()
		if err != nil {
			t.Errorf("kubectl get memberclusters: %v\n%s", err, got)
		}
		members = string(got)
		if _, err := w.Clusters[1].Client.CoreV1().Namespaces().Get(ctx, demoNamespace, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("--idle created the sample namespace (err %v)", err)
		}
	}}
	if err := runDemo(ctx, &out, o); err != nil {
		t.Fatalf("demo --idle: %v\n%s", err, out.String())
	}
	if members != "c1 c2" {
		t.Errorf("member clusters on the hub = %q, want \"c1 c2\"", members)
	}
}

func TestDemoRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"demo", "--clusters", "0"}, {"demo", "--clusters", "51"}, {"demo", "extra"}} {
		root := NewRoot(&bytes.Buffer{}, &bytes.Buffer{})
		root.SetArgs(args)
		if err := root.ExecuteContext(t.Context()); err == nil {
			t.Errorf("causeway %s succeeded, want an error", strings.Join(args, " "))
		}
	}
}
