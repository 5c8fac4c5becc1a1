// SPDX-License-Identifier: Apache-2.0

package kv_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/bpftest"
	"github.com/bpfsh/bpfsh/bpf/kv"
	"github.com/bpfsh/bpfsh/shell"
)

func bpfsh(t *testing.T, root, cmd string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := shell.Main([]string{"--pin-root", root, "-c", cmd}, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// TestLoadBuiltinSetPort: "load kv set kv_port=7000" loads the embedded
// object with the port changed; requests to 7000 are answered, to 6390
// passed; "run" shows the reply decoded as KV.
func TestLoadBuiltinSetPort(t *testing.T) {
	root := bpftest.PinRoot(t)
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	if code, _, errs := bpfsh(t, root, "load kv set kv_port=7000"); code != 0 {
		t.Fatalf("load kv set kv_port=7000: exit %d: %s", code, errs)
	}
	h, err := kv.Open(filepath.Join(root, "kv"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c := kv.NewClient(h.Prog)
	if _, err := c.Set(0, []byte("a"), []byte("1")); !errors.Is(err, kv.ErrPassed) {
		t.Errorf("a request to 6390 after kv_port=7000: %v, want ErrPassed", err)
	}
	c.Addr.DstPort = 7000
	if r, err := c.Set(0, []byte("a"), []byte("1")); err != nil || r.Status() != kv.StatusOK {
		t.Fatalf("SET to 7000: %v %v", r, err)
	}
	// sport=6390 so that the reply, sent back to it, decodes as KV.
	code, out, errs := bpfsh(t, root, `run kv/xdp_kv packet Ether()/IPv4()/UDP(dport=7000, sport=6390)/KV(op=GET, key="a", reqid=3) nomaps`)
	if code != 0 || !strings.Contains(out, "XDP_TX") {
		t.Fatalf("run: exit %d: %s%s", code, out, errs)
	}
	var j map[string]any
	code, out, errs = shellJSON(t, root, `run kv/xdp_kv packet Ether()/IPv4()/UDP(dport=7000, sport=6390)/KV(op=GET, key="a", reqid=3) nomaps`)
	if code != 0 {
		t.Fatalf("run -j: %s", errs)
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatal(err)
	}
	layers, _ := j["layers"].([]any)
	if len(layers) != 4 {
		t.Fatalf("reply layers %v", j["layers"])
	}
	fields := layers[3].(map[string]any)["fields"].(map[string]any)
	if fields["status"] != "OK" || fields["value"] != `"1"` || fields["reqid"] != float64(3) || fields["op"] != "GET" {
		t.Errorf("reply KV fields %v", fields)
	}
	// A second load may not reuse the name; an unknown variable is refused
	// with the list of the settable ones, and nothing is pinned.
	code, _, errs = bpfsh(t, root, "load kv name kv2 set kv_prt=7000")
	if code == 0 || !strings.Contains(errs, "kv_prt") || !strings.Contains(errs, "kv_port (") || !strings.Contains(errs, "kv_txn_timeout_ns (") {
		t.Errorf("unknown variable: exit %d, %q", code, errs)
	}
	code, _, errs = bpfsh(t, root, "load kv name kv2 set kv_port=70000")
	if code == 0 || !strings.Contains(errs, "out of range") {
		t.Errorf("kv_port=70000: exit %d, %q", code, errs)
	}
	code, _, errs = bpfsh(t, root, "load kv name kv2 set")
	if code != 2 {
		t.Errorf("set without VAR=VALUE: exit %d, %q", code, errs)
	}
	if m, _ := filepath.Glob(filepath.Join(root, "kv2")); len(m) != 0 {
		t.Errorf("a refused load left %v", m)
	}
}

func shellJSON(t *testing.T, root, cmd string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := shell.Main([]string{"--pin-root", root, "-j", "-c", cmd}, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// TestLoadVars sets the constants through the Go API the shell uses, in
// the other notations of a typed literal (hex), and opens what was pinned.
func TestLoadVars(t *testing.T) {
	root := bpftest.PinRoot(t)
	l, err := bpf.LoadFile(kv.BuiltinName, bpf.LoadOptions{PinRoot: root, StateDir: t.TempDir(),
		Vars: []bpf.VarSetting{{Name: kv.VarPort, Value: "0x1b58"}, {Name: kv.VarTxnTimeout, Value: "1000000"}}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := kv.Open(l.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c := kv.NewClient(h.Prog)
	c.Addr.DstPort = 7000
	if r, err := c.Begin(); err != nil || r.Status() != kv.StatusOK {
		t.Fatalf("BEGIN on 7000: %v %v", r, err)
	}
	if _, err := bpf.ParseVarSetting("kv_port"); err == nil {
		t.Error("ParseVarSetting took a word without '='")
	}
}
