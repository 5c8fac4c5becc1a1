// SPDX-License-Identifier: Apache-2.0

package cache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/bpfsh/bpfsh/bpf"
)

// Redis, live
//
// redis.bpf.c answers Redis GETs from the server's own TCP socket, so the
// kernel's TCP does the sequence numbers and nothing needs a kernel patch
// (PROTOCOL.md "Redis, live"). RedisCache loads it, fills its command
// table, and attaches it: the sk_skb verdict and the sk_msg
// program to the sockhash, then the sock_ops program to a cgroup v2
// directory (the root, or the cgroup redis-server runs in), which puts
// every connection redis-server accepts from then on into the sockhash.
// Connections accepted before stay as they are.

// Names of the live Redis cache's programs and maps.
const (
	RedisSockops  = "redis_sockops"
	RedisParser   = "redis_parser"
	RedisVerdict  = "redis_verdict"
	RedisReplies  = "redis_replies"
	RedisSocks    = "redis_socks"
	RedisConns    = "redis_conns"
	RedisCacheMap = "redis_cache"
	RedisGens     = "redis_gens"
	RedisMeta     = "redis_meta"
	RedisCmds     = "redis_cmds"
	RedisStats    = "redis_stats"
	// RedisSockopsLink is the pinned name of the sock_ops link.
	RedisSockopsLink = "link_sockops"
)

// Limits of the live Redis cache (redis.bpf.c): longer keys and values
// are left to redis-server.
const (
	RedisMaxKey   = 64
	RedisMaxValue = 1024
)

// Command classes of redis_cmds (redis.bpf.c's R_C_*).
const (
	redisUnknown   = 0
	redisGet       = 1
	redisRead      = 2
	redisWrite1    = 3
	redisWrite1TTL = 4
	redisSet       = 5
	redisDel       = 6
	redisGlobal    = 7
	redisTaint     = 8
	redisSelect    = 9
	redisMulti     = 10
	redisExec      = 11
	redisDiscard   = 12
	redisAuth      = 13
	redisClient    = 14
)

