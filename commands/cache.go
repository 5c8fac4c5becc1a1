// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/bpfsh/bpfsh/bpf/cache"
)

// cacheCmd is the family of commands that talk to the in-kernel memcached
// cache (bpf/cache): each crafts the packets a memcached client and server
// would exchange and test-runs them through the loaded programs in the
// order the real traffic meets them, so what the shell shows is what the
// programs did. Every sub-command is in Subs below (attach and detach
// are declared in cache_attach.go, bench in cache_bench.go).
var cacheCmd = &Command{
	Name:  "cache",
	Short: "drive the in-kernel memcached cache: get, set, del, stats, attach, detach, bench",
	Long: "cache talks to the memcached cache loaded with 'load cache' (the XDP program xdp_cache_rx, the TC " +
		"egress program tc_cache_fill and their maps under <pin-root>/cache/; bpf/cache/PROTOCOL.md). Each " +
		"sub-command crafts the packets a memcached client and the server would exchange, with the packet " +
		"layers run uses (UDP()/MemcacheUDP(req_id=N)/Raw(\"get k\\r\\n\")), and test-runs each through the program " +
		"the real packet would meet: requests to memcached through xdp_cache_rx, memcached's replies through " +
		"tc_cache_fill. 'cache get' shows a hit (XDP_TX and the decoded VALUE) or a miss (XDP_PASS: the request " +
		"goes on to memcached); 'cache set' plays a write, its acknowledgement, a get that misses and memcached's " +
		"VALUE reply, so that the next get hits; 'cache del' plays a delete. The state is the pinned maps, so " +
		"another shell sees it; 'map dump cache/cache' lists the cached entries (key, flags, the reply text). " +
		"'cache attach IFACE' puts the programs on a real interface. KEY is one word: memcached's 1 to 250 " +
		"printable bytes; VALUE is one word (quote it to keep spaces) or bytes as 'hex 6162', at most 1024 bytes " +
		"(larger values are never cached). '--detail' shows each run: the packet as a layer expression, the " +
		"reply layer by layer, the map entries changed. '--name NAME' talks to cache loaded as 'load cache name NAME'.",
	Example: "cache set greeting hello",
	Subs: []*Command{
		{
			Name:  "get",
			Usage: "KEY [KEY...] [--detail] [--name NAME]",
			Short: "send a UDP get through xdp_cache_rx: a hit is answered with XDP_TX, a miss passes",
			Long: "get sends 'get KEY [KEY...]\\r\\n' in a memcached UDP datagram (frame header with the session's next " +
				"request id) to cache_port through xdp_cache_rx. On a hit the program turns the request into the reply " +
				"(XDP_TX): get shows each VALUE (key, flags, bytes, data), checked against the request (addresses, " +
				"ports and request id swapped back). On a miss the request passes (XDP_PASS) on to memcached and the " +
				"program records the miss so that memcached's reply can fill the cache; a miss is an answer, not an " +
				"error. A get of several keys is answered only when every key is cached. The result is a run: " +
				"'expect retval XDP_TX' and 'expect packet' check it.",
			Example: "cache get greeting",
			Run:     runCacheGet,
		},
		{
			Name:  "set",
			Usage: "KEY VALUE [--flags N] [--detail] [--name NAME]",
			Short: "play a memcached set: the write invalidates, the next get misses, memcached's reply fills",
			Long: "set plays what a set does to the cache when the traffic flows through it: the client's " +
				"'set KEY FLAGS 0 LEN\\r\\nVALUE\\r\\n' over TCP through xdp_cache_rx (the key is invalidated), memcached's " +
				"'STORED\\r\\n' through tc_cache_fill, a UDP 'get KEY' through xdp_cache_rx (a miss, recorded), and " +
				"memcached's 'VALUE KEY FLAGS LEN\\r\\nVALUE\\r\\nEND\\r\\n' reply (same request id, addresses and ports " +
				"reversed) through tc_cache_fill, which fills the cache. Each step shows its verdict and the counters " +
				"that moved; the following 'cache get KEY' hits. --flags sets memcached's client flags (0 unless given). " +
				"A value over 1024 bytes is refused: the program would never fill it.",
			Example: `cache set greeting "hello world" --flags 7`,
			Run:     runCacheSet,
		},
		{
			Name:    "del",
			Usage:   "KEY [--detail] [--name NAME]",
			Short:   "play a memcached delete: xdp_cache_rx invalidates the key",
			Long:    "del sends the client's 'delete KEY\\r\\n' over TCP through xdp_cache_rx, which invalidates the key before memcached sees the write, and memcached's answer through tc_cache_fill. It says whether the key was cached; the next 'cache get KEY' misses.",
			Example: "cache del greeting",
			Run:     runCacheDel,
		},
		{
			Name:    "stats",
			Usage:   "[--name NAME] | --redis",
			Short:   "the programs' counters, summed over the CPUs (--redis: the live Redis cache's)",
			Long:    "stats reads the per-CPU counters of cache/stats and shows each summed over the CPUs, by name: gets, hits, misses, fills, fills refused by reason, invalidations, and packets passed by reason (bpf/cache/PROTOCOL.md, Counters). Test-runs and live traffic on an attached interface count alike.",
			Example: "cache stats",
			Run:     runCacheStats,
		},
		cacheAttachCmd,
		cacheDetachCmd,
		cacheBenchCommand(),
	},
}

