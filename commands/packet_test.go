// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/bpfsh/bpfsh/commands"
	"github.com/bpfsh/bpfsh/testrun/packet"
)

// noPins is a pin root for tests that pin nothing.
const noPins = "/sys/fs/bpf/bpfsh-test-unused"

func TestPacketCommand(t *testing.T) {
	code, out, errs := bpfsh(t, noPins, "-c", `packet Ether() / IPv4(ttl=3) / UDP(dport=53)/Raw("ping")`)
	if code != 0 || errs != "" {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"46 bytes: Ether/IPv4/UDP/Raw\n",
		"IPv4  14-33 (20 bytes)\n",
		"  ttl      3\n",
		"  dport    53\n",
		`  load     "ping"` + "\n",
		"0020  00 02 9c 40 00 35 00 0c  ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	code, out, _ = bpfsh(t, noPins, "-j", "-c", `packet Ether()/IPv4()/UDP()`)
	var v struct {
		Length int
		Hex    string
		Layers []struct {
			Name   string
			Offset int
			Fields map[string]any
		}
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || code != 0 {
		t.Fatalf("JSON %q: %v", out, err)
	}
	if v.Length != 42 || len(v.Hex) != 84 || len(v.Layers) != 3 || v.Layers[1].Name != "IPv4" || v.Layers[1].Offset != 14 || v.Layers[1].Fields["proto"] != float64(17) || v.Layers[1].Fields["ttl"] != float64(64) || v.Layers[1].Fields["src"] != "10.0.0.1" {
		t.Errorf("JSON: %+v", v)
	}
	// Fields keep header order in JSON.
	if i, j := strings.Index(out, `"version"`), strings.Index(out, `"dst":"10.0.0.2"`); i < 0 || j < i {
		t.Errorf("JSON fields out of order: %s", out)
	}
}

func TestLetAndVariables(t *testing.T) {
	code, out, errs := bpfsh(t, noPins, "-c", `let p = Ether()/IPv4()/UDP()/Raw("ping"); let q=$p; let $r =hex 02 00 00 00 00 02 02 00 00 00 00 01 88 b5; packet $q; packet $r`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"$p = 46 bytes: Ether/IPv4/UDP/Raw\n",
		"$q = 46 bytes: Ether/IPv4/UDP/Raw\n",
		"$r = 14 bytes: Ether\n",
		"46 bytes: Ether/IPv4/UDP/Raw\n",
		"  type  0x88b5\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestPacketErrors(t *testing.T) {
	cases := []struct {
		line string
		code int
		msg  string
	}{
		{`packet Ehter()/IPv4()`, 2, `error: -c:1: packet: column 1: unknown layer "Ehter"; did you mean Ether?`},
		{`packet Ether(src 02:00:00:00:00:01)`, 2, `packet: column 11: expected '=' after field name "src"`},
		{`packet Ether()/IPv4(ttl=300)`, 2, `packet: column 18: IPv4.ttl: 300 does not fit in 8 bits`},
		{`packet`, 2, `packet needs a packet`},
		{`packet $nope`, 2, `packet: $nope: no such variable; keep a packet with let nope = EXPR`},
		{`packet @/nonexistent.pcap`, 1, `packet: @/nonexistent.pcap: open /nonexistent.pcap: no such file or directory`},
		{`packet layers Nope`, 2, `packet layers: no layer "Nope"`},
		{`let`, 2, `let needs NAME = PACKET`},
		{`let x Ether()`, 2, `let: expected '=' after "x"`},
		{`let 1x = Ether()`, 2, `let: "1x" is not a variable name`},
		{`let x =`, 2, `let x: nothing after '='`},
		{`let x = Ether()/UDP()`, 2, `let x: column 1: Ether.type: no type value announces UDP after Ether`},
	}
	for _, c := range cases {
		code, _, errs := bpfsh(t, noPins, "-c", c.line)
		if code != c.code || !strings.Contains(errs, c.msg) || strings.Count(errs, "\n") != 1 {
			t.Errorf("%s: exit %d, stderr %q; want exit %d and %q", c.line, code, errs, c.code, c.msg)
		}
	}
}

// A malformed expression is a usage error that still carries the column.
func TestExprErrorCarriesColumn(t *testing.T) {
	var cmd *commands.Command
	for _, c := range commands.All() {
		if c.Name == "packet" {
			cmd = c
		}
	}
	_, err := cmd.Run(&commands.Session{}, []string{"Ether()/IPv4(ttl=300)"})
	var pe *packet.Error
	if !commands.IsUsage(err) || !errors.As(err, &pe) || pe.Col != 18 {
		t.Fatalf("error %v: usage %v, column %+v", err, commands.IsUsage(err), pe)
	}
	if pe.Caret() != "Ether()/IPv4(ttl=300)\n                 ^" {
		t.Errorf("caret:\n%s", pe.Caret())
	}
}

func TestPacketLayers(t *testing.T) {
	code, out, _ := bpfsh(t, noPins, "-c", "packet layers")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"LAYER", "Ether", "Dot1Q", "IPv4", "IPv6", "UDP", "TCP", "ICMP", "ICMPv6", "Raw", "Padding", "computed"} {
		if !strings.Contains(out, want) {
			t.Errorf("packet layers lacks %q", want)
		}
	}
}