// redisCommands classifies the commands the cache knows. A command not
// here is treated as one that may write any key and give it a TTL: it
// invalidates everything and stops fills until the cache is reloaded.
var redisCommands = map[string]uint32{
	"GET": redisGet,
	// Writes nothing.
	"PING": redisRead, "ECHO": redisRead, "EXISTS": redisRead, "TTL": redisRead, "PTTL": redisRead,
	"TYPE": redisRead, "STRLEN": redisRead, "MGET": redisRead, "GETRANGE": redisRead, "SUBSTR": redisRead,
	"INFO": redisRead, "DBSIZE": redisRead, "KEYS": redisRead, "SCAN": redisRead, "RANDOMKEY": redisRead,
	"COMMAND": redisRead, "CONFIG": redisRead, "AUTH": redisAuth, "TIME": redisRead, "LASTSAVE": redisRead,
	"QUIT": redisRead, "EXPIRETIME": redisRead, "PEXPIRETIME": redisRead, "OBJECT": redisRead,
	"LLEN": redisRead, "LRANGE": redisRead, "LINDEX": redisRead, "HGET": redisRead, "HGETALL": redisRead,
	"HMGET": redisRead, "HLEN": redisRead, "HEXISTS": redisRead, "HKEYS": redisRead, "HVALS": redisRead,
	"SMEMBERS": redisRead, "SISMEMBER": redisRead, "SCARD": redisRead, "ZRANGE": redisRead, "ZSCORE": redisRead,
	"ZCARD": redisRead, "ZRANK": redisRead, "MEMORY": redisRead, "LATENCY": redisRead, "SLOWLOG": redisRead,
	"READONLY": redisRead, "READWRITE": redisRead, "WATCH": redisRead, "UNWATCH": redisRead,
	"MULTI": redisMulti, "DISCARD": redisDiscard, "EXEC": redisExec,
	// Write their first argument.
	"SET": redisSet, "SETNX": redisWrite1, "GETSET": redisWrite1, "GETDEL": redisWrite1, "APPEND": redisWrite1,
	"INCR": redisWrite1, "DECR": redisWrite1, "INCRBY": redisWrite1, "DECRBY": redisWrite1,
	"INCRBYFLOAT": redisWrite1, "SETRANGE": redisWrite1, "PERSIST": redisWrite1,
	"LPUSH": redisWrite1, "RPUSH": redisWrite1, "LPOP": redisWrite1, "RPOP": redisWrite1, "LSET": redisWrite1,
	"LREM": redisWrite1, "LTRIM": redisWrite1, "LINSERT": redisWrite1, "LPUSHX": redisWrite1, "RPUSHX": redisWrite1,
	"HSET": redisWrite1, "HSETNX": redisWrite1, "HMSET": redisWrite1, "HDEL": redisWrite1, "HINCRBY": redisWrite1,
	"HINCRBYFLOAT": redisWrite1, "SADD": redisWrite1, "SREM": redisWrite1, "SPOP": redisWrite1,
	"ZADD": redisWrite1, "ZREM": redisWrite1, "ZINCRBY": redisWrite1,
	"DEL": redisDel, "UNLINK": redisDel,
	// Write their first argument and may give it a TTL.
	"SETEX": redisWrite1TTL, "PSETEX": redisWrite1TTL, "GETEX": redisWrite1TTL, "EXPIRE": redisWrite1TTL,
	"PEXPIRE": redisWrite1TTL, "EXPIREAT": redisWrite1TTL, "PEXPIREAT": redisWrite1TTL,
	// Write keys other than the first argument, set no TTL.
	"MSET": redisGlobal, "MSETNX": redisGlobal, "FLUSHDB": redisGlobal, "FLUSHALL": redisGlobal,
	"RENAME": redisGlobal, "RENAMENX": redisGlobal, "MOVE": redisGlobal, "SWAPDB": redisGlobal,
	"SMOVE": redisGlobal, "LMOVE": redisGlobal, "RPOPLPUSH": redisGlobal,
	"BLPOP": redisGlobal, "BRPOP": redisGlobal, "BLMOVE": redisGlobal, "BRPOPLPUSH": redisGlobal,
	// After these, replies cannot be matched to commands.
	"SUBSCRIBE": redisTaint, "PSUBSCRIBE": redisTaint, "SSUBSCRIBE": redisTaint, "MONITOR": redisTaint,
	"RESET": redisTaint, "SYNC": redisTaint, "PSYNC": redisTaint,
	"REPLCONF": redisTaint, "UNSUBSCRIBE": redisTaint, "PUNSUBSCRIBE": redisTaint, "SUNSUBSCRIBE": redisTaint,
	"PUBLISH": redisRead, "SPUBLISH": redisRead, "PUBSUB": redisRead,
	"SELECT": redisSelect,
	// HELLO (RESP3 replies are counted as RESP2's; a push desyncs the
	// connection when it comes) may authenticate, as AUTH does. CLIENT
	// has one reply, but for CLIENT REPLY, after which replies are
	// missing: the connection desyncs.
	"HELLO": redisAuth, "CLIENT": redisClient,
}

// RedisStatNames names redis_stats's counters by index (redis.bpf.c's
// R_ST_*).
var RedisStatNames = []string{
	"hit",        // GETs answered in the kernel
	"miss",       // GETs passed to redis-server
	"fill",       // replies to GETs that missed copied into the cache
	"invalidate", // writes that moved their key's generation
	"flush",      // everything invalidated (multi-key writes, unknown commands, ...)
	"pass",       // other commands passed untouched
	"taint",      // connections whose requests cannot be framed: pass-through, and fills stop
	"conn",       // connections redis-server accepted while attached
	"get_busy",   // GET hits passed: a reply was outstanding on the connection
	"fill_stale", // fills refused: the key was written after the miss
	"reply",      // replies of redis-server counted
	"desync",     // connections whose replies stopped being counted (pub/sub, MONITOR, ...): no hits there
	"hit_race",   // hits given up, passed as misses: the entry changed while it was copied
	"fill_race",  // fills given up: another fill of the key held its entry
}

// RedisCache is the live Redis cache, loaded and (after Attach) in front
// of redis-server on Port.
type RedisCache struct {
	Port   int
	Cgroup string
	Objs   RedisObjects

	sockops  link.Link
	attached []link.RawDetachProgramOptions
}

// NewRedisCache loads redis.bpf.c for redis-server's port and fills its
// command table. Nothing is attached yet.
func NewRedisCache(port int) (*RedisCache, error) {
	return LoadRedisCache(RedisConfig{Port: port})
}

