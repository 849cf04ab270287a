package proxy

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// rawTCPConn is a TCP connection whose Read and Write issue their
// non-blocking read(2) and write(2) as raw system calls, still parked on
// the runtime's network poller when the socket is not ready.
//
// Why: every ordinary system call tells the scheduler it enters a syscall,
// and when the process has just been idle that wakes the runtime's sysmon
// thread, which then polls every 20 µs until the process is idle again. At
// a steady 1,000 requests a second the proxy goes idle between requests,
// so each request paid a futex wake-up, a futex wait and a few sleeps on
// that thread: about a quarter of the proxy's CPU in the benchmark
// (docs/traffic.md). A read or write on a non-blocking socket never
// blocks, so nothing needs sysmon's help while it runs.
type rawTCPConn struct {
	*net.TCPConn
	rc syscall.RawConn
	// The callbacks are made once, as method values: a closure per call
	// would be an allocation per read and per write. Reads are not
	// concurrent with reads, nor writes with writes (as for any net.Conn
	// here), so each side keeps its state in the struct.
	readFn, writeFn func(fd uintptr) bool
	rbuf, wbuf      []byte
	rn, wn          int
	rerr, werr      syscall.Errno
}

// rawConn returns c with raw reads and writes when it is a TCP
// connection, and c itself otherwise.
func rawConn(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	r := &rawTCPConn{TCPConn: tc, rc: rc}
	r.readFn, r.writeFn = r.read, r.write
	return r
}

func (c *rawTCPConn) read(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rbuf[0])), uintptr(len(c.rbuf)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait on the poller, then call again
		}
		c.rn, c.rerr = int(n), e
		return true
	}
}

func (c *rawTCPConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rbuf, c.rn, c.rerr = p, 0, 0
	err := c.rc.Read(c.readFn)
	c.rbuf = nil
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case c.rerr != 0:
		return 0, c.opError("read", os.NewSyscallError("read", c.rerr))
	case c.rn == 0:
		return 0, io.EOF
	}
	return c.rn, nil
}

func (c *rawTCPConn) write(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&c.wbuf[c.wn])), uintptr(len(c.wbuf)-c.wn))
		switch e {
		case 0:
			c.wn += int(n)
			continue
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		c.werr = e
		return true
	}
	return true
}

func (c *rawTCPConn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.wbuf, c.wn, c.werr = p, 0, 0
	err := c.rc.Write(c.writeFn)
	c.wbuf = nil
	switch {
	case err != nil:
		return c.wn, c.opError("write", err)
	case c.werr != 0:
		return c.wn, c.opError("write", os.NewSyscallError("write", c.werr))
	}
	return c.wn, nil
}

func (c *rawTCPConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
