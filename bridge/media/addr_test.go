package media_test

import (
	"net/netip"
	"testing"

	"github.com/botbridge/botbridge/bridge/media"
)

func TestPublicAddr(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		public bool
	}{
		// Public unicast.
		{"1.1.1.1", true},
		{"8.8.8.8", true},
		{"93.184.215.14", true},
		{"192.0.1.1", true},   // next to 192.0.0.0/24
		{"198.20.0.1", true},  // past 198.18.0.0/15
		{"100.128.0.1", true}, // past 100.64.0.0/10
		{"223.255.255.254", true},
		{"2606:4700::1111", true},
		{"2001:4860:4860::8888", true},
		{"2a00:1450:4001::1", true},
		{"::ffff:1.1.1.1", true},      // IPv4-mapped: a plain IPv4 connection
		{"64:ff9b::101:101", true},    // NAT64 of 1.1.1.1, for DNS64 networks
		{"64:ff9b::8.8.8.8", true},    // the same, dotted
		{"2001:200::1", true},         // just past 2001::/23
		{"3fff:1000::1", true},        // just past 3fff::/20
		{"2620:4f:8001::1", true},     // next to the AS112 delegation
		{"2001:4860::1%eth0", true},   // a zone does not change the address
		{"2003::1", true},             // just past 2002::/16
		{"3ffe:ffff:ffff::1", true},   // inside 2000::/3
		{"2000::1", true},             // the first of 2000::/3
		{"2c0f:f248::1", true},        // AfriNIC space
		{"2400:cb00:2048:1::1", true}, // APNIC space

		// IPv4 special-purpose registry, one or more per row.
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"10.1.2.3", false},
		{"100.64.0.1", false},
		{"100.127.255.254", false},
		{"127.0.0.1", false},
		{"127.255.255.254", false},
		{"169.254.169.254", false},
		{"172.16.0.1", false},
		{"172.31.255.254", false},
		{"192.0.0.1", false},
		{"192.0.0.8", false},
		{"192.0.0.9", false},
		{"192.0.0.170", false},
		{"192.0.0.192", false},
		{"192.0.2.1", false},
		{"192.31.196.1", false},
		{"192.52.193.1", false},
		{"192.88.99.1", false},
		{"192.168.0.1", false},
		{"192.175.48.1", false},
		{"198.18.0.1", false},
		{"198.19.255.254", false},
		{"198.51.100.1", false},
		{"203.0.113.1", false},
		{"240.0.0.1", false},
		{"255.255.255.254", false},
		{"255.255.255.255", false},
		// IPv4 multicast.
		{"224.0.0.1", false},
		{"239.255.255.250", false},

		// IPv6 special-purpose registry.
		{"::", false},
		{"::1", false},
		{"::ffff:10.0.0.1", false},
		{"::ffff:127.0.0.1", false},
		{"::ffff:169.254.169.254", false},
		{"::ffff:0.0.0.0", false},
		{"64:ff9b::a9fe:a9fe", false}, // NAT64 of 169.254.169.254
		{"64:ff9b::7f00:1", false},    // NAT64 of 127.0.0.1
		{"64:ff9b::a00:1", false},     // NAT64 of 10.0.0.1
		{"64:ff9b::c0a8:1", false},    // NAT64 of 192.168.0.1
		{"64:ff9b::", false},          // NAT64 of 0.0.0.0
		{"64:ff9b:1::101:101", false}, // local-use NAT64, refused outright
		{"64:ff9b:1:ffff::1", false},
		{"100::1", false},
		{"100::ffff:ffff:ffff:ffff", false},
		{"2001::1", false},                              // Teredo
		{"2001:0:4136:e378:8000:63bf:fefe:fefe", false}, // Teredo of client 1.1.1.1 (inverted)
		{"2001:0:4136:e378:8000:63bf:80ff:fffe", false}, // Teredo of 127.0.0.1
		{"2001:1::1", false},
		{"2001:2::1", false},
		{"2001:3::1", false},
		{"2001:4:112::1", false},
		{"2001:10::1", false},
		{"2001:20::1", false},
		{"2001:30::1", false},
		{"2001:1ff:ffff::1", false},
		{"2001:db8::1", false},
		{"2001:db8:ffff::1", false},
		{"2002:7f00:1::1", false}, // 6to4 of 127.0.0.1
		{"2002:a9fe:a9fe::1", false},
		{"2002:101:101::1", false}, // 6to4 of 1.1.1.1: refused outright
		{"2620:4f:8000::1", false},
		{"3fff::1", false},
		{"3fff:fff:ffff::1", false},
		{"5f00::1", false},
		{"fc00::1", false},
		{"fd00::1", false},
		{"fd00:ec2::254", false},
		{"fe80::1", false},
		{"fe80::1%eth0", false},
		{"febf::1", false},
		{"fec0::1", false}, // deprecated site-local
		{"ff02::1", false},
		{"ff0e::1", false},
		// Outside 2000::/3, unassigned or deprecated.
		{"::7f00:1", false},  // IPv4-compatible 127.0.0.1
		{"::101:101", false}, // IPv4-compatible 1.1.1.1: refused outright
		{"::a9fe:a9fe", false},
		{"::ffff:0:7f00:1", false}, // IPv4-translated (SIIT)
		{"1::1", false},
		{"4000::1", false},
		{"e000::1", false},
	} {
		addr := netip.MustParseAddr(tc.addr)
		if got := media.PublicAddr(addr); got != tc.public {
			t.Errorf("PublicAddr(%s) = %v, want %v", tc.addr, got, tc.public)
		}
	}
	if media.PublicAddr(netip.Addr{}) {
		t.Error("PublicAddr(zero Addr) = true")
	}
}
