package broker

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"aileron.dev/aileron/broker/egress"
)

// newEgress builds the egress client and limits from cfg.
func newEgress(cfg *Config) (*egress.Client, egress.Limits, error) {
	d := &egress.Dialer{Policy: egress.AddrPolicy{
		UnsafeAllowLoopback: cfg.UnsafeAllowLoopback,
		UnsafeAllowPrivate:  cfg.UnsafeAllowPrivate,
	}}
	if len(cfg.HostsOverride) > 0 {
		d.Hosts = map[string][]netip.Addr{}
		for name, addrs := range cfg.HostsOverride {
			for _, a := range addrs {
				ip, err := netip.ParseAddr(a)
				if err != nil {
					return nil, egress.Limits{}, fmt.Errorf("broker config: hosts[%q]: %w", name, err)
				}
				d.Hosts[strings.ToLower(name)] = append(d.Hosts[strings.ToLower(name)], ip)
			}
		}
	}
	if len(cfg.Routes) > 0 {
		d.Routes = map[string]netip.AddrPort{}
		for hp, to := range cfg.Routes {
			ap, err := netip.ParseAddrPort(to)
			if err != nil {
				return nil, egress.Limits{}, fmt.Errorf("broker config: routes[%q]: want ip:port: %w", hp, err)
			}
			d.Routes[strings.ToLower(hp)] = ap
		}
	}
	timeout := time.Duration(cfg.RequestTimeoutMS) * time.Millisecond
	c, err := egress.NewClient(egress.TransportConfig{Dialer: d, ExtraRootCAsPEM: cfg.ExtraRootCAs, ResponseHeaderTimeout: timeout})
	if err != nil {
		return nil, egress.Limits{}, fmt.Errorf("broker config: %w", err)
	}
	return c, egress.Limits{MaxResponseBody: cfg.MaxResponseBytes, Timeout: timeout, FollowRedirects: cfg.FollowRedirects}, nil
}
