package mesh

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	sockaddr "github.com/hashicorp/go-sockaddr"
)

// bind opens the mesh port: UDP (QUIC and gossip packets) and TCP (gossip
// streams) on the same number. With port 0 the UDP port is picked first
// and TCP may find it taken, so that is retried.
func bind(hostport string) (*net.UDPConn, *net.TCPListener, error) {
	host, port, err := splitPort(hostport)
	if err != nil {
		return nil, nil, err
	}
	var ip net.IP
	switch host {
	case "":
	case "localhost":
		ip = net.IPv4(127, 0, 0, 1)
	default:
		if ip = net.ParseIP(host); ip == nil {
			ia, err := net.ResolveIPAddr("ip", host)
			if err != nil {
				return nil, nil, err
			}
			ip = ia.IP
		}
	}
	tries := 1
	if port == 0 {
		tries = 10
	}
	var lastErr error
	for range tries {
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port})
		if err != nil {
			return nil, nil, err
		}
		p := u.LocalAddr().(*net.UDPAddr).Port
		t, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip, Port: p})
		if err == nil {
			return u, t, nil
		}
		_ = u.Close()
		lastErr = err
	}
	return nil, nil, lastErr
}

// advertiseAddr resolves Config.Advertise, defaulting to the bound
// address, or a private interface address when bound to all interfaces.
func advertiseAddr(adv string, bound netip.AddrPort) (netip.AddrPort, error) {
	if adv == "" {
		if !bound.Addr().IsUnspecified() {
			return bound, nil
		}
		ip, err := sockaddr.GetPrivateIP()
		if err != nil || ip == "" {
			return netip.AddrPort{}, fmt.Errorf("bound to all interfaces and no private address found (set Advertise): %v", err)
		}
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return netip.AddrPort{}, err
		}
		return netip.AddrPortFrom(a.Unmap(), bound.Port()), nil
	}
	host, port, err := splitPort(adv)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if port == 0 {
		port = int(bound.Port())
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		ips, lerr := net.LookupIP(host)
		if lerr != nil || len(ips) == 0 {
			return netip.AddrPort{}, fmt.Errorf("resolve %q: %v", host, lerr)
		}
		a, _ = netip.AddrFromSlice(ips[0])
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), nil
}

// isLoopbackHostPort reports whether hostport names a loopback address.
// "localhost" counts; an empty host (all interfaces) does not.
func isLoopbackHostPort(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// splitPort parses host:port with a numeric port.
func splitPort(hostport string) (string, int, error) {
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	return host, int(port), nil
}

// seedLookupTimeout bounds the resolution of a seed's host name by isSelf.
const seedLookupTimeout = 5 * time.Second

// isSelf reports whether the seed hostport names this node: its port is
// the node's and its host is (or resolves to) the node's advertised or
// bound address, or, when the node is bound to all interfaces, a loopback
// address or one of the machine's interface addresses. A host name that
// does not resolve names no node yet, so not this one.
func (m *Mesh) isSelf(ctx context.Context, hostport string) bool {
	host, port, err := splitPort(hostport)
	if err != nil || (port != int(m.advertise.Port()) && port != int(m.bound.Port())) {
		return false
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else if host != "" {
		ctx, cancel := context.WithTimeout(ctx, seedLookupTimeout)
		addrs, _ = net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		cancel()
	}
	for _, a := range addrs {
		a = a.Unmap()
		switch {
		case netip.AddrPortFrom(a, uint16(port)) == m.advertise:
			return true
		case port != int(m.bound.Port()):
		case a == m.bound.Addr():
			return true
		case m.bound.Addr().IsUnspecified() && (a.IsLoopback() || isInterfaceAddr(a)):
			return true
		}
	}
	return false
}

// isInterfaceAddr reports whether a is an address of one of the machine's
// network interfaces.
func isInterfaceAddr(a netip.Addr) bool {
	ifAddrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, ia := range ifAddrs {
		if p, err := netip.ParsePrefix(ia.String()); err == nil && p.Addr().Unmap() == a {
			return true
		}
	}
	return false
}
