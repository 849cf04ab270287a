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

package membership

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
)

// The CRD's rules for a gateway address (apis/causeway/v1alpha1,
// GatewayAddress), which the API server checks with CEL: the same
// patterns, and the same IP parsing as CEL's isIP (no zone, no
// IPv4-mapped IPv6).
var (
	gatewayAddressForm = regexp.MustCompile(`^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*|[[][0-9a-fA-F:.]+[]]):[0-9]{1,5}$`)
	ipv4HostPort       = regexp.MustCompile(`^[0-9.]+:[0-9]+$`)
	bracketedHostPort  = regexp.MustCompile(`^[[].+[]]:[0-9]+$`)
	portSuffix         = regexp.MustCompile(`:[0-9]{1,5}$`)
)

// maxGatewayAddresses and maxGatewayAddressLength are the CRD's limits.
const (
	maxGatewayAddresses     = 8
	maxGatewayAddressLength = 261
)

// celIP parses s as CEL's isIP and ip() do.
func celIP(s string) (netip.Addr, bool) {
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" || ip.Is4In6() {
		return netip.Addr{}, false
	}
	return ip, true
}

// ValidateGatewayAddress checks a gateway address by the CRD's rules: an
// IP address (which means port 15443), or host:port where host is a
// lowercase DNS name, an IPv4 address or an IPv6 address in brackets.
func ValidateGatewayAddress(a string) error {
	if n := utf8.RuneCountInString(a); n == 0 || n > maxGatewayAddressLength {
		return fmt.Errorf("invalid gateway address %q: must be 1 to %d characters", a, maxGatewayAddressLength)
	}
	_, isIP := celIP(a)
	if isIP {
		return nil
	}
	if !gatewayAddressForm.MatchString(a) {
		return fmt.Errorf("invalid gateway address %q: must be an IP address or host:port, where host is a lowercase DNS name, an IPv4 address or an IPv6 address in brackets, e.g. gw.example.com:15443 or [2001:db8::1]:15443", a)
	}
	colon := strings.LastIndex(a, ":")
	if ipv4HostPort.MatchString(a) {
		if _, ok := celIP(a[:colon]); !ok {
			return fmt.Errorf("invalid gateway address %q: the host is not a valid IPv4 address", a)
		}
	}
	if bracketedHostPort.MatchString(a) {
		if ip, ok := celIP(a[1:strings.LastIndex(a, "]")]); !ok || !ip.Is6() {
			return fmt.Errorf("invalid gateway address %q: the bracketed host is not a valid IPv6 address", a)
		}
	}
	if portSuffix.MatchString(a) {
		if p, err := strconv.Atoi(a[colon+1:]); err != nil || p < 1 || p > 65535 {
			return fmt.Errorf("invalid gateway address %q: the port must be between 1 and 65535", a)
		}
	}
	return nil
}

// Gateway validates a member's gateway settings by the CRD's rules and
// returns its spec.gateway: nil for no addresses (the member has no
// gateway others can reach; it dials them), else the addresses in order
// and the transport, QUIC when empty.
func Gateway(addresses []string, transport string) (*causewayv1alpha1.MemberClusterGateway, error) {
	if len(addresses) == 0 {
		if transport != "" {
			return nil, errors.New("a gateway transport needs at least one gateway address")
		}
		return nil, nil
	}
	if len(addresses) > maxGatewayAddresses {
		return nil, fmt.Errorf("%d gateway addresses: at most %d", len(addresses), maxGatewayAddresses)
	}
	gw := &causewayv1alpha1.MemberClusterGateway{}
	var errs []error
	for _, a := range addresses {
		if err := ValidateGatewayAddress(a); err != nil {
			errs = append(errs, err)
			continue
		}
		gw.Addresses = append(gw.Addresses, causewayv1alpha1.GatewayAddress(a))
	}
	switch t := causewayv1alpha1.GatewayTransport(transport); t {
	case "":
		// Set rather than left to the CRD's default, so that a second
		// identical join finds the spec unchanged.
		gw.Transport = causewayv1alpha1.GatewayTransportQUIC
	case causewayv1alpha1.GatewayTransportQUIC, causewayv1alpha1.GatewayTransportTCP:
		gw.Transport = t
	default:
		errs = append(errs, fmt.Errorf("invalid gateway transport %q: must be QUIC or TCP", transport))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return gw, nil
}