func runCacheGet(s *Session, args []string) (Result, error) {
	const cmd = "cache get"
	name, detail, _, keys, err := cacheFlags(cmd, args, false)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, Usagef("%s needs a KEY", cmd)
	}
	for _, k := range keys {
		if err := checkCacheKey(cmd, k); err != nil {
			return nil, err
		}
	}
	t, err := openCache(s, cmd, name)
	if err != nil {
		return nil, err
	}
	defer t.close()
	req := &cachePacket{what: "get", udp: true, toServer: true, reqID: cacheState(s).nextReqID(),
		text: []byte("get " + strings.Join(keys, " ") + "\r\n")}
	step, err := t.run(s, req, detail)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	o := step.o
	j := map[string]any{"keys": keys, "req_id": req.reqID, "verdict": o.RetvalName, "counters": step.json(false).Counters, "packet": step.expr}
	var lines [][2]string
	add := func(name, value string) { lines = append(lines, [2]string{name, value}) }
	const xdpPass, xdpTX = 2, 3
	switch o.Retval {
	case xdpTX:
		text, err := udpReplyText(o.DataOut, t.port, req.reqID)
		var vals []cacheValue
		if err == nil {
			vals, err = parseValues(text)
		}
		if err == nil {
			err = sameKeys(keys, vals)
		}
		if err != nil {
			return nil, cacheRunError(fmt.Sprintf("%s: %s/%s answered XDP_TX with a wrong reply: %v", cmd, t.name, cache.RxProgram, err), []*cacheStep{step})
		}
		j["result"] = "hit"
		add("hit", fmt.Sprintf("XDP_TX: answered from the cache (request id %d)", req.reqID))
		jv := []cacheValueJSON{}
		for _, v := range vals {
			add("key", strconv.Quote(v.Key))
			add("flags", strconv.FormatUint(uint64(v.Flags), 10))
			add("bytes", strconv.Itoa(len(v.Data)))
			add("data", kvShow(v.Data))
			jv = append(jv, cacheValueJSON{Key: v.Key, Flags: v.Flags, Bytes: len(v.Data), Data: kvJSONBytes(v.Data)})
		}
		j["values"] = jv
	case xdpPass:
		if step.movedBy("miss") > 0 {
			j["result"] = "miss"
			add("miss", fmt.Sprintf("XDP_PASS: the request goes on to memcached (request id %d); its VALUE reply will fill the cache", req.reqID))
		} else {
			j["result"] = "pass"
			add("passed", fmt.Sprintf("XDP_PASS: the program left the request to memcached (request id %d)", req.reqID))
		}
		if len(keys) > 1 {
			var absent, quoted []string
			for _, k := range keys {
				if _, ok, err := t.cached(k); err == nil && !ok {
					absent, quoted = append(absent, k), append(quoted, strconv.Quote(k))
				}
			}
			if len(absent) > 0 {
				add("not cached", strings.Join(quoted, " "))
				j["not_cached"] = absent
			}
		} else {
			add("key", strconv.Quote(keys[0]))
		}
	default:
		return nil, cacheRunError(fmt.Sprintf("%s: %s/%s answered %s, neither a hit (XDP_TX) nor a pass", cmd, t.name, cache.RxProgram, o.RetvalName), []*cacheStep{step})
	}
	add("counters", step.movedText())
	body := kvLines(lines)
	if detail {
		body += "\npacket:   " + step.expr + "\n" + FormatOutcome(o)
		j["run"] = o.JSON()
	}
	return &RunResult{Outcome: o, View: &Text{Body: body, JSON: j}}, nil
}

