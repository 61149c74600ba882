// Package keyfile reads private keys from PEM files and names the JOSE
// signature algorithm that fits each key type.
package keyfile

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
)

// ParsePrivateKey parses the first PEM block of data as a PKCS#8, PKCS#1
// (RSA) or SEC 1 (EC) private key.
func ParsePrivateKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("keyfile: no PEM block found")
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("keyfile: unsupported key type %T", k)
		}
		return check(s)
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return check(k)
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return check(k)
	}
	return nil, fmt.Errorf("keyfile: PEM block %q is not a PKCS#8, PKCS#1 or EC private key", block.Type)
}

func check(s crypto.Signer) (crypto.Signer, error) {
	if k, ok := s.(*rsa.PrivateKey); ok && k.N.BitLen() < 2048 {
		return nil, fmt.Errorf("keyfile: RSA key has %d bits, at least 2048 are required", k.N.BitLen())
	}
	if _, err := Algorithms(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Algorithms lists the JOSE algorithms a key can sign with; the first is the default.
func Algorithms(s crypto.Signer) ([]string, error) {
	switch k := s.(type) {
	case *rsa.PrivateKey:
		return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, nil
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return []string{"ES256"}, nil
		case elliptic.P384():
			return []string{"ES384"}, nil
		case elliptic.P521():
			return []string{"ES512"}, nil
		}
		return nil, errors.New("keyfile: unsupported elliptic curve")
	case ed25519.PrivateKey:
		return []string{"EdDSA"}, nil
	}
	return nil, fmt.Errorf("keyfile: unsupported key type %T", s)
}

// CheckAlgorithm returns alg, or the key's default algorithm when alg is
// empty, or an error when the key cannot sign with alg.
func CheckAlgorithm(s crypto.Signer, alg string) (string, error) {
	algs, err := Algorithms(s)
	if err != nil {
		return "", err
	}
	if alg == "" {
		return algs[0], nil
	}
	if !slices.Contains(algs, alg) {
		return "", fmt.Errorf("keyfile: a %s key cannot sign with %s (use one of %v)", keyType(s), alg, algs)
	}
	return alg, nil
}

func keyType(s crypto.Signer) string {
	switch s.(type) {
	case *rsa.PrivateKey:
		return "RSA"
	case *ecdsa.PrivateKey:
		return "EC"
	case ed25519.PrivateKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", s)
}

// EncodePEM returns s as a PKCS#8 "PRIVATE KEY" PEM block, the first form
// ParsePrivateKey reads. It refuses the keys ParsePrivateKey would refuse.
func EncodePEM(s crypto.Signer) ([]byte, error) {
	if _, err := check(s); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(s)
	if err != nil {
		return nil, fmt.Errorf("keyfile: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
