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

package trust

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// parseCertsPEM parses every PEM block of data as a certificate, in order.
// A block of another type is an error, and so is data without any block.
func parseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is %q, want CERTIFICATE", len(certs), block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", len(certs), err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block found")
	}
	return certs, nil
}

// encodeCertsPEM encodes certs as PEM CERTIFICATE blocks, in order.
func encodeCertsPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// parsePKCS8KeyPEM parses data as exactly one PKCS #8 "PRIVATE KEY" block
// holding a signing key: the form the hub writes into tls.key.
func parsePKCS8KeyPEM(data []byte) (crypto.Signer, error) {
	block, rest := pem.Decode(data)
	switch {
	case block == nil:
		return nil, errors.New("no PEM block found")
	case block.Type != "PRIVATE KEY":
		return nil, fmt.Errorf("PEM block is %q, want PRIVATE KEY (PKCS #8)", block.Type)
	case len(bytes.TrimSpace(rest)) > 0:
		return nil, errors.New("data follows the PRIVATE KEY block")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("PRIVATE KEY: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("PRIVATE KEY: a %T cannot sign", key)
	}
	return signer, nil
}

// Fingerprint is the hex SHA-256 of cert's DER encoding: how the hub's
// annotations and bundle schedule name a certificate.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// publicKeyEqual reports whether pub is the public key of cert.
func publicKeyEqual(pub crypto.PublicKey, cert *x509.Certificate) bool {
	k, ok := pub.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(cert.PublicKey)
}

// isSelfSigned reports whether cert names itself as issuer and its
// signature verifies with its own key.
func isSelfSigned(cert *x509.Certificate) bool {
	return bytes.Equal(cert.RawIssuer, cert.RawSubject) && cert.CheckSignatureFrom(cert) == nil
}

// renewalTime is when a CA certificate is due for replacement: once two
// thirds of its lifetime have passed. The last third leaves time to retry
// while the old certificate still works, and for agents to pick up the new
// one.
func renewalTime(cert *x509.Certificate) time.Time {
	return cert.NotBefore.Add(cert.NotAfter.Sub(cert.NotBefore) / 3 * 2)
}

// describe names a certificate in messages: its subject and serial.
func describe(cert *x509.Certificate) string {
	return fmt.Sprintf("%q (serial %s)", cert.Subject.String(), cert.SerialNumber.Text(16))
}

// utc formats t for messages.
func utc(t time.Time) string { return t.UTC().Format(time.RFC3339) }
