/* See asm/types.h. The bpfel target is little-endian. */
#include <linux/byteorder/little_endian.h>
