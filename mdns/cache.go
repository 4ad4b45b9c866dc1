package mdns

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultSystemTimeout bounds the system resolver's attempt in ResolveHost.
const DefaultSystemTimeout = 3 * time.Second

// Cache keeps mDNS answers for their TTL. It is safe for concurrent use; set
// its exported fields before the first lookup. The zero value works and asks
// the standard groups.
type Cache struct {
	// Resolver asks the network; NewCache sets it.
	Resolver *Resolver
	// System is the resolver ResolveHost tries first. nil means
	// net.DefaultResolver (which uses /etc/hosts, DNS and, through the C
	// library, nss-mdns where the system has it).
	System func(ctx context.Context, host string) ([]netip.Addr, error)
	// SystemTimeout bounds the System attempt; 0 means DefaultSystemTimeout.
	SystemTimeout time.Duration
	// Logger receives a line when a name is resolved by mDNS; nil means
	// no logging.
	Logger *slog.Logger

	now     func() time.Time // tests replace it
	mu      sync.Mutex
	entries map[string]entry
}

type entry struct {
	addrs   []netip.Addr
	expires time.Time
}

// NewCache returns an empty cache that asks r (nil means a zero Resolver:
// the standard groups).
func NewCache(r *Resolver) *Cache {
	if r == nil {
		r = &Resolver{}
	}
	return &Cache{Resolver: r, now: time.Now, entries: map[string]entry{}}
}

// Lookup returns the cached addresses of name while its TTL lasts, and asks
// (see Refresh) when there are none.
func (c *Cache) Lookup(ctx context.Context, name string) ([]netip.Addr, error) {
	if addrs, ok := c.fresh(name); ok {
		return addrs, nil
	}
	return c.Refresh(ctx, name)
}

// Refresh always asks the network and, on success, caches the answer for
// its TTL (a TTL of 0 removes name from the cache). A failure leaves the
// cache as it was.
func (c *Cache) Refresh(ctx context.Context, name string) ([]netip.Addr, error) {
	key, err := canonical(name)
	if err != nil {
		return nil, err
	}
	r := c.Resolver
	if r == nil {
		r = &Resolver{}
	}
	addrs, ttl, err := r.LookupHost(ctx, name)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if ttl > 0 {
		if c.entries == nil {
			c.entries = map[string]entry{}
		}
		c.entries[key] = entry{addrs: addrs, expires: c.clock().Add(ttl)}
	} else {
		delete(c.entries, key)
	}
	c.mu.Unlock()
	return slices.Clone(addrs), nil
}

// fresh returns the cached addresses of name if their TTL has not run out.
func (c *Cache) fresh(name string) ([]netip.Addr, bool) {
	key, err := canonical(name)
	if err != nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	if !c.clock().Before(e.expires) {
		delete(c.entries, key)
		return nil, false
	}
	return slices.Clone(e.addrs), true
}

// IsLocal reports whether host is in the mDNS domain ".local".
func IsLocal(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	return strings.HasSuffix(h, ".local")
}

// ResolveHost returns what to dial for host (a bare host name or IP address,
// as url.URL.Hostname returns it):
//   - an IP address is returned as it is;
//   - a name outside ".local" is returned as it is: the dialer resolves it
//     as usual (so does every name when c is nil);
//   - a ".local" name is first given to the system resolver (c.System); if
//     that finds it, host is returned as it is;
//   - otherwise the name is asked by mDNS (c.Refresh: every call asks again,
//     because a gateway's address can change) and the first address is
//     returned, IPv4 preferred. If nobody answers but an earlier answer's
//     TTL has not run out, that one is used.
//
// The error names host and says what both resolvers said. Call it before
// every connection attempt and treat an error like a failed connection:
// retry with backoff. The returned address may carry an IPv6 zone; join it
// with a port by net.JoinHostPort.
func ResolveHost(ctx context.Context, host string, c *Cache) (string, error) {
	if _, err := netip.ParseAddr(host); err == nil {
		return host, nil
	}
	if c == nil || !IsLocal(host) {
		return host, nil
	}
	sysErr := c.system(ctx, host)
	if sysErr == nil {
		return host, nil
	}
	if ctx.Err() != nil {
		return "", fmt.Errorf("resolve %q: %w", host, ctx.Err())
	}
	c.debug("system resolver failed; asking by mDNS", "host", host, "err", sysErr)
	addrs, err := c.Refresh(ctx, host)
	if err != nil {
		cached, ok := c.fresh(host)
		if !ok || ctx.Err() != nil {
			return "", fmt.Errorf("resolve %q: system resolver: %v; %w", host, sysErr, err)
		}
		c.warn("no mDNS answer; using the previous one while its TTL lasts", "host", host, "addr", cached[0].String(), "err", err)
		return cached[0].String(), nil
	}
	c.info("resolved by mDNS", "host", host, "addr", addrs[0].String(), "all", addrs)
	return addrs[0].String(), nil
}

func (c *Cache) system(ctx context.Context, host string) error {
	timeout := c.SystemTimeout
	if timeout <= 0 {
		timeout = DefaultSystemTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	lookup := c.System
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	addrs, err := lookup(ctx, host)
	if err != nil {
		return err
	}
	if len(addrs) == 0 {
		return fmt.Errorf("no addresses for %q", host)
	}
	return nil
}

func (c *Cache) clock() time.Time {
	if c.now == nil {
		return time.Now()
	}
	return c.now()
}

func (c *Cache) debug(msg string, args ...any) {
	if c.Logger != nil {
		c.Logger.Debug("mdns: "+msg, args...)
	}
}

func (c *Cache) info(msg string, args ...any) {
	if c.Logger != nil {
		c.Logger.Info("mdns: "+msg, args...)
	}
}

func (c *Cache) warn(msg string, args ...any) {
	if c.Logger != nil {
		c.Logger.Warn("mdns: "+msg, args...)
	}
}
