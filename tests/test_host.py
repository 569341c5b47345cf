from __future__ import annotations

import ipaddress

import pytest

from netviz.engine.host import (
    Host,
    Interface,
    Route,
    parse_ip_route,
)
from netviz.engine.iproute import parse_ip_addr
from netviz.engine.ruleset import Family

ip = ipaddress.ip_address

SCENARIO_HOST = {
    "interfaces": [
        {"name": "eth0", "addrs": ["10.9.1.1/24"]},
        {"name": "eth1", "addrs": ["10.9.2.1/24", "2001:db8:2::1/64"]},
        {"name": "cali0a1b", "addrs": ["10.9.3.1/24"]},
    ],
    "routes": [
        "default via 10.9.2.254 dev eth1",
        "10.244.7.0/24 dev cali0a1b",
        "10.244.0.0/16 via 10.9.1.254",
        "blackhole 10.66.0.0/16",
        "unreachable 10.67.0.0/16",
        "prohibit 10.68.0.0/16",
        "10.70.0.0/16 via 10.9.1.253 metric 20",
        "10.70.0.0/16 via 10.9.2.253 metric 10",
        "default via 2001:db8:2::fe dev eth1",
    ],
}


@pytest.fixture()
def host() -> Host:
    return Host.from_dict(SCENARIO_HOST, Family.IPV4)


def test_lo_exists_implicitly(host: Host) -> None:
    lo = host.interface("lo")
    assert lo is not None
    assert [str(a) for a in lo.addrs] == ["127.0.0.1/8", "::1/128"]
    assert host.is_local(ip("127.3.4.5"))
    assert host.is_local(ip("::1"))


def test_route_local_addresses(host: Host) -> None:
    d = host.route(ip("10.9.2.1"))
    assert (d.kind, d.dev, d.prefsrc) == ("local", "lo", ip("10.9.2.1"))
    assert host.route(ip("127.0.0.1")).kind == "local"
    assert host.route(ip("2001:db8:2::1")).kind == "local"


def test_route_connected_and_longest_prefix(host: Host) -> None:
    d = host.route(ip("10.9.3.7"))
    assert (d.kind, d.dev, d.gateway, d.prefsrc) == ("unicast", "cali0a1b", None, ip("10.9.3.1"))
    # 10.244.7.0/24 beats 10.244.0.0/16 beats default.
    assert host.route(ip("10.244.7.5")).dev == "cali0a1b"
    d = host.route(ip("10.244.9.9"))
    assert (d.dev, d.gateway, d.prefsrc) == ("eth0", ip("10.9.1.254"), ip("10.9.1.1"))
    d = host.route(ip("8.8.8.8"))
    assert (d.kind, d.dev, d.gateway, d.prefsrc) == ("unicast", "eth1", ip("10.9.2.254"), ip("10.9.2.1"))


def test_route_lowest_metric_wins_for_equal_prefixes(host: Host) -> None:
    d = host.route(ip("10.70.1.1"))
    assert (d.dev, d.gateway) == ("eth1", ip("10.9.2.253"))


def test_gateway_dev_is_inferred_from_connected_route(host: Host) -> None:
    via = next(r for r in host.routes if r.dst == ipaddress.ip_network("10.244.0.0/16"))
    assert via.dev == "eth0"


def test_reject_routes_and_no_route() -> None:
    h = Host.from_dict({"interfaces": [{"name": "eth0", "addrs": ["10.0.0.1/24"]}],
                        "routes": ["blackhole 10.66.0.0/16", "unreachable 10.67.0.0/16", "prohibit 10.68.0.0/16"]})
    assert h.route(ip("10.66.1.1")).kind == "blackhole"
    assert h.route(ip("10.67.1.1")).kind == "unreachable"
    assert h.route(ip("10.68.1.1")).kind == "prohibit"
    # No default route: anything off-link is unreachable.
    d = h.route(ip("8.8.8.8"))
    assert (d.kind, d.dev, d.route) == ("unreachable", None, None)
    assert not d.ok


def test_broadcast_and_multicast(host: Host) -> None:
    d = host.route(ip("10.9.1.255"))
    assert (d.kind, d.dev) == ("broadcast", "eth0")
    assert host.route(ip("255.255.255.255")).kind == "broadcast"
    assert host.route(ip("224.0.0.251")).kind == "multicast"
    assert host.route(ip("ff02::1")).kind == "multicast"


