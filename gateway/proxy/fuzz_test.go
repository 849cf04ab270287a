package proxy

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// FuzzStoreApply feeds arbitrary bytes as xDS resources of each type. The
// store must never panic, and a rejected response must leave the model in
// force untouched.
func FuzzStoreApply(f *testing.F) {
	seed := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	f.Add(uint8(0), seed(hcmListener(f, "http", "routes", true)))
	f.Add(uint8(0), seed(tcpListener(f, "tcp", "c", 9000)))
	f.Add(uint8(1), seed(&routev3.RouteConfiguration{Name: "routes", VirtualHosts: []*routev3.VirtualHost{{
		Name: "x", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefixMatch("/"), Action: routeTo("c")}},
	}}}))
	f.Add(uint8(2), seed(edsCluster(f, "c", true, clusterv3.Cluster_RING_HASH)))
	f.Add(uint8(3), seed(cla(f, "c", "127.0.0.1:80", "127.0.0.2:81")))
	types := []string{ldsType, rdsType, cdsType, edsType}
	f.Fuzz(func(t *testing.T, kind uint8, value []byte) {
		s := NewStore()
		before := s.model()
		typeURL := types[int(kind)%len(types)]
		err := s.Apply(typeURL, "v", []*anypb.Any{{TypeUrl: typeURL, Value: value}})
		if err != nil && s.model() != before {
			t.Fatalf("a rejected %s response changed the model", typeURL)
		}
		if err == nil {
			// Whatever was accepted can be dumped and its names listed.
			_ = s.Names(rdsType)
			_ = s.Names(edsType)
			_ = s.Resources(typeURL)
		}
	})
}
