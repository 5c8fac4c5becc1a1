// SPDX-License-Identifier: Apache-2.0

package commands

import "github.com/bpfsh/bpfsh/testrun"

// RunResult is what run returns: the outcome of one run with its packets
// decoded, so that a later expect (retval, packet, payload, trace) and
// record read typed values instead of the text shown.
type RunResult struct {
	// Outcome is everything the run showed, its packets decoded
	// (LayersIn, LayersOut; nil when the program type has no packet).
	Outcome *testrun.Outcome
	// View is how the shell shows the run: run's text and its -j JSON.
	View *Text
}

// Render is the run as the shell shows it (see Renderable).
func (r *RunResult) Render() Result {
	if r.View == nil {
		return nil
	}
	return r.View
}

// runOf returns the run in res, if res is one.
func runOf(res Result) (*RunResult, bool) {
	r, ok := res.(*RunResult)
	return r, ok && r.Outcome != nil
}
