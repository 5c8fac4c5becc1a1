// SPDX-License-Identifier: Apache-2.0

package packet

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// readWhole reads what os.ReadFile reads and fails as it fails.
func TestReadWholeAsReadFile(t *testing.T) {
	dir := t.TempDir()
	big := bytes.Repeat([]byte("0123456789"), 100000)
	for name, data := range map[string][]byte{"empty": {}, "frame": big[:46], "big": big} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// /proc/self/stat: size 0 in stat, yet not empty.
	for _, path := range []string{"empty", "frame", "big", "missing", ".", "/proc/self/stat"} {
		if path[0] != '/' {
			path = filepath.Join(dir, path)
		}
		want, werr := os.ReadFile(path)
		got, gerr := readWhole(path)
		if fmt.Sprint(werr) != fmt.Sprint(gerr) {
			t.Errorf("%s: error %v, os.ReadFile's %v", path, gerr, werr)
		}
		if path != "/proc/self/stat" && !bytes.Equal(got, want) || len(got) == 0 && len(want) != 0 {
			t.Errorf("%s: read %d bytes, os.ReadFile %d", path, len(got), len(want))
		}
	}
}

// A file read again while unchanged comes from the cache; rewritten in
// place, even to the same size right after it was cached, it is read
// afresh; replaced by another file, too.
func TestReadWholeSeesChanges(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "frame.bin")
	write := func(s string) {
		t.Helper()
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600) // in place: same inode
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	read := func(want string) {
		t.Helper()
		got, err := readWhole(path)
		if err != nil || string(got) != want {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
	}
	write("first frame")
	read("first frame") // just written: not kept yet
	time.Sleep(150 * time.Millisecond)
	read("first frame") // kept now (on tmpfs, ext4, ...)
	read("first frame")
	if _, ok := fileCache.m[path]; !ok {
		t.Logf("%s was not cached (filesystem not trusted for it); the rest checks reads only", dir)
	}
	write("other frame") // same size, same inode
	read("other frame")
	read("other frame")
	time.Sleep(150 * time.Millisecond)
	read("other frame")
	// Handed out as a copy: changing it changes nothing kept.
	got, _ := readWhole(path)
	copy(got, "xxxxx")
	read("other frame")
	// Another file at the path.
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte("third frame"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	read("third frame")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := readWhole(path); err == nil {
		t.Errorf("read a removed file")
	}
}