// sameKeys checks that a hit answers the keys asked, in order.
func sameKeys(keys []string, vals []cacheValue) error {
	if len(vals) != len(keys) {
		return fmt.Errorf("%d values for %d keys", len(vals), len(keys))
	}
	for i, v := range vals {
		if v.Key != keys[i] {
			return fmt.Errorf("value %d is for key %q, not %q", i+1, v.Key, keys[i])
		}
	}
	return nil
}

// cacheRunError is a failed exchange, its steps shown below its line.
func cacheRunError(msg string, steps []*cacheStep) error {
	return &kvError{msg: msg, detail: strings.TrimRight(stepsText(steps, true), "\n")}
}

func runCacheSet(s *Session, args []string) (Result, error) {
	const cmd = "cache set"
	name, detail, fl, words, err := cacheFlags(cmd, args, true)
	if err != nil {
		return nil, err
	}
	if len(words) < 2 {
		return nil, Usagef("%s needs a KEY and a VALUE", cmd)
	}
	key := words[0]
	if err := checkCacheKey(cmd, key); err != nil {
		return nil, err
	}
	value, err := kvBytes(cmd, "VALUE", words[1:])
	if err != nil {
		return nil, err
	}
	if len(value) > cache.MaxValue {
		return nil, Usagef("%s: a value of %d bytes is over the cache's limit of %d: tc_cache_fill would not fill it (fill_skip) and every get of it would go on to memcached; nothing was run", cmd, len(value), cache.MaxValue)
	}
	var flags uint32
	if fl != nil {
		flags = *fl
	}
	t, err := openCache(s, cmd, name)
	if err != nil {
		return nil, err
	}
	defer t.close()

	write := append(fmt.Appendf(nil, "set %s %d 0 %d\r\n", key, flags, len(value)), value...)
	write = append(write, "\r\n"...)
	reqID := cacheState(s).nextReqID()
	want := valueText(key, flags, value)
	plan := []*cachePacket{
		{what: "write", toServer: true, text: write},
		{what: "ack", text: []byte("STORED\r\n"), tcpLen: len(write)},
		{what: "get", udp: true, toServer: true, reqID: reqID, text: []byte("get " + key + "\r\n")},
		{what: "reply", udp: true, reqID: reqID, text: want},
	}
	steps, err := t.play(s, cmd, plan, detail)
	if err != nil {
		return nil, err
	}
	got, ok, err := t.cached(key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	if !ok || !bytes.Equal(got, want) {
		why := "memcached's VALUE reply did not fill the cache"
		if ok {
			why = fmt.Sprintf("the cache holds %q for it, not memcached's reply", got)
		}
		return nil, cacheRunError(fmt.Sprintf("%s: %s (%s)", cmd, why, steps[len(steps)-1].movedText()), steps)
	}
	head := fmt.Sprintf("set %s = %s (flags %d, %d bytes), as the traffic flows through the cache:\n", strconv.Quote(key), kvShow(value), flags, len(value))
	tail := fmt.Sprintf("cached: %s: the next 'cache get %s' is answered from XDP\n", strconv.Quote(key), key)
	return &Text{Body: head + stepsText(steps, detail) + tail, JSON: cacheExchangeJSON(key, steps, detail, map[string]any{
		"value": kvJSONBytes(value), "flags": flags, "cached": true})}, nil
}

func runCacheDel(s *Session, args []string) (Result, error) {
	const cmd = "cache del"
	name, detail, _, words, err := cacheFlags(cmd, args, false)
	if err != nil {
		return nil, err
	}
	switch {
	case len(words) == 0:
		return nil, Usagef("%s needs a KEY", cmd)
	case len(words) > 1:
		return nil, Usagef("%s takes one KEY, not %d words", cmd, len(words))
	}
	key := words[0]
	if err := checkCacheKey(cmd, key); err != nil {
		return nil, err
	}
	t, err := openCache(s, cmd, name)
	if err != nil {
		return nil, err
	}
	defer t.close()
	_, was, err := t.cached(key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	// memcached answers DELETED for a key it holds; one the cache holds
	// it holds too. Of any other key the shell cannot know.
	answer := "NOT_FOUND\r\n"
	if was {
		answer = "DELETED\r\n"
	}
	del := []byte("delete " + key + "\r\n")
	plan := []*cachePacket{
		{what: "delete", toServer: true, text: del},
		{what: "ack", text: []byte(answer), tcpLen: len(del)},
	}
	steps, err := t.play(s, cmd, plan, detail)
	if err != nil {
		return nil, err
	}
	_, still, err := t.cached(key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	if still {
		return nil, cacheRunError(fmt.Sprintf("%s: %s is still cached after the delete went through %s (%s)", cmd, strconv.Quote(key), cache.RxProgram, steps[0].movedText()), steps)
	}
	tail := fmt.Sprintf("invalidated: %s was cached and is no more: the next get goes on to memcached\n", strconv.Quote(key))
	if !was {
		tail = fmt.Sprintf("not cached: %s was not in the cache; the delete still invalidated its generation, so no fill in flight can bring it back\n", strconv.Quote(key))
	}
	return &Text{Body: stepsText(steps, detail) + tail, JSON: cacheExchangeJSON(key, steps, detail, map[string]any{"was_cached": was})}, nil
}

// play runs the packets of an exchange in order, each through the
// program it would meet; a verdict other than pass (the programs never
// drop, and answer only gets) stops it as an error.
func (t *cacheTarget) play(s *Session, cmd string, plan []*cachePacket, detail bool) ([]*cacheStep, error) {
	var steps []*cacheStep
	for _, p := range plan {
		st, err := t.run(s, p, detail)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cmd, err)
		}
		steps = append(steps, st)
		const xdpPass, tcOK = 2, 0
		if (p.toServer && st.o.Retval != xdpPass) || (!p.toServer && st.o.Retval != tcOK) {
			return nil, cacheRunError(fmt.Sprintf("%s: %s answered the %s with %s; it lets every such packet go on", cmd, st.o.Program, p.what, st.o.RetvalName), steps)
		}
	}
	return steps, nil
}

// cacheExchangeJSON is set's and del's result in JSON (-j).
func cacheExchangeJSON(key string, steps []*cacheStep, detail bool, more map[string]any) map[string]any {
	j := map[string]any{"key": key}
	var js []cacheStepJSON
	for _, st := range steps {
		js = append(js, st.json(detail))
	}
	j["steps"] = js
	for k, v := range more {
		j[k] = v
	}
	return j
}

func runCacheStats(s *Session, args []string) (Result, error) {
	const cmd = "cache stats"
	redis, _, args, err := redisFlags(cmd, args)
	if err != nil {
		return nil, err
	}
	if redis {
		if len(args) > 0 {
			return nil, Usagef("%s --redis takes no other arguments, not %q", cmd, args[0])
		}
		return runRedisStats(s, cmd)
	}
	name, _, _, rest, err := cacheFlags(cmd, args, false)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		return nil, Usagef("%s takes no arguments, not %q", cmd, rest[0])
	}
	if len(args) == 0 && redisAttached(s) && !cacheLoaded(s, name) {
		// Only the Redis cache is there: plain 'cache stats' shows it.
		return runRedisStats(s, cmd)
	}
	t, err := openCache(s, cmd, name)
	if err != nil {
		return nil, err
	}
	defer t.close()
	stats, err := cache.ReadStats(t.st)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return counterTable(stats), nil
}