// RedisConfig is what the live Redis cache is loaded with.
type RedisConfig struct {
	// Port is redis-server's TCP port.
	Port int
	// Trace makes the programs print a line with bpf_printk for every
	// hit, miss, fill and invalidation (redis_trace), which 'trace'
	// shows. It costs a write to the trace buffer per event: for
	// watching, not for benchmarks.
	Trace bool
}

// LoadRedisCache loads redis.bpf.c as c says and fills its command
// table. Nothing is attached yet.
func LoadRedisCache(c RedisConfig) (*RedisCache, error) {
	port := c.Port
	if port <= 0 || port > 65535 {
		return nil, fmt.Errorf("redis cache: port %d is not a TCP port", port)
	}
	spec, err := LoadRedis()
	if err != nil {
		return nil, fmt.Errorf("redis cache: %w", err)
	}
	if err := spec.Variables["redis_port"].Set(uint16(port)); err != nil {
		return nil, fmt.Errorf("redis cache: set redis_port: %w", err)
	}
	if c.Trace {
		if err := spec.Variables["redis_trace"].Set(uint8(1)); err != nil {
			return nil, fmt.Errorf("redis cache: set redis_trace: %w", err)
		}
	}
	r := &RedisCache{Port: port}
	if err := spec.LoadAndAssign(&r.Objs, nil); err != nil {
		return nil, fmt.Errorf("redis cache: load: %w", err)
	}
	if err := FillRedisCommands(r.Objs.RedisCmds); err != nil {
		r.Objs.Close()
		return nil, err
	}
	return r, nil
}

// FillRedisCommands writes the command table into a redis_cmds map.
func FillRedisCommands(m *ebpf.Map) error {
	for name, cls := range redisCommands {
		var k RedisR_name
		for i := range len(name) {
			k.N[i] = name[i]
		}
		if err := m.Put(k, cls); err != nil {
			return fmt.Errorf("redis cache: fill %s with %s: %w", RedisCmds, name, err)
		}
	}
	return nil
}

// Attach puts the cache in front of redis-server: the sk_skb and sk_msg
// programs on the sockhash, then sock_ops on cgroup (a cgroup v2
// directory; "" is the root, the mount bpf.Cgroup2Mount finds). sock_ops
// sees the connections of the processes in that cgroup and below it, so
// redis-server must run there; the root sees every process.
func (r *RedisCache) Attach(cgroup string) (err error) {
	if r.sockops != nil {
		return errors.New("redis cache: already attached")
	}
	if cgroup == "" {
		if cgroup, err = bpf.Cgroup2Mount(); err != nil {
			return fmt.Errorf("redis cache: %w", err)
		}
	}
	defer func() {
		if err != nil {
			r.Detach()
		}
	}()
	socks := r.Objs.RedisSocks.FD()
	for _, a := range []struct {
		p *ebpf.Program
		t ebpf.AttachType
	}{
		{r.Objs.RedisVerdict, ebpf.AttachSkSKBStreamVerdict},
		{r.Objs.RedisReplies, ebpf.AttachSkMsgVerdict},
	} {
		if err := link.RawAttachProgram(link.RawAttachProgramOptions{Target: socks, Program: a.p, Attach: a.t}); err != nil {
			return fmt.Errorf("redis cache: attach %s to %s: %w", a.p, RedisSocks, err)
		}
		r.attached = append(r.attached, link.RawDetachProgramOptions{Target: socks, Program: a.p, Attach: a.t})
	}
	l, err := link.AttachCgroup(link.CgroupOptions{Path: cgroup, Attach: ebpf.AttachCGroupSockOps, Program: r.Objs.RedisSockops})
	if err != nil {
		return fmt.Errorf("redis cache: attach %s to cgroup %s: %w", RedisSockops, cgroup, err)
	}
	r.sockops = l
	r.Cgroup = cgroup
	return nil
}

// Detach removes the sock_ops link (no new connection is added) and the
// programs from the sockhash (the connections in it go back to plain
// TCP when the map goes with Close).
func (r *RedisCache) Detach() error {
	var errs []error
	if r.sockops != nil {
		if err := r.sockops.Close(); err != nil {
			errs = append(errs, fmt.Errorf("redis cache: detach %s: %w", RedisSockops, err))
		}
		r.sockops = nil
	}
	for i := len(r.attached) - 1; i >= 0; i-- {
		if err := link.RawDetachProgram(r.attached[i]); err != nil {
			errs = append(errs, fmt.Errorf("redis cache: detach from %s: %w", RedisSocks, err))
		}
	}
	r.attached = nil
	return errors.Join(errs...)
}

