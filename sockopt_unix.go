//go:build unix

package dtls

import (
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// receiveBufferSize returns the socket's receive buffer as the kernel
// reports it (SO_RCVBUF), as a size comparable to what was asked for:
// Linux reports twice the size set, its bookkeeping included, and that is
// halved. 0 if it cannot tell.
func receiveBufferSize(sc syscall.Conn) int {
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	var size int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		size, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	}); err != nil || serr != nil {
		return 0
	}
	if runtime.GOOS == "linux" {
		size /= 2
	}
	return size
}
