package proxy

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/gateway/capture"
	"github.com/causeway-mesh/causeway/gateway/xdsclient"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// TestServeGetsItsIdentityOverSDS runs the whole process (Serve) with the
// SDS options: the token file, the trust bundle file that verifies the
// agent, the ServiceAccount; the admin config dump then shows the SVID
// the agent served (never the key), and the SDS stream is up.
func TestServeGetsItsIdentityOverSDS(t *testing.T) {
	ca := newMeshCA(t, meshTD)
	agent := startSDSAgent(t, ca, map[string]string{"good": "front/web"})
	dir := t.TempDir()
	bundle := filepath.Join(dir, "roots.pem")
	roots := writeBundle(t, bundle, ca.root)
	chain, key, _ := ca.svid(t, webID)
	agent.serve(t, "served", chain, key, roots)

	for _, tc := range []struct {
		name, token string
		wantID      string
	}{
		{"a valid token", "good", webID.String()},
		{"a token the agent refuses", "forged", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tokenFile := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(tokenFile, []byte(tc.token), 0o600); err != nil {
				t.Fatal(err)
			}
			admin := make(chan string, 1)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- Serve(ctx, Options{
					Mode: xdsconv.ModeSidecar, XDSAddr: "127.0.0.1:1", NodeID: "served", Namespace: "front", Pod: "served",
					SDSAddr: agent.addr, TokenFile: tokenFile, TrustBundleFile: bundle, ServiceAccount: "web",
					HBONEAddr: "127.0.0.1:0", InboundAddr: "127.0.0.1:0", PodIPs: []string{"127.0.0.1"},
					AdminAddr: "127.0.0.1:0", DrainTimeout: time.Second, Logger: discardLogger(),
					Ready: func(a string) { admin <- a },
				})
			}()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Serve: %v", err)
				}
			}()
			addr := <-admin
			dump := func() (string, error) {
				resp, err := http.Get("http://" + addr + "/config_dump")
				if err != nil {
					return "", err
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				return string(b), err
			}
			if tc.wantID == "" {
				refusalsBefore := len(agent.refused())
				waitUntil(t, "the agent refuses the token", func() bool { return len(agent.refused()) > refusalsBefore })
				body, err := dump()
				if err != nil || strings.Contains(body, "spiffe://") || strings.Contains(body, "PRIVATE KEY") {
					t.Fatalf("config dump after a refused token: %v\n%s", err, body)
				}
				return
			}
			var last string
			waitUntil(t, "the config dump shows the SVID", func() bool {
				body, err := dump()
				last = body
				return err == nil && strings.Contains(body, `"spiffeID": "`+tc.wantID+`"`)
			})
			if strings.Contains(last, "PRIVATE KEY") || strings.Contains(last, string(key[30:60])) {
				t.Fatal("the config dump shows the private key")
			}
			var d struct {
				Client struct {
					SDS xdsclient.Status `json:"sds"`
				} `json:"xdsClient"`
			}
			if err := json.Unmarshal([]byte(last), &d); err != nil || !d.Client.SDS.Connected {
				t.Fatalf("SDS status %+v, %v", d.Client.SDS, err)
			}
		})
	}
}

// TestServeGetsXDSOverTheSDSPort: with --sds-addr and an empty
// --xds-addr, or the SDS address itself, the ADS client uses the SDS
// port with the SDS client's credentials (TLS verifying the agent, the
// token): the agent accepts its ADS requests, which it does only after
// the token and node checks. Without either address Serve says what to
// set.
func TestServeGetsXDSOverTheSDSPort(t *testing.T) {
	ca := newMeshCA(t, meshTD)
	dir := t.TempDir()
	bundle := filepath.Join(dir, "roots.pem")
	writeBundle(t, bundle, ca.root)
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("good"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, xdsAddr := range []string{"", "sds"} {
		t.Run("xds-addr="+xdsAddr, func(t *testing.T) {
			agent := startSDSAgent(t, ca, map[string]string{"good": "front/web"})
			if xdsAddr == "sds" {
				xdsAddr = agent.addr
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- Serve(ctx, Options{
					Mode: xdsconv.ModeSidecar, XDSAddr: xdsAddr, NodeID: "served", Namespace: "front", Pod: "served",
					SDSAddr: agent.addr, TokenFile: tokenFile, TrustBundleFile: bundle, ServiceAccount: "web",
					HBONEAddr: "off", DrainTimeout: time.Second, Logger: discardLogger(),
				})
			}()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Serve: %v", err)
				}
			}()
			waitUntil(t, "the agent accepts an ADS request", func() bool {
				return slices.ContainsFunc(agent.acceptedTypes(), func(typ string) bool {
					return typ == resourcev3.ListenerType || typ == resourcev3.ClusterType
				})
			})
			if r := agent.refused(); len(r) != 0 {
				t.Fatalf("the agent refused streams: %v", r)
			}
		})
	}
	t.Run("no xDS address", func(t *testing.T) {
		err := Serve(context.Background(), Options{Mode: xdsconv.ModeSidecar, NodeID: "n", Logger: discardLogger()})
		if err == nil || !strings.Contains(err.Error(), "--xds-addr") {
			t.Fatalf("got %v, want an error naming --xds-addr", err)
		}
	})
}

