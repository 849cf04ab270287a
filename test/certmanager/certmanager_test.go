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

package certmanager

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// The harness runs for real in federation/trust/certmanager's tests, which
// start an API server and cert-manager's controllers; these tests cover
// what they cannot see.

// TestKubeconfigCarriesTheConfig: the kubeconfig handed to cert-manager's
// ContextFactory reaches the same server with the same credentials.
func TestKubeconfigCarriesTheConfig(t *testing.T) {
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, []byte("ca"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := map[string]*rest.Config{
		"client certificate (envtest's admin)": {
			Host:            "https://127.0.0.1:6443",
			TLSClientConfig: rest.TLSClientConfig{CAData: []byte("ca"), CertData: []byte("cert"), KeyData: []byte("key")},
		},
		"bearer token": {
			Host:            "https://10.0.0.1",
			BearerToken:     "token",
			TLSClientConfig: rest.TLSClientConfig{CAFile: caFile, ServerName: "kubernetes"},
		},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kubeconfig")
			if err := writeKubeconfig(cfg, path); err != nil {
				t.Fatal(err)
			}
			got, err := clientcmd.BuildConfigFromFlags("", path)
			if err != nil {
				t.Fatalf("load the written kubeconfig: %v", err)
			}
			if got.Host != cfg.Host || got.BearerToken != cfg.BearerToken || got.ServerName != cfg.ServerName ||
				got.CAFile != cfg.CAFile || !bytes.Equal(got.CAData, cfg.CAData) ||
				!bytes.Equal(got.CertData, cfg.CertData) || !bytes.Equal(got.KeyData, cfg.KeyData) {
				t.Errorf("kubeconfig gives %+v, want %+v", got, cfg)
			}
		})
	}
}

// TestNewCA: the test CA is a plain (non-SPIFFE) CA that may issue CAs.
func TestNewCA(t *testing.T) {
	ca, err := NewCA("Example Org Root CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := ca.Certificate
	if !c.IsCA || c.MaxPathLenZero || c.MaxPathLen > 0 || c.KeyUsage&x509.KeyUsageCertSign == 0 || len(c.URIs) != 0 {
		t.Errorf("CA: IsCA %t, MaxPathLen %d (zero %t), key usage %b, URIs %v", c.IsCA, c.MaxPathLen, c.MaxPathLenZero, c.KeyUsage, c.URIs)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	if !c.NotBefore.Before(time.Now()) || time.Until(c.NotAfter) > time.Hour {
		t.Errorf("validity %s to %s", c.NotBefore, c.NotAfter)
	}
}
