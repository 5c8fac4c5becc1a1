// SPDX-License-Identifier: Apache-2.0

package cache

import "testing"

func TestLoadVerifies(t *testing.T) {
	c := load(t)
	for _, name := range []string{RxProgram, FillProgram, RESPProgram, RESPFillProgram} {
		info, err := c.coll.Programs[name].Info()
		if err != nil {
			t.Fatal(err)
		}
		n, _ := info.VerifiedInstructions()
		t.Logf("%s: %d verified instructions", name, n)
	}
	if got := c.coll.Maps[StatsMap].MaxEntries(); got != StatSlots || len(StatNames) > StatSlots {
		t.Errorf("stats map has %d slots, StatSlots %d, StatNames %d", got, StatSlots, len(StatNames))
	}
}
