// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf/bpftest"
)

// One bpftool batch file, run by bpftool and by bpfsh -f on two maps that
// start the same, leaves the two maps the same: bpfsh reads bpftool's
// batch syntax (comments, continuations, quotes, byte lists) and does the
// same thing with it.
func TestBpftoolBatchFileRunsUnderBpfsh(t *testing.T) {
	bpftool := mapRequireBpftool(t)
	root := bpftest.PinRoot(t)
	dir := t.TempDir()
	var paths []string
	for _, who := range []string{"bpftool", "bpfsh"} {
		m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "batch_" + who, Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: 16})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		path := filepath.Join(root, who)
		if err := m.Pin(path); err != nil {
			t.Fatal(err)
		}
		batch := "# a bpftool batch file\n" +
			"map update pinned " + path + " key 1 0 0 0 value 0x2a 0 0 0 0 0 0 0\n" +
			"map update pinned " + path + " \\\n    key hex 02 00 00 00 value hex 07 00 00 00 00 00 00 00   # continued\n" +
			"map update pinned '" + path + "' key 3 0 0 0 value 1 2 3 4 5 6 7 8\n" +
			"map delete pinned " + path + " key 3 0 0 0\n" +
			"map lookup pinned " + path + " key 1 0 0 0\n"
		file := filepath.Join(dir, who+".batch")
		if err := os.WriteFile(file, []byte(batch), 0o644); err != nil {
			t.Fatal(err)
		}
		if who == "bpftool" {
			if out, err := exec.Command(bpftool, "batch", "file", file).CombinedOutput(); err != nil {
				t.Fatalf("bpftool batch: %v\n%s", err, out)
			}
		} else if code, out, errs := bpfsh(t, root, "-f", file); code != 0 {
			t.Fatalf("bpfsh -f: exit %d\n%s%s", code, out, errs)
		}
		paths = append(paths, path)
	}
	dump := func(path string) []any {
		out, err := exec.Command(bpftool, "-j", "map", "dump", "pinned", path).Output()
		if err != nil {
			t.Fatalf("bpftool dump %s: %v", path, err)
		}
		var entries []map[string]any
		if err := json.Unmarshal(out, &entries); err != nil {
			t.Fatal(err)
		}
		set := map[string]any{}
		for _, e := range entries {
			k, _ := json.Marshal(e["key"])
			set[string(k)] = e["value"]
		}
		return []any{set}
	}
	if a, b := dump(paths[0]), dump(paths[1]); !reflect.DeepEqual(a, b) || len(a[0].(map[string]any)) != 2 {
		t.Errorf("after the same batch file, bpftool's map holds %v and bpfsh's %v (want the same two entries)", a, b)
	}
}
