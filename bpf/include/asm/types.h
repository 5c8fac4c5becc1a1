// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* BPF programs are built for the bpf target, which has no asm/ headers of
 * its own; the generic ones describe it exactly and keep the build
 * independent of the host's multiarch include directory. */
#include <asm-generic/types.h>
