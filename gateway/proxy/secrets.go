package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// SDS secret names the agent serves every node (internal/xdsconv's).
const (
	// SecretDefault is the proxy's own X509-SVID: a TlsCertificate.
	SecretDefault = xdsconv.SecretDefault
	// SecretRootCA is the trust bundle: a ValidationContext whose
	// trusted_ca holds every trusted root.
	SecretRootCA = xdsconv.SecretRootCA
)

// Secrets holds the TLS secrets the proxy received over SDS, by name, and
// is the proxy's identity: its SVID (SecretDefault) and the bundle it
// verifies peers against (SecretRootCA). It implements the SDS client's
// Applier: a response replaces the secrets it carries and keeps the
// others (SDS names its resources; absence means nothing), a secret the
// proxy cannot use is refused with the whole response, and secrets are
// only dropped when nothing wants them any more. Reads are lock-free
// (one atomic load per handshake), so TLS configurations read the
// current secret at every handshake: a rotated SVID or bundle is used
// from the next connection on, and existing connections are left alone.
type Secrets struct {
	// configured trust domain; zero: learnt from the secrets.
	trustDomain spiffeid.TrustDomain

	mu      sync.Mutex
	raw     map[string]*tlsv3.Secret
	version string
	wanted  func() []string // names the xDS configuration references

	cur atomic.Pointer[secretSet]
}

// secretSet is one immutable compilation of the secrets.
type secretSet struct {
	td    spiffeid.TrustDomain // zero while unknown
	certs map[string]*tls.Certificate
	roots map[string]*rootSecret
}

// rootSecret is a ValidationContext secret: its roots, and as a SPIFFE
// bundle of the trust domain once that is known.
type rootSecret struct {
	roots  []*x509.Certificate
	bundle *x509bundle.Bundle // nil while the trust domain is unknown
}

// NewSecrets returns an empty store. td is the trust domain of the mesh;
// when it is zero it is learnt from the SPIFFE ID of the first SVID (or
// of the roots) that arrives.
func NewSecrets(td spiffeid.TrustDomain) *Secrets {
	s := &Secrets{trustDomain: td, raw: map[string]*tlsv3.Secret{}}
	s.cur.Store(&secretSet{td: td, certs: map[string]*tls.Certificate{}, roots: map[string]*rootSecret{}})
	return s
}

// Apply implements the SDS client's Applier.
func (s *Secrets) Apply(typeURL, version string, resources []*anypb.Any) error {
	if typeURL != resourcev3.SecretType {
		return fmt.Errorf("type %s is not served over SDS", typeURL)
	}
	incoming, err := decodeAll[*tlsv3.Secret](resources, func(x *tlsv3.Secret) string { return x.GetName() })
	if err != nil {
		return err
	}
	s.mu.Lock()
	next := maps.Clone(s.raw)
	maps.Copy(next, incoming)
	set, err := s.compile(next)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.raw, s.version = next, version
	s.cur.Store(set)
	s.mu.Unlock()
	return nil
}

