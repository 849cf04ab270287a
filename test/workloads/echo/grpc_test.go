package echo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
)

func dialGRPC(t *testing.T, addr net.Addr) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient(%s): %v", addr, err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestGRPCUnaryCall(t *testing.T) {
	srv := startServer(t, Config{Listeners: listeners(ProtocolGRPC)})
	client := testpb.NewTestServiceClient(dialGRPC(t, srv.addrs[0]))
	ctx := metadata.AppendToOutgoingContext(testContext(t),
		echoInitialKey, "hi", echoTrailingKey, "\x00bye")

	var header, trailer metadata.MD
	resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: 1234}, grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		t.Fatalf("UnaryCall: %v", err)
	}
	if resp.GetHostname() != testID.Pod {
		t.Errorf("Hostname = %q, want %q", resp.GetHostname(), testID.Pod)
	}
	if want := testID.Cluster + "/" + testID.Pod; resp.GetServerId() != want {
		t.Errorf("ServerId = %q, want %q", resp.GetServerId(), want)
	}
	if n := len(resp.GetPayload().GetBody()); n != 1234 {
		t.Errorf("payload = %d bytes, want 1234", n)
	}
	for key, want := range map[string]string{MetadataPod: testID.Pod, MetadataCluster: testID.Cluster, echoInitialKey: "hi"} {
		if got := header.Get(key); len(got) != 1 || got[0] != want {
			t.Errorf("header %s = %q, want [%q]", key, got, want)
		}
	}
	if got := trailer.Get(echoTrailingKey); len(got) != 1 || got[0] != "\x00bye" {
		t.Errorf("trailer %s = %q, want the echoed value", echoTrailingKey, got)
	}

	if _, err := client.EmptyCall(ctx, &testpb.Empty{}); err != nil {
		t.Errorf("EmptyCall: %v", err)
	}
}

func TestGRPCUnaryCallErrors(t *testing.T) {
	srv := startServer(t, Config{Listeners: listeners(ProtocolGRPC)})
	client := testpb.NewTestServiceClient(dialGRPC(t, srv.addrs[0]))
	tests := map[string]struct {
		req      *testpb.SimpleRequest
		wantCode codes.Code
		wantMsg  string
	}{
		"requested status": {
			req:      &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.Unavailable), Message: "drain me"}},
			wantCode: codes.Unavailable, wantMsg: "drain me",
		},
		"negative size":     {req: &testpb.SimpleRequest{ResponseSize: -1}, wantCode: codes.InvalidArgument},
		"size above cap":    {req: &testpb.SimpleRequest{ResponseSize: MaxSize + 1}, wantCode: codes.InvalidArgument},
		"unknown payload":   {req: &testpb.SimpleRequest{ResponseType: testpb.PayloadType(7)}, wantCode: codes.InvalidArgument},
		"zero status is ok": {req: &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Message: "ignored"}}, wantCode: codes.OK},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := client.UnaryCall(testContext(t), tc.req)
			st := status.Convert(err)
			if st.Code() != tc.wantCode || (tc.wantMsg != "" && st.Message() != tc.wantMsg) {
				t.Errorf("UnaryCall = %v, want code %v message %q", err, tc.wantCode, tc.wantMsg)
			}
		})
	}
}

func TestGRPCStreaming(t *testing.T) {
	srv := startServer(t, Config{Listeners: listeners(ProtocolGRPC)})
	client := testpb.NewTestServiceClient(dialGRPC(t, srv.addrs[0]))
	ctx := testContext(t)

	t.Run("StreamingOutputCall", func(t *testing.T) {
		stream, err := client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
			ResponseParameters: []*testpb.ResponseParameters{{Size: 1}, {Size: 20, IntervalUs: 1000}, {Size: 300}},
		})
		if err != nil {
			t.Fatal(err)
		}
		var sizes []int
		for {
			resp, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("Recv: %v", err)
			}
			sizes = append(sizes, len(resp.GetPayload().GetBody()))
		}
		if !slices.Equal(sizes, []int{1, 20, 300}) {
			t.Errorf("response sizes = %v, want [1 20 300]", sizes)
		}
	})

	t.Run("FullDuplexCall echoes payloads", func(t *testing.T) {
		stream, err := client.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, body := range [][]byte{[]byte("ping"), []byte("pong"), bytes.Repeat([]byte{7}, 64<<10)} {
			if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: body}}); err != nil {
				t.Fatalf("Send: %v", err)
			}
			resp, err := stream.Recv()
			if err != nil {
				t.Fatalf("Recv: %v", err)
			}
			if !bytes.Equal(resp.GetPayload().GetBody(), body) {
				t.Errorf("echo of %d bytes came back as %d bytes", len(body), len(resp.GetPayload().GetBody()))
			}
		}
		// Parameters take precedence over echo, as in the interop server.
		if err := stream.Send(&testpb.StreamingOutputCallRequest{
			Payload:            &testpb.Payload{Body: []byte("x")},
			ResponseParameters: []*testpb.ResponseParameters{{Size: 5}},
		}); err != nil {
			t.Fatalf("Send: %v", err)
		}
		if resp, err := stream.Recv(); err != nil || len(resp.GetPayload().GetBody()) != 5 {
			t.Errorf("Recv = %d bytes, %v; want 5 bytes", len(resp.GetPayload().GetBody()), err)
		}
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
			t.Errorf("Recv after CloseSend = %v, want EOF", err)
		}
	})

	t.Run("FullDuplexCall requested status", func(t *testing.T) {
		stream, err := client.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&testpb.StreamingOutputCallRequest{
			ResponseStatus: &testpb.EchoStatus{Code: int32(codes.ResourceExhausted), Message: "slow down"},
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); status.Code(err) != codes.ResourceExhausted {
			t.Errorf("Recv = %v, want ResourceExhausted", err)
		}
	})
}

func TestGRPCHealthAndReflection(t *testing.T) {
	srv := startServer(t, Config{Listeners: listeners(ProtocolGRPC)})
	cc := dialGRPC(t, srv.addrs[0])
	ctx := testContext(t)

	health := healthpb.NewHealthClient(cc)
	for _, svc := range []string{"", testpb.TestService_ServiceDesc.ServiceName} {
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("Check(%q) = %v, %v; want SERVING", svc, resp.GetStatus(), err)
		}
	}

	stream, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"grpc.testing.TestService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, want it to include %s", names, want)
		}
	}
}

func TestGRPCHealthNotServingOnStop(t *testing.T) {
	srv := startServer(t, Config{Listeners: listeners(ProtocolGRPC)})
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	watch, err := healthpb.NewHealthClient(dialGRPC(t, srv.addrs[0])).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first Watch status = %v, %v; want SERVING", resp.GetStatus(), err)
	}

	stopped := make(chan error, 1)
	go func() { stopped <- srv.stop() }()
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Watch status during stop = %v, %v; want NOT_SERVING", resp.GetStatus(), err)
	}
	cancel() // A client that sees NOT_SERVING goes away, releasing the graceful stop.
	if err := <-stopped; err != nil {
		t.Fatalf("Serve() = %v, want nil", err)
	}
}
