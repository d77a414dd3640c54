package runtime

import (
	"bufio"
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"edgefleet/agent"
	"edgefleet/fleet/api"
)

// inventoryInterval is how often the retained state is republished with a
// fresh inventory (besides at every connect).
const inventoryInterval = 5 * time.Minute

// inventory describes this box now. Each field is best effort: what cannot
// be read stays empty.
func (r *Runtime) inventory() *api.Inventory {
	now := time.Now()
	inv := &api.Inventory{
		Address: outboundAddress(r.cfg.Fleet.Broker), OS: osName(), Arch: runtime.GOARCH,
		Kernel: readTrimmed("/proc/sys/kernel/osrelease"), AgentVersion: agent.Version, Time: now.UnixMilli(),
	}
	inv.Hostname, _ = os.Hostname()
	if r.serving != nil {
		inv.Model, inv.ModelVersion = r.serving.Model()
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(r.dataDir(), &fs); err == nil {
		inv.DiskFreeBytes, inv.DiskTotalBytes = fs.Bavail*uint64(fs.Bsize), fs.Blocks*uint64(fs.Bsize)
	}
	if f := strings.Fields(readTrimmed("/proc/uptime")); len(f) > 0 {
		if up, err := strconv.ParseFloat(f[0], 64); err == nil && up > 0 {
			inv.UptimeS = up
			inv.BootTime = now.Add(-time.Duration(up * float64(time.Second))).UnixMilli()
		}
	}
	return inv
}

// dataDir is the directory of the agent's data: the spool's.
func (r *Runtime) dataDir() string { return filepath.Dir(r.cfg.Spool.Path) }

// outboundAddress is the local IP address this box uses to reach the broker
// (tcp://host:port, ssl://..., host:port): a UDP "connection" picks the
// route without sending anything.
func outboundAddress(broker string) string {
	hostport := broker
	if u, err := url.Parse(broker); err == nil && u.Host != "" {
		hostport = u.Host
	}
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		hostport = net.JoinHostPort(hostport, "1883")
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.Dial("udp", hostport)
	if err != nil {
		return ""
	}
	defer c.Close()
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok {
		return a.IP.String()
	}
	return ""
}

// osName is the distribution's PRETTY_NAME from os-release, else GOOS.
func osName() string {
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
				if v = strings.Trim(v, `"'`); v != "" {
					return v
				}
			}
		}
	}
	return runtime.GOOS
}

func readTrimmed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// refreshState republishes the retained state, with a fresh inventory, at
// every new session and every inventoryInterval, until ctx is done.
func (r *Runtime) refreshState(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var seen uint64
	for {
		sess := make(chan uint64, 1)
		wctx, cancel := context.WithCancel(ctx)
		go func(after uint64) {
			if n, err := r.link.WaitNewSession(wctx, after); err == nil {
				sess <- n
			}
		}(seen)
		select {
		case <-ctx.Done():
			cancel()
			return
		case seen = <-sess:
		case <-t.C:
		}
		cancel()
		pctx, pcancel := context.WithTimeout(ctx, 15*time.Second)
		if err := r.link.SetState(pctx, r.state()); err != nil && ctx.Err() == nil {
			r.log.Debug("state refresh", "err", err) // it goes out with the next connect
		}
		pcancel()
	}
}
