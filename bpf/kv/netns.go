package kv

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
// keep their namespace for life) gets a fresh thread the same way.

// netnsDir is where iproute2 keeps named network namespaces.
const netnsDir = "/run/netns"

// netnsPrefix starts the names of the namespaces Serve makes:
// bpfsh-kv-<pid>-<n>. The pid lets a later run remove what a killed one
// left behind.
const netnsPrefix = "bpfsh-kv-"

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

// newNamedNetns makes a network namespace named name (with its loopback
// up), runs setup inside it, and returns a file descriptor of it. On
// any error nothing is left: no mount, no file.
func newNamedNetns(name string, setup func() error) (fd int, err error) {
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return -1, fmt.Errorf("create %s: %w", netnsDir, err)
	}
	path := filepath.Join(netnsDir, name)
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
			deleteNamedNetns(name)
			return err
		}
		return nil
	})
	return fd, err
}

// inNetns runs fn on a fresh OS thread inside the namespace nsfd.
func inNetns(nsfd int, fn func() error) error {
	return onLockedThread(func() error {
		if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("enter network namespace: %w", err)
		}
		return fn()
	})
}

// deleteNamedNetns removes the name of a namespace; the namespace itself
// (and the devices in it) goes when its last user (a socket, a file
// descriptor) closes.
func deleteNamedNetns(name string) error {
	path := filepath.Join(netnsDir, name)
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove network namespace %s: unmount %s: %w", name, path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove network namespace %s: %w", name, err)
	}
	return nil
}

// netnsExists says whether /run/netns/name exists.
func netnsExists(name string) bool {
	_, err := os.Stat(filepath.Join(netnsDir, name))
	return err == nil
}

// reapStaleNetns removes the namespaces that a bpfsh process which no
// longer runs made with Serve (bpfsh-kv-<pid>-*), with the veth pairs
// inside them: what a killed shell left behind. It returns their names.
func reapStaleNetns() []string {
	ents, err := os.ReadDir(netnsDir)
	if err != nil {
		return nil
	}
	var gone []string
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), netnsPrefix)
		if !ok {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		if deleteNamedNetns(e.Name()) == nil {
			gone = append(gone, e.Name())
		}
	}
	return gone
}

// processAlive says whether a process with this pid exists.
func processAlive(pid int) bool {
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
