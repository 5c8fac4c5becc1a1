// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"bytes"
	"errors"
	"strings"

	"golang.org/x/sys/unix"
)

// lastKernelLogLine is the newest line of the kernel log (/dev/kmsg) that
// contains marker, without its record header; "" when there is none or
// the log cannot be read (it needs root). It reads what the log holds now
// and does not wait for more.
func lastKernelLogLine(marker string) string {
	// Raw system calls, not os.File: Go's poller would turn EAGAIN at the
	// end of the log into a wait for the next record.
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	defer unix.Close(fd)
	last := ""
	buf := make([]byte, 8192)
	for {
		// Each read returns one record: "PRIO,SEQ,USEC,FLAGS;TEXT\n".
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EPIPE) {
			continue // the record was overwritten while we read: the next one follows
		}
		if err != nil || n == 0 {
			return last
		}
		rec := buf[:n]
		if i := bytes.IndexByte(rec, ';'); i >= 0 {
			rec = rec[i+1:]
		}
		if line, _, _ := bytes.Cut(rec, []byte("\n")); bytes.Contains(line, []byte(marker)) {
			last = strings.TrimSpace(string(line))
		}
	}
}
