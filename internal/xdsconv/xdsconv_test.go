package xdsconv

import "testing"

func TestProtocolFor(t *testing.T) {
	s := func(v string) *string { return &v }
	tests := map[string]struct {
		appProtocol *string
		name        string
		want        Protocol
	}{
		"appProtocol http":              {s("http"), "", ProtocolHTTP},
		"appProtocol wins over name":    {s("tcp"), "http-web", ProtocolTCP},
		"appProtocol grpc":              {s("grpc"), "tcp", ProtocolGRPC},
		"appProtocol k8s h2c":           {s("kubernetes.io/h2c"), "", ProtocolHTTP2},
		"appProtocol k8s ws":            {s("kubernetes.io/ws"), "", ProtocolHTTP},
		"appProtocol k8s wss is opaque": {s("kubernetes.io/wss"), "", ProtocolTCP},
		"appProtocol unknown is opaque": {s("example.com/custom"), "http", ProtocolTCP},
		"appProtocol case-insensitive":  {s("GRPC"), "", ProtocolGRPC},
		"empty appProtocol uses name":   {s(""), "grpc-api", ProtocolGRPC},
		"name http":                     {nil, "http", ProtocolHTTP},
		"name prefix http-":             {nil, "http-metrics", ProtocolHTTP},
		"name http2":                    {nil, "http2", ProtocolHTTP2},
		"name h2c":                      {nil, "h2c", ProtocolHTTP2},
		"name grpc":                     {nil, "grpc", ProtocolGRPC},
		"name grpc-web prefix":          {nil, "grpc-web", ProtocolGRPC},
		"name tcp":                      {nil, "tcp-db", ProtocolTCP},
		"name https is opaque":          {nil, "https", ProtocolTCP},
		"no name":                       {nil, "", ProtocolTCP},
		"unknown name":                  {nil, "web", ProtocolTCP},
		"name without dash prefix":      {nil, "httpx", ProtocolTCP},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := ProtocolFor(tc.appProtocol, tc.name); got != tc.want {
				t.Fatalf("ProtocolFor(%v, %q) = %s, want %s", tc.appProtocol, tc.name, got, tc.want)
			}
		})
	}
}

func TestClusterNameRoundTrip(t *testing.T) {
	name := ClusterName(8080, "east", ClusterSetHost("echo", "shop"))
	if name != "outbound|8080|east|echo.shop.svc.clusterset.local" {
		t.Fatalf("ClusterName = %q", name)
	}
	port, subset, host, err := ParseClusterName(name)
	if err != nil || port != 8080 || subset != "east" || host != "echo.shop.svc.clusterset.local" {
		t.Fatalf("ParseClusterName = %d %q %q %v", port, subset, host, err)
	}
	for _, bad := range []string{"", "outbound|0||x", "outbound|70000||x", "inbound|80||x", "outbound|80|x", "outbound|http||x"} {
		if _, _, _, err := ParseClusterName(bad); err == nil {
			t.Errorf("ParseClusterName(%q) accepted", bad)
		}
	}
}

func FuzzParseClusterName(f *testing.F) {
	f.Add("outbound|8080||echo.default.svc.cluster.local")
	f.Add("outbound|1|a|b")
	f.Fuzz(func(t *testing.T, s string) {
		port, subset, host, err := ParseClusterName(s)
		if err != nil {
			return
		}
		if got := ClusterName(port, subset, host); got != s {
			// Leading zeros or a sign in the port are the only way to
			// differ; they still parse to a valid port.
			if p2, s2, h2, err := ParseClusterName(got); err != nil || p2 != port || s2 != subset || h2 != host {
				t.Fatalf("%q → %d %q %q → %q", s, port, subset, host, got)
			}
		}
	})
}

func TestInboundClusterNameRoundTrip(t *testing.T) {
	name := InboundClusterName(8080)
	if name != "inbound|8080||" {
		t.Fatalf("InboundClusterName = %q", name)
	}
	if port, err := ParseInboundClusterName(name); err != nil || port != 8080 {
		t.Fatalf("ParseInboundClusterName = %d %v", port, err)
	}
	for _, bad := range []string{"", "inbound|0||", "inbound|70000||", "outbound|80||x", "inbound|80|", "inbound|80||x", "inbound|http||", "inbound|-1||"} {
		if _, err := ParseInboundClusterName(bad); err == nil {
			t.Errorf("ParseInboundClusterName(%q) accepted", bad)
		}
	}
}