// Close detaches and frees everything.
func (r *RedisCache) Close() error {
	err := r.Detach()
	return errors.Join(err, r.Objs.Close())
}

// Pin pins the maps, the programs and the sock_ops link under dir, so
// that the cache stays attached after the process ends (DetachPinned
// removes it).
func (r *RedisCache) Pin(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("redis cache: %w", err)
	}
	pins := map[string]interface{ Pin(string) error }{
		RedisSocks: r.Objs.RedisSocks, RedisConns: r.Objs.RedisConns, RedisCacheMap: r.Objs.RedisCache,
		RedisGens: r.Objs.RedisGens, RedisMeta: r.Objs.RedisMeta, RedisCmds: r.Objs.RedisCmds,
		RedisStats:   r.Objs.RedisStats,
		RedisSockops: r.Objs.RedisSockops, RedisVerdict: r.Objs.RedisVerdict,
		RedisReplies: r.Objs.RedisReplies,
	}
	if r.sockops != nil {
		pins[RedisSockopsLink] = r.sockops
	}
	for name, o := range pins {
		if err := o.Pin(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("redis cache: pin %s: %w", name, err)
		}
	}
	return nil
}

// DetachPinned undoes Attach and Pin for a cache pinned under dir: the
// sock_ops link goes, the programs leave the sockhash, the pins are
// removed (the maps and programs are freed when nothing else holds them).
func DetachPinned(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, RedisSocks)); err != nil {
		return fmt.Errorf("redis cache: nothing attached under %s", dir)
	}
	var errs []error
	if l, err := link.LoadPinnedLink(filepath.Join(dir, RedisSockopsLink), nil); err == nil {
		errs = append(errs, l.Unpin(), l.Close())
	}
	socks, err := ebpf.LoadPinnedMap(filepath.Join(dir, RedisSocks), nil)
	if err == nil {
		defer socks.Close()
		for _, a := range []struct {
			name string
			t    ebpf.AttachType
		}{{RedisReplies, ebpf.AttachSkMsgVerdict}, {RedisVerdict, ebpf.AttachSkSKBStreamVerdict}} {
			p, err := ebpf.LoadPinnedProgram(filepath.Join(dir, a.name), nil)
			if err != nil {
				continue
			}
			if err := link.RawDetachProgram(link.RawDetachProgramOptions{Target: socks.FD(), Program: p, Attach: a.t}); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("redis cache: detach %s: %w", a.name, err))
			}
			p.Close()
		}
	}
	for _, name := range []string{RedisSockopsLink, RedisSockops, RedisVerdict, RedisReplies,
		RedisSocks, RedisConns, RedisCacheMap, RedisGens, RedisMeta, RedisCmds, RedisStats} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	os.Remove(dir)
	return errors.Join(errs...)
}

// RedisStatsOf sums a redis_stats map's per-CPU counters, by name.
func RedisStatsOf(m *ebpf.Map) (map[string]uint64, error) {
	out := make(map[string]uint64, len(RedisStatNames))
	for i, name := range RedisStatNames {
		var per []uint64
		if err := m.Lookup(uint32(i), &per); err != nil {
			return nil, fmt.Errorf("redis cache: read counter %s: %w", name, err)
		}
		var sum uint64
		for _, v := range per {
			sum += v
		}
		out[name] = sum
	}
	return out, nil
}

// Stats reads the cache's counters.
func (r *RedisCache) Stats() (map[string]uint64, error) { return RedisStatsOf(r.Objs.RedisStats) }

// EstablishedTo counts the established TCP connections whose local port
// is port (tcp and tcp6 of this thread's network namespace): a server's
// connections accepted before the cache was attached, which it does not
// see. /proc/net is the namespace of the process's main thread, and Go
// parks (rather than ends) a main thread that a namespace-switching
// goroutine left locked, so after a veth harness ran in-process
// /proc/net may show another namespace: this reads the calling thread's.
func EstablishedTo(port int) (int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	n := 0
	for _, f := range []string{"/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return 0, err
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			fs := strings.Fields(line)
			// sl local_address rem_address st ...
			if len(fs) < 4 || fs[3] != "01" {
				continue
			}
			_, p, ok := strings.Cut(fs[1], ":")
			if !ok {
				continue
			}
			if v, err := strconv.ParseUint(p, 16, 16); err == nil && int(v) == port {
				n++
			}
		}
	}
	return n, nil
}
