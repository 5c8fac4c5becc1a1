// SPDX-License-Identifier: Apache-2.0

package commands

// All returns bpfsh's top-level commands, in the order help lists them.
// Each family's file defines its command; this is the one place they meet.
func All() []*Command {
	return []*Command{
		helpCmd,
		doctorCmd,
		loadCmd,
		unloadCmd,
		lsCmd,
		progCmd,
		mapCmd,
		btfCmd,
		linkCmd,
		netCmd,
		packetCmd,
		letCmd,
		runCmd,
		debugCmd,
		traceCmd,
		expectCmd,
		kvCmd,
		cacheCmd,
		redisCmd,
		proxyCmd,
		labCmd,
	}
}