def test_ipv6_default_route(host: Host) -> None:
    d = host.route(ip("2001:db8:9::1"))
    assert (d.kind, d.dev, d.gateway, d.prefsrc) == ("unicast", "eth1", ip("2001:db8:2::fe"), ip("2001:db8:2::1"))
    assert host.route(ip("2001:db8:2::5")).gateway is None


def test_addr_type_ipv4(host: Host) -> None:
    assert host.addr_type(ip("10.9.1.1")) == {"LOCAL"}
    assert host.addr_type(ip("127.0.0.9")) == {"LOCAL"}
    assert host.addr_type(ip("10.244.7.5")) == {"UNICAST"}
    assert host.addr_type(ip("10.9.1.255")) == {"BROADCAST"}
    assert host.addr_type(ip("255.255.255.255")) == {"BROADCAST"}
    assert host.addr_type(ip("0.0.0.0")) == {"BROADCAST"}  # ipv4_is_zeronet
    assert host.addr_type(ip("239.1.1.1")) == {"MULTICAST"}
    # Only the local table is consulted: a main-table blackhole is UNICAST.
    assert host.addr_type(ip("10.66.1.1")) == {"UNICAST"}
    # --limit-iface: LOCAL only if the address is on that device.
    assert host.addr_type(ip("10.9.1.1"), "eth0") == {"LOCAL"}
    assert host.addr_type(ip("10.9.1.1"), "eth1") == {"UNICAST"}


def test_addr_type_ipv6(host: Host) -> None:
    assert host.addr_type(ip("2001:db8:2::1")) == {"UNICAST", "LOCAL"}
    assert host.addr_type(ip("2001:db8:2::1"), "eth0") == {"UNICAST"}
    assert host.addr_type(ip("2001:db8:2::1"), "eth1") == {"UNICAST", "LOCAL"}
    assert host.addr_type(ip("ff02::1")) == {"MULTICAST"}
    assert host.addr_type(ip("::")) == {"UNSPEC"}  # routed by the default route
    no_default = Host.from_dict({"interfaces": [{"name": "eth0", "addrs": ["2001:db8::1/64"]}]}, Family.IPV6)
    assert "UNREACHABLE" in no_default.addr_type(ip("2001:db9::1"))


def test_primary_address_prefers_the_subnet_of_the_next_hop(host: Host) -> None:
    two = Host.from_dict({"interfaces": [{"name": "eth0", "addrs": ["10.0.0.1/24", "192.168.5.1/24"]}]})
    assert two.primary_address("eth0") == ip("10.0.0.1")
    assert two.primary_address("eth0", Family.IPV4, towards=ip("192.168.5.77")) == ip("192.168.5.1")
    assert two.primary_address("eth0", Family.IPV6) is None
    assert two.primary_address("nope") is None


def test_route_with_src_and_proto_words() -> None:
    h = Host.from_dict(
        {
            "interfaces": [{"name": "eth0", "addrs": ["10.0.2.15/24", "10.0.2.16/24"]}],
            "routes": [
                "default via 10.0.2.2 dev eth0 proto dhcp src 10.0.2.16 metric 100",
                "10.0.2.0/24 dev eth0 proto kernel scope link src 10.0.2.15 metric 100",
            ],
        }
    )
    d = h.route(ip("1.1.1.1"))
    assert (d.gateway, d.prefsrc) == (ip("10.0.2.2"), ip("10.0.2.16"))


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        (["10.0.0.0/8 via 172.16.0.1"], "not on a connected network"),
        (["10.0.0.0/8 dev wlan9"], "no interface named 'wlan9'"),
        (["10.0.0.0/8 frobnicate"], "unexpected word 'frobnicate'"),
        (["banana/8 dev eth0"], "bad destination 'banana/8'"),
        (["10.0.0.0/8"], "needs 'via' or 'dev'"),
    ],
)
def test_bad_routes_raise_clear_errors(routes: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Host.from_dict({"interfaces": [{"name": "eth0", "addrs": ["10.9.1.1/24"]}], "routes": routes})


def test_bad_interfaces_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"bad address '10\.0\.0\.300/24'"):
        Host.from_dict({"interfaces": [{"name": "eth0", "addrs": ["10.0.0.300/24"]}]})
    with pytest.raises(ValueError, match="needs a 'name'"):
        Host.from_dict({"interfaces": [{"addrs": []}]})
    with pytest.raises(ValueError, match="listed twice"):
        Host.from_dict({"interfaces": [{"name": "a"}, {"name": "a"}]})


