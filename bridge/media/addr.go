package media

import "net/netip"

// PublicAddr reports whether a download may connect to ip: a public unicast
// address, outside every special-purpose block, where a bot's file server
// can be and the operator's own network cannot.
//
// The policy, strict where the registries allow a choice:
//   - IPv4 (and IPv4-mapped IPv6, ::ffff:0:0/96, which is an IPv4
//     connection) is public unless it is in specialV4 or is multicast.
//   - IPv6 is public only in 2000::/3, the one block IANA allocates as
//     global unicast, and outside specialV6. Everything else is refused:
//     ::/128, ::1/128, the IPv4-compatible ::/96, 64:ff9b:1::/48, 100::/64,
//     5f00::/16, fc00::/7, fe80::/10, fec0::/10, ff00::/8 and whatever IANA
//     assigns later outside 2000::/3.
//   - The NAT64 well-known prefix 64:ff9b::/96 is public when the IPv4
//     address in its last 32 bits is (RFC 6052): an IPv6-only host behind
//     DNS64 reaches every IPv4-only server that way, and the translator
//     connects to that IPv4 address.
//   - The other forms that carry an IPv4 address are refused whatever it
//     is: 6to4 (2002::/16, RFC 3056, deprecated by RFC 7526), Teredo
//     (2001::/32, RFC 4380, inside 2001::/23), IPv4-compatible (::/96,
//     deprecated by RFC 4291) and local-use NAT64 (64:ff9b:1::/48, RFC
//     8215, whose translation the local network decides). A public file
//     server has no business being reached through them, and a tunnel
//     endpoint or relay could be made to carry the connection anywhere.
//
// An IPv6 zone is ignored.
func PublicAddr(ip netip.Addr) bool {
	ip = ip.WithZone("")
	if ip.Is4In6() {
		ip = ip.Unmap()
	}
	if ip.Is4() {
		return !inAny(specialV4, ip)
	}
	if nat64.Contains(ip) {
		b := ip.As16()
		return PublicAddr(netip.AddrFrom4([4]byte(b[12:])))
	}
	return globalUnicast.Contains(ip) && !inAny(specialV6, ip)
}

func inAny(prefixes []netip.Prefix, ip netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

var (
	// nat64 is the NAT64 well-known prefix (RFC 6052).
	nat64 = netip.MustParsePrefix("64:ff9b::/96")
	// globalUnicast is the IPv6 global unicast space in the IANA IPv6
	// Address Space registry; the rest is reserved, local or multicast.
	globalUnicast = netip.MustParsePrefix("2000::/3")
)

// specialV4 holds the blocks of the IANA IPv4 Special-Purpose Address
// Registry (https://www.iana.org/assignments/iana-ipv4-special-registry/),
// every row of the registry as of 2025-06 (written from its published
// rows, not from a download on the build machine: compare with the live
// registry's "Last Updated" when reviewing this table), plus multicast
// from the IPv4 Multicast Address Space registry. Rows nested in a listed block (0.0.0.0/32,
// 192.0.0.0/29, 192.0.0.8/32, 192.0.0.9/32, 192.0.0.10/32, 192.0.0.170/32,
// 192.0.0.171/32) are covered by it. Blocks the registry marks globally
// reachable (the PCP and TURN anycast addresses in 192.0.0.0/24, AS112,
// AMT) are refused too: they are protocol services, not file servers.
var specialV4 = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),          // "this network" (RFC 791)
	netip.MustParsePrefix("10.0.0.0/8"),         // private use (RFC 1918)
	netip.MustParsePrefix("100.64.0.0/10"),      // shared address space, carrier-grade NAT (RFC 6598)
	netip.MustParsePrefix("127.0.0.0/8"),        // loopback (RFC 1122)
	netip.MustParsePrefix("169.254.0.0/16"),     // link local, cloud metadata (RFC 3927)
	netip.MustParsePrefix("172.16.0.0/12"),      // private use (RFC 1918)
	netip.MustParsePrefix("192.0.0.0/24"),       // IETF protocol assignments (RFC 6890)
	netip.MustParsePrefix("192.0.2.0/24"),       // documentation, TEST-NET-1 (RFC 5737)
	netip.MustParsePrefix("192.31.196.0/24"),    // AS112-v4 (RFC 7535)
	netip.MustParsePrefix("192.52.193.0/24"),    // AMT (RFC 7450)
	netip.MustParsePrefix("192.88.99.0/24"),     // deprecated 6to4 relay anycast (RFC 7526)
	netip.MustParsePrefix("192.168.0.0/16"),     // private use (RFC 1918)
	netip.MustParsePrefix("192.175.48.0/24"),    // direct delegation AS112 service (RFC 7534)
	netip.MustParsePrefix("198.18.0.0/15"),      // benchmarking (RFC 2544)
	netip.MustParsePrefix("198.51.100.0/24"),    // documentation, TEST-NET-2 (RFC 5737)
	netip.MustParsePrefix("203.0.113.0/24"),     // documentation, TEST-NET-3 (RFC 5737)
	netip.MustParsePrefix("240.0.0.0/4"),        // reserved (RFC 1112)
	netip.MustParsePrefix("255.255.255.255/32"), // limited broadcast (RFC 919), inside 240.0.0.0/4
	netip.MustParsePrefix("224.0.0.0/4"),        // multicast (RFC 5771), in its own registry
}

// specialV6 holds the blocks of the IANA IPv6 Special-Purpose Address
// Registry (https://www.iana.org/assignments/iana-ipv6-special-registry/),
// as of 2025-06 (newest rows used: 5f00::/16, RFC 9602, and 3fff::/20, RFC
// 9637, both 2024; same caveat as specialV4), that lie inside 2000::/3;
// the rows outside it (::/128, ::1/128, ::ffff:0:0/96, 64:ff9b::/96,
// 64:ff9b:1::/48, 100::/64 and the rows under it, 5f00::/16, fc00::/7,
// fe80::/10) are refused by the 2000::/3 check, except 64:ff9b::/96 and
// ::ffff:0:0/96 which PublicAddr judges by their IPv4 address. 2001::/23 is
// refused whole, with its globally reachable rows (PCP, TURN and DNS-SD
// anycast, AMT, AS112-v6, ORCHIDv2, DETs): protocol services and
// identifiers, not file servers.
var specialV6 = []netip.Prefix{
	netip.MustParsePrefix("2001::/23"),         // IETF protocol assignments (RFC 2928), with Teredo 2001::/32 (RFC 4380)
	netip.MustParsePrefix("2001:db8::/32"),     // documentation (RFC 3849)
	netip.MustParsePrefix("2002::/16"),         // 6to4 (RFC 3056)
	netip.MustParsePrefix("2620:4f:8000::/48"), // direct delegation AS112 service (RFC 7534)
	netip.MustParsePrefix("3fff::/20"),         // documentation (RFC 9637)
}
