/* See asm/types.h. */
#include <asm-generic/swab.h>
