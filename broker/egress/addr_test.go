package egress

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestClassifyAddr(t *testing.T) {
	tests := []struct {
		ip     string
		class  Class
		detail string
	}{
		// Public, allowed by default.
		{"93.184.215.14", ClassPublic, "public"},                                 // an ordinary web server
		{"8.8.8.8", ClassPublic, "public"},                                       // public resolver
		{"2606:4700:4700::1111", ClassPublic, "public"},                          // global unicast, 2000::/3
		{"64:ff9b::808:808", ClassPublic, "NAT64 (RFC 6052) for public 8.8.8.8"}, // DNS64 synthesis on IPv6-only networks

		// Unspecified: connect(0.0.0.0) reaches this host on Linux.
		{"0.0.0.0", ClassUnspecified, "the unspecified address (RFC 1122); connecting to it reaches this host"},
		{"::", ClassUnspecified, "the unspecified address (RFC 4291); connecting to it reaches this host"},
		{"0.1.2.3", ClassReserved, `in "this network" (RFC 791, 0.0.0.0/8)`}, // RFC 791

		// Loopback.
		{"127.0.0.1", ClassLoopback, "loopback (RFC 1122, 127.0.0.0/8)"},
		{"127.255.255.254", ClassLoopback, "loopback (RFC 1122, 127.0.0.0/8)"}, // all of 127/8, not just .1
		{"::1", ClassLoopback, "loopback (RFC 4291, ::1)"},
		// Security: IPv4-mapped IPv6 bypasses IPv4-only filters (smokescreen, CVE-2021-29922 class).
		{"::ffff:127.0.0.1", ClassLoopback, "loopback (RFC 1122, 127.0.0.0/8) (as IPv4-mapped IPv6)"},

		// Private networks.
		{"10.0.0.1", ClassPrivate, "private (RFC 1918, 10.0.0.0/8)"},
		{"172.16.0.1", ClassPrivate, "private (RFC 1918, 172.16.0.0/12)"},
		{"172.31.255.255", ClassPrivate, "private (RFC 1918, 172.16.0.0/12)"},
		{"172.32.0.1", ClassPublic, "public"}, // just past 172.16.0.0/12
		{"192.168.1.1", ClassPrivate, "private (RFC 1918, 192.168.0.0/16)"},
		{"100.64.0.1", ClassPrivate, "shared address space for carrier-grade NAT (RFC 6598, 100.64.0.0/10)"},
		{"fd12:3456::1", ClassPrivate, "unique local (RFC 4193, fc00::/7)"},
		{"::ffff:10.1.2.3", ClassPrivate, "private (RFC 1918, 10.0.0.0/8) (as IPv4-mapped IPv6)"}, // mapped private

		// Link-local and cloud metadata: the SSRF credential-theft targets.
		{"169.254.169.254", ClassMetadata, "the cloud metadata service (169.254.169.254)"}, // AWS/GCP/Azure IMDS (Capital One 2019)
		{"::ffff:169.254.169.254", ClassMetadata, "the cloud metadata service (169.254.169.254) (as IPv4-mapped IPv6)"},
		{"169.254.170.2", ClassMetadata, "the AWS ECS task metadata and credentials endpoint (169.254.170.2)"},
		{"fd00:ec2::254", ClassMetadata, "the AWS EC2 metadata service over IPv6 (fd00:ec2::254)"},
		{"100.100.100.200", ClassMetadata, "the Alibaba Cloud metadata service (100.100.100.200)"}, // inside CGNAT space
		{"192.0.0.192", ClassMetadata, "the Oracle Cloud legacy metadata service (192.0.0.192)"},
		{"168.63.129.16", ClassMetadata, "the Azure WireServer platform endpoint (168.63.129.16)"}, // public address, platform service
		{"169.254.1.1", ClassLinkLocal, "link-local (RFC 3927, 169.254.0.0/16)"},
		{"fe80::1", ClassLinkLocal, "link-local (RFC 4291, fe80::/10)"},
		{"fe80::1%eth0", ClassLinkLocal, "link-local (RFC 4291, fe80::/10)"}, // zone ignored for classification

		// Multicast and broadcast.
		{"224.0.0.1", ClassMulticast, "multicast (RFC 5771, 224.0.0.0/4)"},
		{"239.255.255.250", ClassMulticast, "multicast (RFC 5771, 224.0.0.0/4)"}, // SSDP
		{"ff02::1", ClassMulticast, "multicast (RFC 4291, ff00::/8)"},
		{"255.255.255.255", ClassBroadcast, "the limited broadcast address (RFC 919)"},

		// Reserved and special-purpose (RFC 6890 registry).
		{"240.0.0.1", ClassReserved, "reserved for future use (RFC 1112, 240.0.0.0/4)"},
		{"198.18.0.1", ClassReserved, "reserved for benchmarking (RFC 2544, 198.18.0.0/15)"},
		{"198.19.255.255", ClassReserved, "reserved for benchmarking (RFC 2544, 198.18.0.0/15)"},
		{"192.0.2.1", ClassReserved, "reserved for documentation (RFC 5737, TEST-NET-1)"},
		{"198.51.100.1", ClassReserved, "reserved for documentation (RFC 5737, TEST-NET-2)"},
		{"203.0.113.1", ClassReserved, "reserved for documentation (RFC 5737, TEST-NET-3)"},
		{"192.0.0.1", ClassReserved, "reserved for IETF protocol assignments (RFC 6890, 192.0.0.0/24)"},
		{"192.88.99.1", ClassReserved, "the deprecated 6to4 relay anycast range (RFC 7526, 192.88.99.0/24)"},
		{"2001:db8::1", ClassReserved, "reserved for documentation (RFC 3849, 2001:db8::/32)"},
		{"3fff::1", ClassReserved, "reserved for documentation (RFC 9637, 3fff::/20)"},
		{"2001:2::1", ClassReserved, "reserved for benchmarking (RFC 5180, 2001:2::/48)"},
		{"2001:10::1", ClassReserved, "reserved for IETF protocol assignments (RFC 2928, 2001::/23)"}, // ORCHID
		{"100::1", ClassReserved, "discard-only (RFC 6666, 100::/64)"},
		{"fec0::1", ClassReserved, "deprecated site-local (RFC 3879, fec0::/10)"},
		{"5f00::1", ClassReserved, "reserved for SRv6 SIDs (RFC 9602, 5f00::/16)"},
		{"4000::1", ClassReserved, "outside IPv6 global unicast (RFC 4291, 2000::/3)"},

		// Security: IPv6 transition forms embed an IPv4 address a gateway or
		// relay will deliver to; check what they embed (smokescreen
		// classifyAddr, SSRF filter bypasses via NAT64/6to4).
		{"64:ff9b::7f00:1", ClassTransition, "NAT64 (RFC 6052) for 127.0.0.1, which is loopback (RFC 1122, 127.0.0.0/8)"},
		{"64:ff9b::a9fe:a9fe", ClassMetadata, "NAT64 (RFC 6052) for 169.254.169.254, which is the cloud metadata service (169.254.169.254)"},
		{"64:ff9b::10.0.0.1", ClassTransition, "NAT64 (RFC 6052) for 10.0.0.1, which is private (RFC 1918, 10.0.0.0/8)"},
		{"64:ff9b:1::a00:1", ClassTransition, "local-use NAT64 (RFC 8215, 64:ff9b:1::/48)"},
		{"2002:7f00:1::", ClassTransition, "6to4 (RFC 3056) for 127.0.0.1, which is loopback (RFC 1122, 127.0.0.0/8)"},
		{"2002:a9fe:a9fe::1", ClassMetadata, "6to4 (RFC 3056) for 169.254.169.254, which is the cloud metadata service (169.254.169.254)"},
		{"2002:808:808::1", ClassTransition, "deprecated 6to4 (RFC 7526) for 8.8.8.8"},
		{"2001:0:4136:e378:8000:63bf:80ff:fffe", ClassTransition, "Teredo (RFC 4380) for client 127.0.0.1"},
		{"::127.0.0.1", ClassTransition, "deprecated IPv4-compatible IPv6 (RFC 4291) for 127.0.0.1"},
		{"::a9fe:a9fe", ClassTransition, "deprecated IPv4-compatible IPv6 (RFC 4291) for 169.254.169.254"},
	}
	for _, tc := range tests {
		t.Run(tc.ip, func(t *testing.T) {
			c, detail := ClassifyAddr(netip.MustParseAddr(tc.ip))
			require.Equal(t, tc.class, c)
			require.Equal(t, tc.detail, detail)
		})
	}
	c, detail := ClassifyAddr(netip.Addr{})
	require.Equal(t, ClassInvalid, c)
	require.Equal(t, "not a valid IP address", detail)
	require.Equal(t, "invalid", Class(0).String())
	require.Equal(t, "cloud_metadata", ClassMetadata.String())
}

