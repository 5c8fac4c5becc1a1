// SPDX-License-Identifier: Apache-2.0

package commands

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/bpfsh/bpfsh/bpf"
	"github.com/bpfsh/bpfsh/bpf/cache"
)

// The live Redis cache (bpf/cache/redis.bpf.c) in the shell: 'cache
// attach --redis [port N] [cgroup PATH] [trace]' loads it, attaches it
// (sock_ops on the cgroup v2 root, or on the cgroup PATH redis-server
// runs in; the verdict and the replies program on its sockhash) and pins
// it under <pin-root>/redis_cache/, so it stays after the shell ends;
// 'cache detach --redis' (or 'cache detach' when only it is attached)
// removes it; 'cache stats --redis' reads its counters.

// redisPinName is the directory under the pin root of the attached Redis
// cache.
const redisPinName = "redis_cache"

// redisFlags takes --redis (or --resp) and "port N" / "--port N" out of
// args; redis says whether --redis was there.
func redisFlags(cmd string, args []string) (redis bool, port int, rest []string, err error) {
	port = cache.RedisPort
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--redis" || a == "--resp":
			redis = true
		case redis && (a == "port" || a == "--port"):
			if i+1 >= len(args) {
				return false, 0, nil, Usagef("%s: %s needs redis-server's TCP port after it", cmd, a)
			}
			n, perr := strconv.Atoi(args[i+1])
			if perr != nil || n < 1 || n > 65535 {
				return false, 0, nil, Usagef("%s: port %q: a TCP port is a number from 1 to 65535", cmd, args[i+1])
			}
			port = n
			i++
		case redis && strings.HasPrefix(a, "--port="):
			n, perr := strconv.Atoi(strings.TrimPrefix(a, "--port="))
			if perr != nil || n < 1 || n > 65535 {
				return false, 0, nil, Usagef("%s: %s: a TCP port is a number from 1 to 65535", cmd, a)
			}
			port = n
		default:
			rest = append(rest, a)
		}
	}
	return redis, port, rest, nil
}

func redisDir(s *Session) string { return filepath.Join(s.PinRoot, redisPinName) }

func redisAttached(s *Session) bool {
	_, err := os.Stat(filepath.Join(redisDir(s), cache.RedisSocks))
	return err == nil
}

// cacheLoaded says whether the memcached cache NAME is loaded (pinned).
func cacheLoaded(s *Session, name string) bool {
	_, err := os.Stat(filepath.Join(s.PinRoot, name))
	return err == nil
}

// redisAttachOptions reads what cache attach --redis takes besides
// port N: cgroup PATH and trace.
func redisAttachOptions(cmd string, rest []string) (cgroup string, trace bool, err error) {
	for i := 0; i < len(rest); i++ {
		switch a := rest[i]; {
		case a == "trace" || a == "--trace":
			trace = true
		case a == "cgroup" || a == "--cgroup":
			if i+1 >= len(rest) {
				return "", false, Usagef("%s: %s needs a cgroup v2 directory after it (absolute, or under the cgroup v2 mount: bpfsh-redis-6379)", cmd, a)
			}
			cgroup = rest[i+1]
			if cgroup == "" {
				return "", false, Usagef("%s: cgroup needs a cgroup v2 directory, not an empty word", cmd)
			}
			i++
		case strings.HasPrefix(a, "--cgroup="):
			cgroup = strings.TrimPrefix(a, "--cgroup=")
			if cgroup == "" {
				return "", false, Usagef("%s: --cgroup= needs a cgroup v2 directory", cmd)
			}
		default:
			return "", false, Usagef("%s --redis takes port N, cgroup PATH and trace, not %q", cmd, a)
		}
	}
	return cgroup, trace, nil
}

func runRedisAttach(s *Session, cmd string, port int, rest []string) (Result, error) {
	cgroupArg, trace, err := redisAttachOptions(cmd, rest)
	if err != nil {
		return nil, err
	}
	dir := redisDir(s)
	if redisAttached(s) {
		return nil, fmt.Errorf("%s: the Redis cache is already attached (%s); 'cache detach --redis' first", cmd, dir)
	}
	cgroup, err := bpf.ResolveCgroup(cgroupArg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	if !bpf.OnBPFFS(s.PinRoot) {
		if err := bpf.EnsureBPFFS(); err != nil {
			return nil, fmt.Errorf("%s: %w", cmd, err)
		}
		if !bpf.OnBPFFS(s.PinRoot) {
			return nil, fmt.Errorf("%s: the pin root %s is not on a bpf file system", cmd, s.PinRoot)
		}
	}
	rc, err := cache.LoadRedisCache(cache.RedisConfig{Port: port, Trace: trace})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	defer rc.Objs.Close()
	if err := rc.Attach(cgroup); err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	if err := rc.Pin(dir); err != nil {
		rc.Detach()
		cache.DetachPinned(dir)
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	who := "every process's"
	if mnt, err := bpf.Cgroup2Mount(); err == nil && cgroup != mnt {
		who = "its processes'"
	}
	body := fmt.Sprintf("attached the Redis cache for port %d: %s on cgroup %s (it sees %s connections), %s and %s on %s (pinned under %s)\n"+
		"connections redis-server accepts from now on are cached; those it accepted before are not seen, and their writes do not invalidate: "+
		"reconnect them; 'cache stats --redis' counts, 'cache detach --redis' removes it\n",
		port, cache.RedisSockops, rc.Cgroup, who, cache.RedisVerdict, cache.RedisReplies, cache.RedisSocks, dir)
	if trace {
		body += "trace: every hit, miss, fill and invalidation prints a line: 'trace grep redis' shows them (one write to the trace buffer each: not for benchmarks)\n"
	}
	if n := closeRedisConns(s, port); n > 0 {
		body += "closed this shell's 'redis cli' connection: the next command makes one the cache sees\n"
	}
	before, _ := cache.EstablishedTo(port)
	if before > 0 {
		body += fmt.Sprintf("warning: %d connection(s) to port %d were established before attach: the cache does not see them, "+
			"and a write on one does not invalidate; reconnect those clients\n", before, port)
	}
	return &Text{Body: body, JSON: map[string]any{"port": port, "cgroup": rc.Cgroup, "trace": trace, "pinned": dir, "established_before": before}}, nil
}

func runRedisDetach(s *Session, cmd string) (Result, error) {
	dir := redisDir(s)
	if !redisAttached(s) {
		return nil, fmt.Errorf("%s: the Redis cache is not attached (nothing under %s)", cmd, dir)
	}
	if err := cache.DetachPinned(dir); err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return &Text{Body: "detached the Redis cache (sock_ops link, sockhash programs and pins under " + dir + " removed)\n",
		JSON: map[string]any{"detached": "redis", "pinned": dir}}, nil
}

func runRedisStats(s *Session, cmd string) (Result, error) {
	dir := redisDir(s)
	m, err := ebpf.LoadPinnedMap(filepath.Join(dir, cache.RedisStats), nil)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: the Redis cache is not attached ('cache attach --redis' attaches it)", cmd)
		}
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	defer m.Close()
	stats, err := bpf.SumCounters(m, cache.RedisStatNames, cmd)
	if err != nil {
		return nil, err
	}
	return counterTable(stats), nil
}
