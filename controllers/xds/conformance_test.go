package xds_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/xds"

	causewayxds "github.com/causeway-mesh/causeway/controllers/xds"
	"github.com/causeway-mesh/causeway/controllers/xds/translate"
	"github.com/causeway-mesh/causeway/controllers/xds/translate/translatetest"
)

// TestGoldenProxylessOutputIsAcceptedByGRPC serves the proxyless resources
// of every golden input to a real gRPC xDS client that resolves every API
// listener, and checks that gRPC accepts all of it: it ACKs the current
// version of listeners, clusters and endpoints and never NACKs. This is
// what proves the adaptations to gRPC (ring hash instead of Maglev, exact
// path plus prefix instead of path_separated_prefix, no empty retry
// policies, the optional fault filter, ...) are enough.
func TestGoldenProxylessOutputIsAcceptedByGRPC(t *testing.T) {
	files, err := filepath.Glob("translate/testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			in, err := translatetest.DecodeInputs(data)
			if err != nil {
				t.Fatal(err)
			}
			res := translate.Translate(in)
			reg := prometheus.NewRegistry()
			srv, err := causewayxds.NewServer(causewayxds.Options{Registerer: reg, Logger: testLogger()})
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Update(res); err != nil {
				t.Fatal(err)
			}
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ctx, lis) }()
			t.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					t.Error(err)
				}
			})

			nodeID := "conformance-" + filepath.Base(file)
			bootstrap, _ := json.Marshal(map[string]any{
				"xds_servers": []any{map[string]any{"server_uri": lis.Addr().String(), "channel_creds": []any{map[string]any{"type": "insecure"}}, "server_features": []string{"xds_v3"}}},
				"node":        map[string]any{"id": nodeID},
			})
			resolver, err := xds.NewXDSResolverWithConfigForTesting(bootstrap)
			if err != nil {
				t.Fatal(err)
			}
			// Endpoints are never dialled: only configuration matters.
			refuse := grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return nil, errors.New("not dialling") })
			for _, l := range res.Proxyless[resource.ListenerType] {
				name := l.(interface{ GetName() string }).GetName()
				conn, err := grpc.NewClient("xds:///"+name, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(resolver), refuse)
				if err != nil {
					t.Fatalf("channel for %s: %v", name, err)
				}
				t.Cleanup(func() { _ = conn.Close() })
				conn.Connect()
			}
			eventually(t, 20*time.Second, func() error {
				if n := nacks(t, reg); n > 0 {
					t.Fatalf("gRPC rejected %v responses", n)
				}
				acked, current := srv.Acked(nodeID)
				for _, typ := range []string{resource.ListenerType, resource.ClusterType, resource.EndpointType} {
					if current[typ] == "" || acked[typ] != current[typ] {
						return fmt.Errorf("%s: acked %q, current %q", typ, acked[typ], current[typ])
					}
				}
				return nil
			})
			if n := nacks(t, reg); n > 0 {
				t.Fatalf("gRPC rejected %v responses", n)
			}
		})
	}
}

func nacks(t testing.TB, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == "causeway_xds_nacks_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}
