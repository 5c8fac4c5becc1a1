/* See asm/types.h. */
#include <asm-generic/bitsperlong.h>
