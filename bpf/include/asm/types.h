/* BPF programs are built for the bpf target, which has no asm/ headers of
 * its own; the generic ones describe it exactly and keep the build
 * independent of the host's multiarch include directory. */
#include <asm-generic/types.h>
