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
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	cmclient "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned"
)

// CA is a certificate authority a test holds: a stand-in for an
// organisation's own CA, which cert-manager's CA issuer signs with. It has
// no SPIFFE ID, as such CAs normally do not.
type CA struct {
	// Certificate is the CA's self-signed certificate.
	Certificate *x509.Certificate
	// CertificatePEM is Certificate as a PEM "CERTIFICATE" block.
	CertificatePEM []byte
	// KeyPEM is the CA's ECDSA P-256 key as a PKCS #8 PEM block.
	KeyPEM []byte
}

// NewCA makes a self-signed CA named commonName, valid from a minute ago
// for ttl, with no path length limit (it may issue CAs that issue CAs) and
// key usages keyCertSign and cRLSign.
func NewCA(commonName string, ttl time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("new test CA: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("new test CA: serial number: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Example Org"}, CommonName: commonName},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(ttl),
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("new test CA: create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("new test CA: parse certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("new test CA: marshal key: %w", err)
	}
	return &CA{
		Certificate:    cert,
		CertificatePEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:         pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// CreateCAIssuer creates, in namespace, a kubernetes.io/tls Secret holding
// ca and a cert-manager CA Issuer named name that signs with it, and waits
// until cert-manager's issuers controller has set the Issuer Ready. The
// Secret is named name + "-ca".
func CreateCAIssuer(ctx context.Context, cfg *rest.Config, namespace, name string, ca *CA) error {
	cm, err := createCASecret(ctx, cfg, namespace, name+"-ca", ca)
	if err != nil {
		return err
	}
	iss := &cmapi.Issuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{CA: &cmapi.CAIssuer{SecretName: name + "-ca"}}},
	}
	if _, err := cm.CertmanagerV1().Issuers(namespace).Create(ctx, iss, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create Issuer %s/%s: %w", namespace, name, err)
	}
	return waitReady(ctx, fmt.Sprintf("Issuer %s/%s", namespace, name), func(ctx context.Context) (cmapi.GenericIssuer, error) {
		return cm.CertmanagerV1().Issuers(namespace).Get(ctx, name, metav1.GetOptions{})
	})
}

// CreateCAClusterIssuer is CreateCAIssuer for a ClusterIssuer: its Secret
// goes to the control plane's cluster resource namespace,
// clusterResourceNamespace (DefaultClusterResourceNamespace unless
// Options said otherwise).
func CreateCAClusterIssuer(ctx context.Context, cfg *rest.Config, clusterResourceNamespace, name string, ca *CA) error {
	cm, err := createCASecret(ctx, cfg, clusterResourceNamespace, name+"-ca", ca)
	if err != nil {
		return err
	}
	iss := &cmapi.ClusterIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{CA: &cmapi.CAIssuer{SecretName: name + "-ca"}}},
	}
	if _, err := cm.CertmanagerV1().ClusterIssuers().Create(ctx, iss, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create ClusterIssuer %s: %w", name, err)
	}
	return waitReady(ctx, "ClusterIssuer "+name, func(ctx context.Context) (cmapi.GenericIssuer, error) {
		return cm.CertmanagerV1().ClusterIssuers().Get(ctx, name, metav1.GetOptions{})
	})
}

// createCASecret stores ca as a kubernetes.io/tls Secret, the form a CA
// issuer reads, and returns a cert-manager client for the caller.
func createCASecret(ctx context.Context, cfg *rest.Config, namespace, name string, ca *CA) (cmclient.Interface, error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create Kubernetes client: %w", err)
	}
	cm, err := cmclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create cert-manager client: %w", err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Type:       corev1.SecretTypeTLS,
		Data: map[string][]byte{
			corev1.TLSCertKey:       ca.CertificatePEM,
			corev1.TLSPrivateKeyKey: ca.KeyPEM,
		},
	}
	if _, err := kube.CoreV1().Secrets(namespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create CA Secret %s/%s: %w", namespace, name, err)
	}
	return cm, nil
}

// waitReady polls what get returns until its Ready condition is True, or
// ctx ends; the error then carries the last condition seen.
func waitReady(ctx context.Context, what string, get func(context.Context) (cmapi.GenericIssuer, error)) error {
	var last string
	err := wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		iss, err := get(ctx)
		if err != nil {
			last = err.Error()
			return false, nil //nolint:nilerr // polled again until ctx ends
		}
		for _, c := range iss.GetStatus().Conditions {
			if c.Type == cmapi.IssuerConditionReady {
				last = fmt.Sprintf("Ready=%s %s: %s", c.Status, c.Reason, c.Message)
				return c.Status == cmmeta.ConditionTrue, nil
			}
		}
		last = "no Ready condition"
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("wait for %s to become Ready (last seen: %s): %w", what, last, err)
	}
	return nil
}