func TestAddrPolicyCheck(t *testing.T) {
	loop := AddrPolicy{UnsafeAllowLoopback: true}
	priv := AddrPolicy{UnsafeAllowPrivate: true}
	tests := []struct {
		name   string
		policy AddrPolicy
		ip     string
		allow  bool
		reason string
	}{
		{"public", AddrPolicy{}, "8.8.8.8", true, "address 8.8.8.8 is public"},
		{"loopback denied by default", AddrPolicy{}, "127.0.0.1", false, "address 127.0.0.1 is loopback (RFC 1122, 127.0.0.0/8)"},
		{"loopback allowed by switch", loop, "127.0.0.1", true, "address 127.0.0.1 is loopback (RFC 1122, 127.0.0.0/8), allowed by UnsafeAllowLoopback"},
		{"mapped loopback checked as IPv4", loop, "::ffff:127.0.0.1", true, "address 127.0.0.1 is loopback (RFC 1122, 127.0.0.0/8), allowed by UnsafeAllowLoopback"},
		{"IPv6 loopback", loop, "::1", true, "address ::1 is loopback (RFC 4291, ::1), allowed by UnsafeAllowLoopback"},
		// Security: 0.0.0.0 reaches local services but is not "loopback"; no switch opens it.
		{"unspecified never", loop, "0.0.0.0", false, "address 0.0.0.0 is the unspecified address (RFC 1122); connecting to it reaches this host"},
		{"loopback switch does not open private", loop, "10.0.0.1", false, "address 10.0.0.1 is private (RFC 1918, 10.0.0.0/8)"},
		{"private by switch", priv, "10.0.0.1", true, "address 10.0.0.1 is private (RFC 1918, 10.0.0.0/8), allowed by UnsafeAllowPrivate"},
		{"ULA by switch", priv, "fd00::1", true, "address fd00::1 is unique local (RFC 4193, fc00::/7), allowed by UnsafeAllowPrivate"},
		// Security: metadata inside private-looking ranges stays closed.
		{"private switch keeps metadata closed", priv, "169.254.169.254", false, "address 169.254.169.254 is the cloud metadata service (169.254.169.254)"},
		{"private switch keeps Alibaba metadata closed", priv, "100.100.100.200", false, "address 100.100.100.200 is the Alibaba Cloud metadata service (100.100.100.200)"},
		{"private switch keeps AWS IPv6 metadata closed", priv, "fd00:ec2::254", false, "address fd00:ec2::254 is the AWS EC2 metadata service over IPv6 (fd00:ec2::254)"},
		{"private switch keeps link-local closed", priv, "169.254.1.1", false, "address 169.254.1.1 is link-local (RFC 3927, 169.254.0.0/16)"},
		{"private switch keeps loopback closed", priv, "127.0.0.1", false, "address 127.0.0.1 is loopback (RFC 1122, 127.0.0.0/8)"},
		{"zone", loop, "fe80::1%lo", false, "address fe80::1%lo is scoped to an IPv6 zone"},
		// Security: the loopback switch means this host's loopback, not one a NAT64 gateway would reach.
		{"NAT64 of loopback", loop, "64:ff9b::7f00:1", false, "address 64:ff9b::7f00:1 is NAT64 (RFC 6052) for 127.0.0.1, which is loopback (RFC 1122, 127.0.0.0/8)"},
		{"6to4 of private", priv, "2002:a00:1::", false, "address 2002:a00:1:: is 6to4 (RFC 3056) for 10.0.0.1, which is private (RFC 1918, 10.0.0.0/8)"},
		{"NAT64 of public", AddrPolicy{}, "64:ff9b::808:808", true, "address 64:ff9b::808:808 is NAT64 (RFC 6052) for public 8.8.8.8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.policy.Check(netip.MustParseAddr(tc.ip))
			require.Equal(t, tc.allow, d.Allowed())
			require.Equal(t, tc.reason, d.Reason)
			if tc.allow {
				require.Equal(t, CodeAddressAllowed, d.Code)
			} else {
				require.Equal(t, CodeAddressDenied, d.Code)
			}
		})
	}
	d := AddrPolicy{}.Check(netip.Addr{})
	require.False(t, d.Allowed())
	require.Equal(t, "address is not a valid IP address", d.Reason)
}
