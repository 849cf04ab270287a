package echo

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Greeting is the line the TCP listener writes first on every connection.
func Greeting(id Identity) string { return "causeway-echo " + id.Cluster + "/" + id.Pod + "\n" }

type tcpServer struct {
	ln       net.Listener
	greeting []byte
	log      *slog.Logger

	mu      sync.Mutex
	closing bool
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup // one per tracked conn
}

func newTCPServer(ln net.Listener, id Identity, log *slog.Logger) *tcpServer {
	return &tcpServer{ln: ln, greeting: []byte(Greeting(id)), log: log, conns: map[net.Conn]struct{}{}}
}

func (s *tcpServer) serve() error {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return nil
			}
			// Accept's temporary errors (EMFILE and the like) would only recur
			// in a test world; failing loudly beats spinning.
			return err
		}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			_ = c.Close() // Accepted as the listener closed; never served.
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handle(c)
	}
}

func (s *tcpServer) handle(c net.Conn) {
	defer func() {
		_ = c.Close() // The echo is over either way.
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	if err := echoConn(c, s.greeting); err != nil {
		s.log.Debug("tcp echo ended", "remote", c.RemoteAddr().String(), "err", err)
	}
}

// echoConn greets, then writes back every byte read until the peer half-closes
// (answered with a half-close) or the read fails. A plain loop rather than
// io.Copy keeps read deadlines, which shutdown relies on, in force: io.Copy
// between two TCP conns may splice.
func echoConn(c net.Conn, greeting []byte) error {
	if _, err := c.Write(greeting); err != nil {
		return err
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if errors.Is(err, io.EOF) {
			if cw, ok := c.(interface{ CloseWrite() error }); ok {
				return cw.CloseWrite()
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// shutdown treats a connection blocked in Read like an idle HTTP keep-alive
// connection: it expires the read deadline, so each echo finishes the write it
// is doing and ends. Writes stuck on a client that does not read are cut when
// ctx is done.
func (s *tcpServer) shutdown(ctx context.Context) {
	s.mu.Lock()
	s.closing = true
	_ = s.ln.Close() // Unblocks Accept; serve then returns nil.
	now := time.Now()
	for c := range s.conns {
		_ = c.SetReadDeadline(now) // Fails only on a closed conn, which is fine.
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		<-done
	}
}
