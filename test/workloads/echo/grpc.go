package echo

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

// gRPC metadata keys. The two echo keys are the interop suite's: a client
// sending them gets their first value back as a header and a trailer, which
// lets a test check that the mesh carries both ways.
const (
	MetadataPod     = "x-causeway-pod"
	MetadataCluster = "x-causeway-cluster"

	echoInitialKey  = "x-grpc-test-echo-initial"
	echoTrailingKey = "x-grpc-test-echo-trailing-bin"
)

type grpcServer struct {
	ln     net.Listener
	srv    *grpc.Server
	health *health.Server
}

func newGRPCServer(ln net.Listener, id Identity, log *slog.Logger) *grpcServer {
	idMD := metadata.Pairs(MetadataPod, id.Pod, MetadataCluster, id.Cluster)
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			_ = grpc.SetHeader(ctx, idMD) // Fails only if headers were sent, which they cannot have been yet.
			resp, err := handler(ctx, req)
			log.Debug("grpc call", "method", info.FullMethod, "code", status.Code(err).String())
			return resp, err
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			_ = ss.SetHeader(idMD)
			err := handler(srv, ss)
			log.Debug("grpc stream", "method", info.FullMethod, "code", status.Code(err).String())
			return err
		}),
	)
	testpb.RegisterTestServiceServer(srv, &testService{id: id, serverID: id.Cluster + "/" + id.Pod})
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(testpb.TestService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)
	return &grpcServer{ln: ln, srv: srv, health: hs}
}

func (s *grpcServer) serve() error {
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

func (s *grpcServer) shutdown(ctx context.Context) {
	// NOT_SERVING first, so health-watching clients (xDS among them) move
	// away while in-flight calls finish.
	s.health.Shutdown()
	done := make(chan struct{})
	go func() {
		s.srv.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.srv.Stop()
		<-done
	}
}

// testService implements grpc.testing.TestService the way the interop server
// does (response sizes, statuses, intervals, metadata echo), plus:
// Hostname and ServerId are always filled in, and a streaming request with a
// payload but no response parameters gets its payload echoed back.
type testService struct {
	testpb.UnimplementedTestServiceServer
	id       Identity
	serverID string
}

func (t *testService) EmptyCall(context.Context, *testpb.Empty) (*testpb.Empty, error) {
	return &testpb.Empty{}, nil
}

func (t *testService) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	echoMetadata(ctx,
		func(md metadata.MD) error { return grpc.SetHeader(ctx, md) },
		func(md metadata.MD) error { return grpc.SetTrailer(ctx, md) })
	if err := requestedStatus(req.GetResponseStatus()); err != nil {
		return nil, err
	}
	pl, err := newPayload(req.GetResponseType(), req.GetResponseSize())
	if err != nil {
		return nil, err
	}
	return &testpb.SimpleResponse{Payload: pl, ServerId: t.serverID, Hostname: t.id.Pod}, nil
}

func (t *testService) CacheableUnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return t.UnaryCall(ctx, req)
}

func (t *testService) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	if err := requestedStatus(req.GetResponseStatus()); err != nil {
		return err
	}
	return respond(stream.Context(), req, stream.Send)
}

func (t *testService) StreamingInputCall(stream grpc.ClientStreamingServer[testpb.StreamingInputCallRequest, testpb.StreamingInputCallResponse]) error {
	var total int
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: int32(min(total, maxInt32))})
		}
		if err != nil {
			return err
		}
		total += len(req.GetPayload().GetBody())
	}
}

func (t *testService) FullDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	echoMetadata(stream.Context(), stream.SendHeader, func(md metadata.MD) error { stream.SetTrailer(md); return nil })
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := requestedStatus(req.GetResponseStatus()); err != nil {
			return err
		}
		if err := respond(stream.Context(), req, stream.Send); err != nil {
			return err
		}
	}
}

func (t *testService) HalfDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	var reqs []*testpb.StreamingOutputCallRequest
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		reqs = append(reqs, req)
	}
	for _, req := range reqs {
		if err := respond(stream.Context(), req, stream.Send); err != nil {
			return err
		}
	}
	return nil
}

const maxInt32 = 1<<31 - 1

// respond sends one response per ResponseParameters entry, each after its
// interval; with no entries and a request payload, it echoes the payload.
func respond(ctx context.Context, req *testpb.StreamingOutputCallRequest, send func(*testpb.StreamingOutputCallResponse) error) error {
	params := req.GetResponseParameters()
	if len(params) == 0 {
		if req.GetPayload() == nil {
			return nil
		}
		return send(&testpb.StreamingOutputCallResponse{Payload: req.GetPayload()})
	}
	for _, p := range params {
		if err := sleep(ctx, time.Duration(p.GetIntervalUs())*time.Microsecond); err != nil {
			return err
		}
		pl, err := newPayload(req.GetResponseType(), p.GetSize())
		if err != nil {
			return err
		}
		if err := send(&testpb.StreamingOutputCallResponse{Payload: pl}); err != nil {
			return err
		}
	}
	return nil
}

// sleep waits d, capped like HTTP's ?delay=, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	if d > MaxDelay {
		return status.Errorf(codes.InvalidArgument, "interval %s exceeds the maximum %s", d, MaxDelay)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// requestedStatus returns the error a request asks to fail with, or nil.
func requestedStatus(s *testpb.EchoStatus) error {
	if s.GetCode() == 0 {
		return nil
	}
	return status.Error(codes.Code(s.GetCode()), s.GetMessage())
}

// newPayload builds a zero-filled payload of size bytes; size is capped like
// HTTP's ?size=.
func newPayload(typ testpb.PayloadType, size int32) (*testpb.Payload, error) {
	if typ != testpb.PayloadType_COMPRESSABLE {
		return nil, status.Errorf(codes.InvalidArgument, "payload type %s is not supported", typ)
	}
	if size < 0 || size > MaxSize {
		return nil, status.Errorf(codes.InvalidArgument, "response size %d: want from 0 to %d", size, MaxSize)
	}
	return &testpb.Payload{Type: typ, Body: make([]byte, size)}, nil
}

// echoMetadata returns the interop echo keys' first values through the given
// header and trailer setters.
func echoMetadata(ctx context.Context, setHeader, setTrailer func(metadata.MD) error) {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return
	}
	// The setters fail only once headers or trailers are sent, which they
	// cannot have been before the handler's first action.
	if v := md.Get(echoInitialKey); len(v) > 0 {
		_ = setHeader(metadata.Pairs(echoInitialKey, v[0]))
	}
	if v := md.Get(echoTrailingKey); len(v) > 0 {
		_ = setTrailer(metadata.Pairs(echoTrailingKey, v[0]))
	}
}
