//go:build linux

package escape

import (
	"encoding/binary"
	"syscall"

	"golang.org/x/sys/unix"
)

// int80 is implemented in int80_amd64.s.
func int80(trap, a1, a2, a3 uintptr) (r uintptr)

// i386 socketcall(2): syscall number and the SYS_SOCKET call.
const (
	i386SocketcallNR = 102
	socketcallSocket = 1
)

// Int80Socket calls socket(AF_INET, SOCK_STREAM, 0) through the i386
// socketcall(2) entry point (`int $0x80`). It is the probe a denylist
// seccomp filter that jumps to "allow" on an arch mismatch fails: the
// socket gets created. Under the worker's filter the process is killed with
// SIGSYS, so call it last; the caller observes the kill in the wait status.
func Int80Socket() Result {
	const name = "int80 socketcall(AF_INET)"
	// The compat gate truncates pointers to 32 bits: the argument block
	// must live below 4 GiB.
	mem, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_32BIT)
	if err != nil {
		return result(name, err)
	}
	defer unix.Munmap(mem)
	binary.LittleEndian.PutUint32(mem[0:], unix.AF_INET)
	binary.LittleEndian.PutUint32(mem[4:], unix.SOCK_STREAM)
	binary.LittleEndian.PutUint32(mem[8:], 0)
	r := int32(int80(i386SocketcallNR, socketcallSocket, uintptr(addr(mem)), 0))
	if r < 0 {
		return result(name, syscall.Errno(-r))
	}
	unix.Close(int(r))
	return Result{Name: name, Detail: "created fd"}
}