def test_to_dict_round_trips(host: Host) -> None:
    d = host.to_dict()
    assert Host.from_dict(d, Family.IPV4) == host
    assert d["interfaces"][0] == {"name": "eth0", "addrs": ["10.9.1.1/24"]}
    assert "10.244.0.0/16 via 10.9.1.254 dev eth0" in d["routes"]
    assert "blackhole 10.66.0.0/16" in d["routes"]
    assert "default via 2001:db8:2::fe dev eth1 metric 1024" in d["routes"]


def test_parse_ip_addr_brief_and_full() -> None:
    brief = """lo               UNKNOWN        127.0.0.1/8 ::1/128
eth0@if7         UP             10.0.2.15/24 fe80::5054:ff:fe12:3456/64
docker0          DOWN           172.17.0.1/16
"""
    ifaces = parse_ip_addr(brief)
    assert [i["name"] for i in ifaces] == ["lo", "eth0", "docker0"]
    assert ifaces[1]["addrs"] == ["10.0.2.15/24", "fe80::5054:ff:fe12:3456/64"]
    full = """1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000
    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00
    inet 127.0.0.1/8 scope host lo
       valid_lft forever preferred_lft forever
2: eth0@if9: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default
    link/ether 52:54:00:12:34:56 brd ff:ff:ff:ff:ff:ff link-netnsid 0
    inet 10.0.2.15/24 brd 10.0.2.255 scope global eth0
       valid_lft forever preferred_lft forever
    inet 10.0.2.99/32 scope global secondary eth0:1
    inet6 fe80::5054:ff:fe12:3456/64 scope link
       valid_lft forever preferred_lft forever
3: tun0: <POINTOPOINT,UP> mtu 1500 state UNKNOWN
    inet 10.8.0.1 peer 10.8.0.2/32 scope global tun0
"""
    ifaces = parse_ip_addr(full)
    assert [i["name"] for i in ifaces] == ["lo", "eth0", "tun0"]
    assert ifaces[1]["addrs"] == ["10.0.2.15/24", "10.0.2.99/32", "fe80::5054:ff:fe12:3456/64"]
    assert ifaces[2]["addrs"] == ["10.8.0.1/32"]
    h = Host.from_dict({"interfaces": ifaces})
    assert h.is_local(ip("10.0.2.99"))


def test_parse_ip_route_output() -> None:
    text = """default via 10.0.2.2 dev eth0 proto dhcp src 10.0.2.15 metric 100
10.0.2.0/24 dev eth0 proto kernel scope link src 10.0.2.15 metric 100
blackhole 10.1.0.0/16 proto static
unreachable 10.2.0.0/16 metric 5
local 10.0.2.15 dev eth0 table local proto kernel scope host src 10.0.2.15
broadcast 10.0.2.255 dev eth0 table local proto kernel scope link src 10.0.2.15
default proto static metric 50
	nexthop via 10.0.2.3 dev eth0 weight 1
	nexthop via 10.0.2.4 dev eth0 weight 1
fe80::/64 dev eth0 proto kernel metric 256 pref medium
"""
    routes = parse_ip_route(text)
    assert routes[0] == Route(ipaddress.ip_network("0.0.0.0/0"), "eth0", ip("10.0.2.2"), ip("10.0.2.15"), "unicast", 100, proto="dhcp")
    assert routes[2].type == "blackhole" and routes[2].dst == ipaddress.ip_network("10.1.0.0/16")
    assert routes[3].metric == 5
    assert (routes[4].type, routes[4].table) == ("local", "local")
    assert (routes[6].via, routes[6].dev, routes[6].metric) == (ip("10.0.2.3"), "eth0", 50)
    assert routes[7].metric == 256
    h = Host((Interface("eth0", (ipaddress.ip_interface("10.0.2.15/24"),)),), tuple(routes))
    assert h.route(ip("10.1.2.3")).kind == "blackhole"
    assert h.route(ip("9.9.9.9")).gateway == ip("10.0.2.3")  # metric 50 < 100
    with pytest.raises(ValueError, match="route line 1"):
        parse_ip_route("10.0.0.0/8 via nonsense\n")


