package pki

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// PEM block types.
const (
	pemCertificate   = "CERTIFICATE"
	pemPrivateKey    = "PRIVATE KEY"
	pemECPrivateKey  = "EC PRIVATE KEY"
	pemRSAPrivateKey = "RSA PRIVATE KEY"
	pemECParameters  = "EC PARAMETERS"
	pemEncryptedKey  = "ENCRYPTED PRIVATE KEY"
)

// parseCertificatesPEM parses every PEM block of data as a certificate, in
// order. Text between blocks is ignored (RFC 7468 allows explanatory
// text); a block of another type is an error, and so is data without any
// block.
func parseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != pemCertificate {
			return nil, fmt.Errorf("PEM block %d is %q, want %q", len(certs), block.Type, pemCertificate)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", len(certs), err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("no PEM %q block found", pemCertificate)
	}
	return certs, nil
}

// parsePrivateKeyPEM parses the first private key block of data. "EC
// PARAMETERS" blocks, which OpenSSL writes before a SEC 1 key, are
// skipped.
func parsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM private key block found")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case pemECParameters:
			continue
		case pemPrivateKey:
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case pemECPrivateKey:
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case pemRSAPrivateKey:
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case pemEncryptedKey:
			return nil, errors.New("encrypted private keys are not supported; decrypt the key first")
		default:
			return nil, fmt.Errorf("PEM block is %q, want a private key (%q, %q or %q)",
				block.Type, pemPrivateKey, pemECPrivateKey, pemRSAPrivateKey)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", block.Type, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			// PKCS #8 may hold an X25519 or ECDH key, which cannot sign.
			return nil, fmt.Errorf("%s: a %T cannot sign", block.Type, key)
		}
		return signer, nil
	}
}

func encodeCertificatesPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, encodePEM(pemCertificate, c.Raw)...)
	}
	return out
}

func encodePEM(blockType string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
}
