package broker

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// maxChannelID bounds the identifier sent with a descriptor.
const maxChannelID = 128

// NewPassPair returns the two ends of the descriptor-passing socket: the
// supervisor keeps the first, the broker receives the second as [PassFD].
func NewPassPair() (supervisor, broker *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "broker-pass-sup"), os.NewFile(uintptr(fds[1]), "broker-pass"), nil
}

// NewChannelPair returns the two ends of a worker's broker channel: the
// worker's end and the end that is passed to the broker.
func NewChannelPair() (workerEnd, brokerEnd *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "channel-worker"), os.NewFile(uintptr(fds[1]), "channel-broker"), nil
}

// SendChannel passes f to the broker over pass, labelled with id.
func SendChannel(pass *os.File, id string, f *os.File) error {
	if id == "" || len(id) > maxChannelID {
		return errors.New("channel id must be 1 to 128 bytes")
	}
	rights := unix.UnixRights(int(f.Fd()))
	return unix.Sendmsg(int(pass.Fd()), []byte(id), rights, nil, 0)
}

// RecvChannel receives one descriptor and its label from pass, waiting for
// one if none is queued. Any message that does not carry exactly one
// descriptor is an error, and stray descriptors are closed.
func RecvChannel(pass *os.File) (string, *os.File, error) {
	return recvChannel(pass, 0)
}

// errNothingPassed: no descriptor is queued on the passing socket.
var errNothingPassed = errors.New("no descriptor is queued")

// recvChannel is RecvChannel with extra recvmsg flags. With
// unix.MSG_DONTWAIT it returns errNothingPassed rather than wait.
func recvChannel(pass *os.File, extra int) (string, *os.File, error) {
	buf := make([]byte, maxChannelID)
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, flags, _, err := unix.Recvmsg(int(pass.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC|extra)
	if errors.Is(err, unix.EAGAIN) && extra&unix.MSG_DONTWAIT != 0 {
		return "", nil, errNothingPassed
	}
	if err != nil {
		return "", nil, fmt.Errorf("recvmsg: %w", err)
	}
	var fds []int
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return "", nil, fmt.Errorf("parse control message: %w", err)
		}
		for _, m := range msgs {
			got, err := unix.ParseUnixRights(&m)
			if err == nil {
				fds = append(fds, got...)
			}
		}
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 || len(fds) != 1 || n == 0 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return "", nil, fmt.Errorf("malformed channel message (%d bytes, %d descriptors)", n, len(fds))
	}
	return string(buf[:n]), os.NewFile(uintptr(fds[0]), "channel"), nil
}
