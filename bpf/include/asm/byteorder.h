// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* See asm/types.h. The bpfel target is little-endian. */
#include <linux/byteorder/little_endian.h>
