package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// unreachableKubeconfig has contexts hub and a whose servers refuse
// connections: bad input must be refused before any cluster is contacted.
const unreachableKubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster:
    server: https://127.0.0.1:1
users:
- name: nobody
  user:
    token: t
contexts:
- name: hub
  context: {cluster: nowhere, user: nobody}
- name: a
  context: {cluster: nowhere, user: nobody}
current-context: a
`

// TestBadInput checks that wrong flags and arguments give clear errors
// (and no panic) without touching a cluster.
func TestBadInput(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(unreachableKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		args []string
		want string
	}{
		"join without --hub-context":   {args: []string{"join", "a", "--context", "a"}, want: `required flag(s) "hub-context" not set`},
		"join without --context":       {args: []string{"join", "a", "--hub-context", "hub"}, want: `required flag(s) "context" not set`},
		"join without a name":          {args: []string{"join", "--hub-context", "hub", "--context", "a"}, want: "join takes exactly one argument, the cluster name; got 0"},
		"join with an invalid name":    {args: []string{"join", "Bad_Name", "--hub-context", "hub", "--context", "a"}, want: `invalid cluster name "Bad_Name": a lowercase RFC 1123 label`},
		"join with a too long name":    {args: []string{"join", strings.Repeat("n", 48), "--hub-context", "hub", "--context", "a"}, want: "must be no more than 47 characters"},
		"join with an unknown context": {args: []string{"join", "a", "--hub-context", "nosuch", "--context", "a"}, want: `load kubeconfig context "nosuch"`},
		"join with an invalid region":  {args: []string{"join", "a", "--hub-context", "hub", "--context", "a", "--region", "eu west"}, want: `invalid region "eu west"`},
		"unjoin without --hub-context": {args: []string{"unjoin", "a"}, want: `required flag(s) "hub-context" not set`},
		"unjoin with an invalid name":  {args: []string{"unjoin", "Bad_Name", "--hub-context", "hub"}, want: `invalid cluster name "Bad_Name"`},
		"status -o xml":                {args: []string{"status", "--hub-context", "hub", "-o", "xml"}, want: `unknown output format "xml" for -o: use one of table, json, yaml`},
		"status without --hub-context": {args: []string{"status"}, want: `required flag(s) "hub-context" not set`},
		"status with an argument":      {args: []string{"status", "x", "--hub-context", "hub"}, want: `unknown command "x"`},
		"export without a service":     {args: []string{"export", "-n", "shop"}, want: "export takes exactly one argument, the Service name; got 0"},
		"export --wait -1s":            {args: []string{"export", "x", "--wait", "-1s"}, want: "--wait must not be negative, got -1s"},
		"export --wait soon":           {args: []string{"export", "x", "--wait", "soon"}, want: `invalid argument "soon" for "--wait"`},
		"unexport two services":        {args: []string{"unexport", "x", "y"}, want: "unexport takes exactly one argument, the Service name; got 2"},
		"unknown flag":                 {args: []string{"join", "a", "--hub", "hub"}, want: "unknown flag: --hub"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			_, err := runCLI(ctx, append(tc.args, "--kubeconfig", kubeconfig)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestMissingKubeconfig(t *testing.T) {
	_, err := runCLI(t.Context(), "status", "--hub-context", "hub", "--kubeconfig", filepath.Join(t.TempDir(), "missing"))
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("got %v, want an error naming the missing file", err)
	}
}
