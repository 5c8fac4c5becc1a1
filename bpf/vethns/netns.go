// SPDX-License-Identifier: Apache-2.0

// Package vethns makes a veth pair whose one end sits in a named network
// namespace of its own, for serving an XDP/TC program on a real network
// path that never leaves the machine (kv serve, cache bench), and removes
// everything it made afterwards.
package vethns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Named network namespaces
//
// A namespace that `ip netns exec NAME` can enter is a bind mount of the
// namespace file on /run/netns/NAME (what `ip netns add` makes). bpfsh
// makes one on an OS thread of its own that it never gives back to Go:
// the thread unshares into a fresh namespace, bind-mounts it and exits
// with its goroutine, so no other goroutine can ever run in a namespace
// it did not ask for. Code that must run inside (creating sockets, which
// keep their namespace for life; starting a server) gets a fresh thread
// the same way.

// Dir is where iproute2 keeps named network namespaces.
const Dir = "/run/netns"

// namePrefix starts the names of the namespaces New makes:
// bpfsh-<what>-<pid>-<n>. The pid lets a later run remove what a killed
// one left behind.
const namePrefix = "bpfsh-"

// onLockedThread runs fn on a fresh OS thread that Go discards afterwards
// (the goroutine ends locked), so whatever fn does to the thread's
// namespaces dies with it.
func onLockedThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer func() {
			if r := recover(); r != nil {
				errc <- fmt.Errorf("panic in network namespace: %v", r)
			}
		}()
		errc <- fn()
	}()
	return <-errc
}

// NewNamed makes a network namespace named name (with its loopback up),
// runs setup inside it (when not nil), and returns a file descriptor of
// it. On any error nothing is left: no mount, no file. A name that exists
// is refused and left alone.
func NewNamed(name string, setup func() error) (fd int, err error) {
	if err := os.MkdirAll(Dir, 0o755); err != nil {
		return -1, fmt.Errorf("create %s: %w", Dir, err)
	}
	path := filepath.Join(Dir, name)
	fd = -1
	err = onLockedThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("make network namespace %s: %w (needs CAP_SYS_ADMIN: run as root)", name, err)
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
		if err != nil {
			return fmt.Errorf("make network namespace %s: %w", name, err)
		}
		f.Close()
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(self, path, "", unix.MS_BIND, ""); err != nil {
			os.Remove(path)
			return fmt.Errorf("make network namespace %s: bind mount on %s: %w", name, path, err)
		}
		fd, err = unix.Open(self, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			err = linkUp("lo")
		}
		if err == nil && setup != nil {
			err = setup()
		}
		if err != nil {
			if fd >= 0 {
				unix.Close(fd)
				fd = -1
			}
			DeleteNamed(name)
			return err
		}
		return nil
	})
	return fd, err
}

// In runs fn on a fresh OS thread inside the namespace nsfd; the thread
// is discarded afterwards.
func In(nsfd int, fn func() error) error {
	return onLockedThread(func() error {
		if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("enter network namespace: %w", err)
		}
		return fn()
	})
}

// DeleteNamed removes the name of a namespace; the namespace itself (and
// the devices in it) goes when its last user (a socket, a process, a file
// descriptor) closes.
func DeleteNamed(name string) error {
	path := filepath.Join(Dir, name)
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove network namespace %s: unmount %s: %w", name, path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove network namespace %s: %w", name, err)
	}
	return nil
}

// Exists says whether /run/netns/name exists.
func Exists(name string) bool {
	_, err := os.Stat(filepath.Join(Dir, name))
	return err == nil
}

// reapStale removes the namespaces named bpfsh-<what>-<pid>-<n> whose
// bpfsh process no longer runs, with the veth pairs inside them: what a
// killed shell left behind. It returns their names.
func reapStale(what string) []string {
	ents, err := os.ReadDir(Dir)
	if err != nil {
		return nil
	}
	var gone []string
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), namePrefix+what+"-")
		if !ok {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 || ProcessAlive(pid) {
			continue
		}
		if DeleteNamed(e.Name()) == nil {
			gone = append(gone, e.Name())
		}
	}
	return gone
}

// ProcessAlive says whether a process with this pid exists.
func ProcessAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// linkUp sets IFF_UP on an interface of the calling thread's namespace.
func linkUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring up %s: %w", name, err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fmt.Errorf("bring up %s: %w", name, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up %s: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up %s: %w", name, err)
	}
	return nil
}
