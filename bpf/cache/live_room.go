// SPDX-License-Identifier: Apache-2.0

package cache

import "strconv"

// How far a hit can grow its request on veth
//
// xdp_cache_rx turns a get request into its reply in place, growing the
// frame with bpf_xdp_adjust_tail. How much it can grow is the buffer's
// tailroom, and on veth that is small. A frame made by a local socket
// has a kmalloc'd head, which veth's XDP path may not hand to XDP, so
// veth copies it into a page_pool fragment sized to the frame
// (skb_pp_cow_data: 256 bytes of headroom, the frame rounded up to the
// 64-byte cache line, the skb_shared_info). The tailroom is what the
// rounding left: roundup(frame, 64) - frame, 0 to 63 bytes. (The last
// fragment of each page gets the rest of the page, so about one request
// in four or five has far more room: those hits succeed by luck.)
//
// A get's frame is 14+20+8 (Ethernet, IPv4, UDP) + 8 (frame header) +
// len("get ") + key + len("\r\n") = 56 + key bytes, and the reply text is
// longer than the request text by len("VALUE ") - len("get ") + len(" ")
// + len(flags) + len(" ") + len(bytes) + len("\r\n") + bytes +
// len("\r\nEND\r\n"): 12 + digits(bytes) + bytes with flags 0. A reply
// that does not fit passes to memcached (pass_room).
//
// So with 16-byte keys (key:%012d) a value of up to 42 bytes is always
// answered; the room is largest (63) for keys of 9, 73, 137 or 201 bytes
// (values up to 49); keys of 8, 72, 136 or 200 bytes leave none. A real
// NIC driver gives XDP whole pages with 256 bytes of headroom and well
// over a kilobyte of tailroom: the limit is veth's with local senders,
// not the cache's. No sysctl changes the fragment size; a client cannot
// pad a get (the cache answers only exactly "get <key>\r\n", as memcached
// parses it).

// VethRoom is the tailroom xdp_cache_rx is sure to have on veth for a
// get of a key of keyLen bytes from a local socket (untagged IPv4, no
// options).
func VethRoom(keyLen int) int {
	frame := 56 + keyLen
	return (frame+63)/64*64 - frame
}

// VethMaxValue is the largest value (flags 0) whose hit always fits in
// VethRoom(keyLen); -1 when none does.
func VethMaxValue(keyLen int) int {
	room := VethRoom(keyLen)
	for v := MaxValue; v >= 0; v-- {
		if 12+len(strconv.Itoa(v))+v <= room {
			return v
		}
	}
	return -1
}