// TestSDSClientVerifiesTheAgent: the proxy talks only to an SDS server
// that presents the agent's own SPIFFE ID; any other workload of the
// trust domain gets no token and no stream.
func TestSDSClientVerifiesTheAgent(t *testing.T) {
	ca := newMeshCA(t, meshTD)
	impostor := startSDSAgent(t, ca, map[string]string{"good": "front/web"}, workloadID("other", "evil"))
	dir := t.TempDir()
	bundle := filepath.Join(dir, "roots.pem")
	roots := writeBundle(t, bundle, ca.root)
	chain, key, _ := ca.svid(t, webID)
	impostor.serve(t, "web", chain, key, roots)
	n := startNode(t, impostor, bundle, "web", nodeOptions{ns: "front", sa: "web"})
	waitUntil(t, "the SDS client gives up a connection", func() bool { return n.sds.Status().LastStreamError != "" })
	if n.secrets.Has(SecretDefault) {
		t.Fatal("the proxy took an SVID from a server that is not the agent")
	}
	if !strings.Contains(n.sds.Status().LastStreamError, "unexpected ID") && !strings.Contains(n.sds.Status().LastStreamError, spiffeid.RequireFromSegments(meshTD, "ns", "other", "sa", "evil").String()) {
		t.Fatalf("stream error %q, want the agent's identity refused", n.sds.Status().LastStreamError)
	}
}

// TestTrustDomainFromTheBundle: without --trust-domain, the trust domain
// comes from the roots' SPIFFE IDs; roots without one are an error that
// says what to do.
func TestTrustDomainFromTheBundle(t *testing.T) {
	ca := newMeshCA(t, meshTD)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.pem")
	writeBundle(t, good, ca.root)
	if td, err := trustDomainOf("", good); err != nil || td != meshTD {
		t.Fatalf("trust domain %v, %v; want %s", td, err, meshTD)
	}
	plain := filepath.Join(dir, "plain.pem")
	certPEM, _, _ := testCert(t, "127.0.0.1")
	if err := os.WriteFile(plain, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := trustDomainOf("", plain); err == nil || !strings.Contains(err.Error(), "--trust-domain") {
		t.Fatalf("roots without SPIFFE IDs: %v", err)
	}
	if td, err := trustDomainOf("example.org", plain); err != nil || td.String() != "example.org" {
		t.Fatalf("configured: %v %v", td, err)
	}
	if _, err := trustDomainOf("", filepath.Join(dir, "missing.pem")); err == nil {
		t.Fatal("a missing bundle file is not an error")
	}
}

// TestCaptureConfig: with the HBONE server, the capture rules also send
// inbound TCP to the inbound port, except the HBONE and admin ports (or
// the tunnels and probes would loop into the inbound listener).
func TestCaptureConfig(t *testing.T) {
	o := Options{CaptureGID: 1337, AdminAddr: "127.0.0.1:15000", CaptureInbound: true}
	got := captureConfig(o, Config{HBONEAddr: ":15008", InboundAddr: ":15006"})
	if !got.CaptureInbound || got.InboundPort != 15006 || !slices.Equal(got.ExcludeInboundPorts, []uint16{15000, 15008}) ||
		!slices.Equal(got.ExcludeOutboundPorts, []uint16{15000}) || !slices.Equal(got.ProxyGIDs, []uint32{1337}) {
		t.Fatalf("with HBONE: %+v", got)
	}
	if got := captureConfig(o, Config{}); got.CaptureInbound {
		t.Fatalf("without HBONE, inbound is captured: %+v", got)
	}
	o.CaptureInbound = false
	if got := captureConfig(o, Config{HBONEAddr: ":15008", InboundAddr: ":15006"}); got.CaptureInbound {
		t.Fatalf("--capture-inbound=false, inbound is captured: %+v", got)
	}
	if _, err := capture.Script(captureConfig(Options{CaptureGID: 1337, AdminAddr: "127.0.0.1:15000", CaptureInbound: true}, Config{HBONEAddr: ":15008", InboundAddr: ":15006"})); err != nil {
		t.Fatalf("the rules do not script: %v", err)
	}
}
