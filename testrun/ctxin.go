// SPDX-License-Identifier: Apache-2.0

package testrun

import "github.com/cilium/ebpf"

// ContextIn is ctx_in as Run would send it for opts (opts.Program's
// context typed by field name, bpfsh's defaults filled in); nil for a
// program type that takes none. The debugger starts from it when it
// cannot run the input through the kernel first.
func ContextIn(prog *ebpf.Program, opts Options) ([]byte, error) {
	info, err := prog.Info()
	if err != nil {
		return nil, err
	}
	cs, err := buildCtx(info.Type, info, opts.Ctx, opts.CtxRaw, len(opts.Data))
	if err != nil || cs == nil {
		return nil, err
	}
	return cs.In, nil
}
