package world

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/causeway-mesh/causeway/charts"
)

// StartEnvtest starts the light test world: one etcd and kube-apiserver on
// the host's loopback (controller-runtime's envtest), with the MCS and
// Causeway CRDs installed. Stop it with the returned environment's Stop.
func StartEnvtest() (*envtest.Environment, error) {
	dir, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	if err := requireBinaries(dir, binEtcd, binAPIServer); err != nil {
		return nil, err
	}
	crds, err := charts.All()
	if err != nil {
		return nil, fmt.Errorf("load CRDs: %w", err)
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		CRDs:                  crds,
		ErrorIfCRDPathMissing: true,
	}
	if _, err := env.Start(); err != nil {
		return nil, fmt.Errorf("start envtest: %w", err)
	}
	return env, nil
}

// RunEnvtest is a package TestMain's whole job for tests against one API
// server: it starts the light test world, hands its configuration to
// setup (which may fail the run), runs the tests, stops the world and
// returns the exit code for os.Exit. controller-runtime's logger is
// silenced. Under -test.fuzz it runs without a world: fuzz targets need
// none, and every fuzzing worker process would start its own.
func RunEnvtest(m *testing.M, setup func(*rest.Config) error) int {
	ctrllog.SetLogger(logr.Discard())
	flag.Parse()
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		return m.Run()
	}
	// envtest's default start timeout, 20 s, is too short on a loaded
	// 2-core machine running several test packages.
	if os.Getenv("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT") == "" {
		_ = os.Setenv("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT", "2m")
	}
	env, err := StartEnvtest()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v (run `make test-bins` to build etcd and kube-apiserver)\n", err)
		return 1
	}
	code := 1
	if err := setup(env.Config); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: set up: %v\n", err)
	} else {
		code = m.Run()
	}
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop envtest:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}