// Names implements the SDS client's Applier: SecretDefault, SecretRootCA
// and every secret the xDS configuration names. Secrets no longer named
// are dropped here, when the subscription changes.
func (s *Secrets) Names(typeURL string) []string {
	if typeURL != resourcev3.SecretType {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	names := []string{SecretDefault, SecretRootCA}
	if s.wanted != nil {
		names = append(names, s.wanted()...)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	pruned := false
	for n := range s.raw {
		if !slices.Contains(names, n) {
			delete(s.raw, n)
			pruned = true
		}
	}
	if pruned {
		if set, err := s.compile(s.raw); err == nil {
			s.cur.Store(set)
		}
	}
	return names
}

// setWanted sets where the names the configuration references come from.
func (s *Secrets) setWanted(f func() []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wanted = f
}

// compile checks every secret and builds the set. A secret that cannot
// be used fails the whole response, as xDS wants.
func (s *Secrets) compile(raw map[string]*tlsv3.Secret) (*secretSet, error) {
	set := &secretSet{td: s.trustDomain, certs: map[string]*tls.Certificate{}, roots: map[string]*rootSecret{}}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(raw)) {
		sec := raw[name]
		switch t := sec.GetType().(type) {
		case *tlsv3.Secret_TlsCertificate:
			if t.TlsCertificate.GetPrivateKeyProvider() != nil || t.TlsCertificate.GetPassword() != nil || len(t.TlsCertificate.GetOcspStaple().GetInlineBytes()) > 0 {
				errs = append(errs, fmt.Errorf("secret %q: only certificate_chain and private_key are supported", name))
				continue
			}
			cert, err := loadKeyPair(t.TlsCertificate)
			if err != nil {
				errs = append(errs, fmt.Errorf("secret %q: %w", name, err))
				continue
			}
			set.certs[name] = &cert
		case *tlsv3.Secret_ValidationContext:
			vc := t.ValidationContext
			if err := checkPlainTrust(vc); err != nil {
				errs = append(errs, fmt.Errorf("secret %q: %w", name, err))
				continue
			}
			pemBytes, err := dataSource(vc.GetTrustedCa())
			if err != nil {
				errs = append(errs, fmt.Errorf("secret %q: trusted_ca: %w", name, err))
				continue
			}
			// The trust domain does not matter for parsing; the bundle
			// for the real one is made below.
			parsed, err := x509bundle.Parse(spiffeid.RequireTrustDomainFromString("parse.invalid"), pemBytes)
			if err != nil || len(parsed.X509Authorities()) == 0 {
				errs = append(errs, fmt.Errorf("secret %q: trusted_ca holds no PEM certificate", name))
				continue
			}
			set.roots[name] = &rootSecret{roots: parsed.X509Authorities()}
		default:
			errs = append(errs, fmt.Errorf("secret %q: type %T is not supported (only tls_certificate and validation_context)", name, t))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if set.td.IsZero() {
		set.td = learnTrustDomain(set)
	}
	if !set.td.IsZero() {
		for _, r := range set.roots {
			r.bundle = x509bundle.FromX509Authorities(set.td, r.roots)
		}
	}
	return set, nil
}

// checkPlainTrust refuses a validation context secret that asks for more
// than trusted roots: verification must never do less than configured.
func checkPlainTrust(vc *tlsv3.CertificateValidationContext) error {
	if vc.GetTrustedCa() == nil {
		return errors.New("validation_context without trusted_ca")
	}
	if len(vc.GetMatchTypedSubjectAltNames()) > 0 || len(vc.GetVerifyCertificateHash()) > 0 || len(vc.GetVerifyCertificateSpki()) > 0 ||
		len(vc.GetMatchSubjectAltNames()) > 0 || vc.GetCrl() != nil || vc.GetCustomValidatorConfig() != nil { //nolint:staticcheck // the deprecated field must be refused too
		return errors.New("only trusted_ca is supported in a validation context secret (put subject-alt-name matchers in the default_validation_context)")
	}
	return nil
}

// learnTrustDomain is the trust domain of the secrets: the SPIFFE ID of
// SecretDefault's leaf, else of any certificate's, else of the roots'.
func learnTrustDomain(set *secretSet) spiffeid.TrustDomain {
	if c := set.certs[SecretDefault]; c != nil && c.Leaf != nil {
		if id, err := x509svid.IDFromCert(c.Leaf); err == nil {
			return id.TrustDomain()
		}
	}
	for _, name := range slices.Sorted(maps.Keys(set.certs)) {
		if c := set.certs[name]; c.Leaf != nil {
			if id, err := x509svid.IDFromCert(c.Leaf); err == nil {
				return id.TrustDomain()
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(set.roots)) {
		for _, r := range set.roots[name].roots {
			for _, u := range r.URIs {
				if id, err := spiffeid.FromURI(u); err == nil {
					return id.TrustDomain()
				}
			}
		}
	}
	return spiffeid.TrustDomain{}
}

// errNoSecret: a TLS context names a secret that has not arrived (yet).
var errNoSecret = errors.New("secret not available")

// Certificate returns the TlsCertificate secret name.
func (s *Secrets) Certificate(name string) (*tls.Certificate, error) {
	if c := s.cur.Load().certs[name]; c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("certificate %q: %w", name, errNoSecret)
}

// TrustDomain is the trust domain of the secrets; zero until known.
func (s *Secrets) TrustDomain() spiffeid.TrustDomain { return s.cur.Load().td }

// Has reports whether every named secret has arrived (and, for trust
// bundles, is usable: the trust domain is known).
func (s *Secrets) Has(names ...string) bool {
	set := s.cur.Load()
	for _, n := range names {
		if set.certs[n] == nil && (set.roots[n] == nil || set.roots[n].bundle == nil) {
			return false
		}
	}
	return true
}

// bundleSource returns the trust bundle secret name as a go-spiffe bundle
// source, read at each call: peers of any other trust domain find no
// bundle.
func (s *Secrets) bundleSource(name string) x509bundle.Source { return secretBundle{s, name} }

type secretBundle struct {
	s    *Secrets
	name string
}

func (b secretBundle) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	set := b.s.cur.Load()
	r := set.roots[b.name]
	switch {
	case r == nil:
		return nil, fmt.Errorf("trust bundle %q: %w", b.name, errNoSecret)
	case r.bundle == nil:
		return nil, fmt.Errorf("trust bundle %q: the trust domain is not known yet", b.name)
	case td != set.td:
		return nil, fmt.Errorf("no X.509 bundle for trust domain %q (this mesh is %q)", td, set.td)
	}
	return r.bundle, nil
}

// SecretStatus describes one secret for the config dump: never key
// material.
type SecretStatus struct {
	Name     string    `json:"name"`
	Kind     string    `json:"kind"`
	SPIFFEID string    `json:"spiffeID,omitempty"`
	Serial   string    `json:"serial,omitempty"`
	NotAfter time.Time `json:"notAfter,omitzero"`
	Roots    int       `json:"roots,omitempty"`
}

// Status lists the secrets, by name, and the SDS version.
func (s *Secrets) Status() (version string, out []SecretStatus) {
	s.mu.Lock()
	version = s.version
	s.mu.Unlock()
	set := s.cur.Load()
	for _, n := range slices.Sorted(maps.Keys(set.certs)) {
		st := SecretStatus{Name: n, Kind: "tls_certificate"}
		if leaf := set.certs[n].Leaf; leaf != nil {
			st.NotAfter, st.Serial = leaf.NotAfter, leaf.SerialNumber.Text(16)
			if id, err := x509svid.IDFromCert(leaf); err == nil {
				st.SPIFFEID = id.String()
			}
		}
		out = append(out, st)
	}
	for _, n := range slices.Sorted(maps.Keys(set.roots)) {
		out = append(out, SecretStatus{Name: n, Kind: "validation_context", Roots: len(set.roots[n].roots)})
	}
	return version, out
}
