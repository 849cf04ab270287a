package world

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Binaries the world runs, and the make target that builds each.
const (
	binEtcd       = "etcd"
	binAPIServer  = "kube-apiserver"
	binKCM        = "kube-controller-manager"
	binScheduler  = "kube-scheduler"
	binKwok       = "kwok"
	fileKwokStage = "kwok-stages.yaml"
	binEcho       = "causeway-echo"
	binFortio     = "fortio"
)

var makeTargetFor = map[string]string{
	binEtcd:       "make test-bins",
	binAPIServer:  "make test-bins",
	binKCM:        "make test-bins",
	binScheduler:  "make test-bins",
	binKwok:       "make test-bins",
	fileKwokStage: "make test-bins",
	binFortio:     "make test-bins",
	binEcho:       "make build",
}

// ErrMissingBinary is wrapped by errors about binaries that are not built.
var ErrMissingBinary = errors.New("missing binary")

// FindBinDir returns the directory holding the world's binaries: the
// CAUSEWAY_BIN_DIR environment variable if set, else the directory of the
// running executable if it holds kube-apiserver (an installed causeway CLI),
// else bin/ at the root of the Causeway module containing the working
// directory (tests).
func FindBinDir() (string, error) {
	if d := os.Getenv("CAUSEWAY_BIN_DIR"); d != "" {
		return filepath.Abs(d)
	}
	if exe, err := os.Executable(); err == nil {
		d := filepath.Dir(exe)
		if _, err := os.Stat(filepath.Join(d, binAPIServer)); err == nil {
			return d, nil
		}
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "bin"), nil
}

// ModuleRoot walks up from the working directory to the directory whose
// go.mod declares the Causeway module.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("get working directory: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/causeway-mesh/causeway\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the Causeway module root above the working directory; set CAUSEWAY_BIN_DIR to the directory holding the test binaries")
		}
		dir = parent
	}
}

// requireBinaries checks that every named file exists in dir, and names the
// make target that builds the missing ones.
func requireBinaries(dir string, names ...string) error {
	var errs []error
	for _, n := range names {
		p := filepath.Join(dir, n)
		if _, err := os.Stat(p); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s not found; run `%s`", ErrMissingBinary, p, makeTargetFor[n]))
		}
	}
	return errors.Join(errs...)
}
