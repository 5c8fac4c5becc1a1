// SPDX-License-Identifier: Apache-2.0

package proxy

import "fmt"

// Status is what `proxy status` shows: the front's view (clients admitted,
// waiting, servers) and the data path's, read from its maps.
type Status struct {
	Listen   string   `json:"listen"`
	Server   string   `json:"server"`
	User     string   `json:"user"`     // the role the pool logs in as
	Database string   `json:"database"` // the one database pooled
	Mode     string   `json:"mode"`
	Pool     int      `json:"pool"`
	Auth     string   `json:"auth"`     // the user list's path, or "trust (loopback)"
	Clients  int      `json:"clients"`  // connected, authenticated clients
	Waiting  int      `json:"waiting"`  // clients queued in user space for a server
	Servers  int      `json:"servers"`  // server connections open (in the data path or being reset)
	Counters Counters `json:"counters"` // the front's counters since start
	Kernel   Snapshot `json:"kernel"`   // the data path's maps and counters
}

// Status reports the proxy's state now.
func (p *Proxy) Status() (Status, error) {
	p.mu.Lock()
	st := Status{
		Listen:   p.Addr(),
		Server:   p.opts.Server,
		User:     p.opts.User,
		Database: p.opts.Database,
		Mode:     p.opts.Mode.String(),
		Pool:     p.opts.Pool,
		Auth:     p.opts.Users,
		Clients:  len(p.clients),
		Servers:  len(p.servers),
		Counters: p.counters,
	}
	if st.Auth == "" {
		st.Auth = "trust (loopback)"
	}
	for _, c := range p.waiting {
		if !c.gone {
			st.Waiting++
		}
	}
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return st, fmt.Errorf("proxy: closed")
	}
	snap, err := p.dp.Snapshot()
	if err != nil {
		return st, fmt.Errorf("proxy: read the data path's maps: %w", err)
	}
	st.Kernel = snap
	return st, nil
}
