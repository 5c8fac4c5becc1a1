// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/gopacket/gopacket"

	"github.com/bpfsh/bpfsh/testrun/packet"
)

// The RESP packet layer: a Redis request as an array of bulk strings.
// TCP()/RESP("GET", "foo") builds "*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\n" to
// port 6379, and a segment to or from port 6379 decodes as RESP: arrays,
// bulk strings, simple strings, errors and integers (PROTOCOL.md "Redis
// RESP").
func init() {
	packet.Register(&packet.LayerDef{
		Name:    "RESP",
		Summary: "a Redis RESP value: a request is an array of bulk strings (bpf/cache/PROTOCOL.md)",
		Fields: []packet.FieldDef{
			{Name: "args", Kind: packet.KindStrings, Help: `the request's words, ["GET", "foo"]; decoded: the value's strings`},
		},
		Positional: "args",
		Variadic:   true,
		Binds:      []packet.Bind{{Lower: "TCP", Field: "dport", Value: RedisPort}, {Lower: "TCP", Field: "sport", Value: RedisPort}},
		Build:      buildRESP,
		Decode:     decodeRESP,
	})
}

// RESPArray encodes args as a RESP array of bulk strings, as clients send
// commands.
func RESPArray(args ...string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.Bytes()
}

// RESPBulk encodes a RESP bulk string reply: "$<len>\r\n<data>\r\n".
func RESPBulk(data string) []byte {
	return []byte("$" + strconv.Itoa(len(data)) + "\r\n" + data + "\r\n")
}

func buildRESP(c *packet.BuildContext) (gopacket.SerializableLayer, error) {
	args := c.Strings("args")
	if len(args) == 0 {
		return nil, fmt.Errorf(`a RESP request needs at least one word: RESP("GET", "foo")`)
	}
	return gopacket.Payload(RESPArray(args...)), nil
}

// respValue reads one RESP value at the start of data: its strings (an
// array's elements, flattened one level), a description, and its length.
func respValue(data []byte, depth int) (strs []string, what string, n int, err error) {
	line := bytes.Index(data, []byte("\r\n"))
	if len(data) == 0 || line < 0 {
		return nil, "", 0, fmt.Errorf("a RESP value ends with \\r\\n; %d bytes without one", len(data))
	}
	body := string(data[1:line])
	switch data[0] {
	case '+':
		return []string{body}, "simple string", line + 2, nil
	case '-':
		return []string{body}, "error", line + 2, nil
	case ':':
		if _, err := strconv.ParseInt(body, 10, 64); err != nil {
			return nil, "", 0, fmt.Errorf("RESP integer %q is not a number", body)
		}
		return []string{body}, "integer", line + 2, nil
	case '$':
		l, err := strconv.Atoi(body)
		if err != nil || l < -1 {
			return nil, "", 0, fmt.Errorf("RESP bulk length %q is not a length", body)
		}
		if l == -1 {
			return nil, "nil bulk string", line + 2, nil
		}
		end := line + 2 + l
		if len(data) < end+2 || string(data[end:end+2]) != "\r\n" {
			return nil, "", 0, fmt.Errorf("RESP bulk string of %d bytes is cut short or not ended by \\r\\n", l)
		}
		return []string{string(data[line+2 : end])}, "bulk string", end + 2, nil
	case '*':
		cnt, err := strconv.Atoi(body)
		if err != nil || cnt < -1 {
			return nil, "", 0, fmt.Errorf("RESP array length %q is not a length", body)
		}
		if cnt == -1 {
			return nil, "nil array", line + 2, nil
		}
		if depth > 4 {
			return nil, "", 0, fmt.Errorf("RESP arrays nested too deep")
		}
		off := line + 2
		for i := 0; i < cnt; i++ {
			s, _, m, err := respValue(data[off:], depth+1)
			if err != nil {
				return nil, "", 0, fmt.Errorf("element %d: %v", i, err)
			}
			strs = append(strs, s...)
			off += m
		}
		return strs, fmt.Sprintf("array of %d", cnt), off, nil
	}
	return nil, "", 0, fmt.Errorf("RESP values start with + - : $ or *, not %q", data[0])
}

func decodeRESP(data []byte, _ *packet.Layer) (*packet.Decoded, error) {
	strs, what, n, err := respValue(data, 0)
	if err != nil {
		return nil, err
	}
	if strs == nil {
		strs = []string{}
	}
	d := &packet.Decoded{HeaderLen: n, Next: "Raw", Note: what,
		Fields: []packet.FieldValue{{Name: "args", Value: strs, Off: 0, Len: n}}}
	if n < len(data) {
		d.Note += fmt.Sprintf("; %d more bytes follow (pipelined)", len(data)-n)
	}
	return d, nil
}