def test_select_source_skips_host_scope_and_borrows_from_other_devices() -> None:
    h = Host.from_dict(
        {"interfaces": [{"name": "eth0", "addrs": ["10.0.0.1/24", "192.168.5.1/24"]}, {"name": "dummy0"}]}
    )
    assert h.select_source("eth0", Family.IPV4, towards=ip("192.168.5.9")) == ip("192.168.5.1")
    assert h.select_source("eth0") == ip("10.0.0.1")
    # lo's 127.0.0.1 is host scope; a device without addresses borrows too.
    assert h.select_source("lo") == ip("10.0.0.1")
    assert h.select_source("dummy0") == ip("10.0.0.1")
    assert Host().select_source("lo") is None


def test_ipv6_interfaces_get_the_link_local_prefix_route(host: Host) -> None:
    d = host.route(ip("fe80::42"))
    assert (d.kind, d.dev) == ("unicast", "eth1")
    assert "UNREACHABLE" not in host.addr_type(ip("fe80::42"))


POLICY_HOST = {
    "interfaces": [
        {"name": "eth0", "addrs": ["10.0.0.1/24"]},
        {"name": "eth1", "addrs": ["10.1.0.1/24"]},
        {"name": "wg0", "addrs": ["10.2.0.1/24"]},
    ],
    "routes": [
        "default via 10.0.0.254 dev eth0",
        "default via 10.1.0.254 dev eth1 table 100",
        "default dev wg0 table 51820",
        "blackhole 10.9.0.0/16 table 200",
    ],
    "rules": [
        "fwmark 0x1 lookup 100",
        "not fwmark 0xca6c table 51820",
        "table main suppress_prefixlength 0",
        "pref 10 from 10.77.0.0/16 lookup 200",
        "iif eth1 lookup 100",
    ],
}


def test_policy_routing_rules() -> None:
    h = Host.from_dict(POLICY_HOST)
    # fib_default_rule_pref(): one below the second rule of the list, so
    # after `pref 10` the next rule without a priority gets 9.
    assert [r.priority for r in h.rules] == [32765, 32764, 32763, 10, 9]
    # wg-quick: main is consulted first but its default route is suppressed,
    # then everything without mark 0xca6c goes to table 51820.
    d = h.route(ip("8.8.8.8"))
    assert (d.kind, d.dev) == ("unicast", "wg0")
    assert h.route(ip("8.8.8.8"), mark=0xCA6C).dev == "eth0"
    # A connected route in main is more specific than /0: not suppressed.
    assert h.route(ip("10.1.0.9")).dev == "eth1"
    # Mark 0x1 would select table 100 (pref 32765), but 51820 (32764) is
    # tried first and answers.
    assert h.route(ip("8.8.8.8"), mark=0x1).dev == "wg0"
    assert h.route(ip("10.9.1.1"), src=ip("10.77.1.1")).kind == "blackhole"
    # iif eth1 (pref 9) comes before the suppress and 51820 rules.
    assert h.route(ip("8.8.8.8"), iif="eth1").dev == "eth1"
    # Local addresses still win: rule 0 looks up the local table.
    assert h.route(ip("10.2.0.1"), mark=0x1).kind == "local"


def test_rules_round_trip_and_errors() -> None:
    h = Host.from_dict(POLICY_HOST)
    d = h.to_dict()
    assert d["rules"][0] == "pref 32765 from all fwmark 0x1 lookup 100"
    assert d["rules"][1] == "pref 32764 not from all fwmark 0xca6c lookup 51820"
    assert Host.from_dict(d) == h
    assert "rules" not in Host.from_dict({"interfaces": []}).to_dict()
    with pytest.raises(ValueError, match="needs 'lookup TABLE'"):
        Host.from_dict({"rules": ["fwmark 0x1"]})
    with pytest.raises(ValueError, match="no interface named 'eth9'"):
        Host.from_dict({"rules": ["iif eth9 lookup 100"]})
    with pytest.raises(ValueError, match="unexpected word 'sideways'"):
        Host.from_dict({"rules": ["sideways lookup 100"]})


def test_rule_lines_from_ip_rule_output() -> None:
    from netviz.engine.host import parse_rule_line

    r = parse_rule_line("32765:\tfrom all fwmark 0x4000/0x4000 lookup 100")
    assert r is not None
    assert (r.priority, r.fwmark, r.fwmask, r.table) == (32765, 0x4000, 0x4000, "100")
    r = parse_rule_line("0:\tfrom all lookup local")
    assert r is not None and (r.priority, r.table) == (0, "local")
    r = parse_rule_line("1000: from 10.0.0.0/8 to 192.168.0.0/16 prohibit")
    assert r is not None and (r.action, r.version) == ("prohibit", 4)
