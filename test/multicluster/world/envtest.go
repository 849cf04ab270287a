package world

import (
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

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
