// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"strconv"

	"github.com/bpfsh/bpfsh/bpf"
)

// counterTable shows a program's summed per-CPU counters (cache stats,
// kv stats): a counter and value row each, and as JSON one object of
// name to value.
func counterTable(counters []bpf.Counter) *Table {
	tab := &Table{Columns: []string{"counter", "value"}}
	obj := map[string]uint64{}
	for _, c := range counters {
		tab.Rows = append(tab.Rows, []string{c.Name, strconv.FormatUint(c.Value, 10)})
		obj[c.Name] = c.Value
	}
	tab.JSON = obj
	return tab
}
