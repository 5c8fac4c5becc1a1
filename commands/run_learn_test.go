// SPDX-License-Identifier: Apache-2.0

package commands_test

import (
	"testing"
)

// A run over a hash map too large to copy cheaply is diffed by the keys
// the emulator saw it touch when bpfsh loaded the object (the emulator
// finds it through the load manifest), and says so on a "map diff" line;
// repeated runs, which the emulator does not stand in for, copy the map
// in the kernel, and say that.
func TestRunLargeMap(t *testing.T) {
	out := debugScript(t,
		"load ../testrun/fixture/big_bpfel.o name bg",
		`run bg/xdp_big packet Ether()/IPv4()/UDP()/Raw("ping")`,
		`run bg/xdp_big packet Ether()/IPv4()/UDP()/Raw("ping")`,
		`run bg/xdp_big packet Ether()/IPv4()/UDP()/Raw("ping") repeat 2`,
		"unload bg",
	)
	wantInOrder(t, out,
		"map       big: added 8 = 1000",
		"map diff  big: by the 2 key(s) the emulator saw the run touch",
		"map       big: 8 = 2000 (was 1000)",
		"map diff  big: by the 2 key(s) the emulator saw the run touch",
		"map       big: 8 = 5000 (was 2000)",
		"map diff  big: copied whole in the kernel before and after", "the emulator stands in for a single run, not repeated ones",
	)
}
