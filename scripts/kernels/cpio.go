// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// cpioWriter writes the "newc" cpio format, the one the kernel unpacks as
// an initramfs (Documentation/driver-api/early-userspace/buffer-format.rst).
// Writing it here keeps root out of the picture: owners and modes are
// whatever we say, not what the files on the host have, and no cpio tool
// is needed. Parent directories are added on demand, each once.
type cpioWriter struct {
	w     *bufio.Writer
	n     int64 // bytes written, for the 4-byte alignment
	ino   uint32
	dirs  map[string]bool
	names map[string]bool // every entry, for has
	err   error
}

func newCpio(w io.Writer) *cpioWriter {
	return &cpioWriter{w: bufio.NewWriterSize(w, 1<<20), ino: 1, dirs: map[string]bool{"": true, ".": true, "/": true}, names: map[string]bool{}}
}

const (
	modeDir     = 0o040000
	modeFile    = 0o100000
	modeSymlink = 0o120000
)

func (c *cpioWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(b)
	c.n += int64(n)
	c.err = err
}

func (c *cpioWriter) pad() {
	if r := c.n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

// entry writes one header, name and body. Names are relative ("bin/sh").
func (c *cpioWriter) entry(name string, mode uint32, body []byte) {
	name = strings.TrimPrefix(path.Clean("/"+name), "/")
	c.names[name] = true
	c.ino++
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, 1, 0, len(body), 0, 0, 0, 0, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write([]byte(name + "\x00"))
	c.pad()
	c.write(body)
	c.pad()
}

// mkdirAll adds dir and its missing parents.
func (c *cpioWriter) mkdirAll(dir string) {
	dir = strings.TrimPrefix(path.Clean("/"+dir), "/")
	if c.dirs[dir] {
		return
	}
	c.mkdirAll(path.Dir(dir))
	c.dirs[dir] = true
	c.entry(dir, modeDir|0o755, nil)
}

// File adds a regular file with mode perm (and its directories).
func (c *cpioWriter) File(name string, perm uint32, body []byte) {
	c.mkdirAll(path.Dir(name))
	c.entry(name, modeFile|perm, body)
}

// CopyFile adds the host file src as name, keeping its permission bits.
func (c *cpioWriter) CopyFile(name, src string) {
	if c.err != nil {
		return
	}
	fi, err := os.Stat(src)
	if err != nil {
		c.err = err
		return
	}
	body, err := os.ReadFile(src)
	if err != nil {
		c.err = err
		return
	}
	c.File(name, uint32(fi.Mode().Perm()), body)
}

// has says whether name was added already (as a file, link or directory).
func (c *cpioWriter) has(name string) bool {
	return c.names[strings.TrimPrefix(path.Clean("/"+name), "/")]
}

// Symlink adds name pointing at target.
func (c *cpioWriter) Symlink(name, target string) {
	c.mkdirAll(path.Dir(name))
	c.entry(name, modeSymlink|0o777, []byte(target))
}

// Dir adds an empty directory.
func (c *cpioWriter) Dir(name string) { c.mkdirAll(name) }

// Close writes the trailer and flushes.
func (c *cpioWriter) Close() error {
	c.entry("TRAILER!!!", 0, nil)
	if c.err != nil {
		return c.err
	}
	return c.w.Flush()
}
