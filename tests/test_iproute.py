"""`ip` output (text and JSON) → the scenario's host object."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from netviz.engine.host import Host
from netviz.engine.iproute import (
    host_from_ip_json,
    host_from_ip_text,
    ip_interfaces,
    ip_routes,
    ip_rules,
)

DATA = Path(__file__).parent / "data" / "iproute"


def _read(name: str) -> str:
    return (DATA / name).read_text()


def test_it_reads_a_node_from_ip_json() -> None:
    host = host_from_ip_json(
        _read("addr.json"), _read("link.json"), [_read("route4.json"), _read("route6.json")], _read("rule.json")
    )
    by_name = {i["name"]: i for i in host["interfaces"]}
    assert "lo" not in by_name  # implicit
    assert by_name["eth0"]["addrs"] == ["10.61.0.5/24", "2001:db8:61::5/64", "fe80::41a:70ff:fe0d:a191/64"]
    assert by_name["docker0"]["type"] == "bridge"
    assert by_name["veth1a"]["master"] == "docker0" and "hairpin" not in by_name["veth1a"]
    assert by_name["veth2b"]["hairpin"] is True
    # Kernel-made routes (connected, local table, fe80::/64, ff00::/8) are derived, not listed.
    assert host["routes"] == [
        "default via 10.61.0.254 dev eth0 table 100",
        "default via 10.61.0.1 dev eth0 proto dhcp src 10.61.0.5 metric 100",
        "10.62.0.0/16 via 10.61.0.9 dev eth0 onlink",
        "10.63.0.0/16 proto static nexthop via 10.61.0.2 dev eth0 weight 1 nexthop via 10.61.0.3 dev eth0 weight 2",
        "default via 2001:db8:61::1 dev eth0 metric 1024",
    ]
    assert host["rules"] == ["pref 1000 from all fwmark 0x4000/0x4000 lookup 100"]


def test_it_reads_the_same_node_from_ip_text() -> None:
    text = host_from_ip_text(_read("addr.txt"), _read("route4.txt") + _read("route6.txt"), _read("rule.txt"), _read("link.txt"))
    js = host_from_ip_json(
        _read("addr.json"), _read("link.json"), [_read("route4.json"), _read("route6.json")], _read("rule.json")
    )
    assert text == js


def test_the_host_it_builds_routes_like_the_node() -> None:
    host = Host.from_dict(host_from_ip_json(_read("addr.json"), _read("link.json"), _read("route4.json"), _read("rule.json")))
    ip = ipaddress.ip_address
    assert host.route(ip("10.62.1.1")).gateway == ip("10.61.0.9")
    multipath = host.route(ip("10.63.1.1")).route
    assert multipath is not None and [str(h.via) for h in multipath.nexthops] == ["10.61.0.2", "10.61.0.3"]
    assert host.route(ip("8.8.8.8"), mark=0x4000).gateway == ip("10.61.0.254")  # table 100
    assert host.interface("veth2b").master == "docker0"  # type: ignore[union-attr]


def test_pasted_fields_accept_text_and_json() -> None:
    ifaces = ip_interfaces(_read("addr-brief.txt"))
    assert [i["name"] for i in ifaces][:3] == ["lo", "eth0", "docker0"]
    assert ip_interfaces(_read("addr.json"))[1]["name"] == "eth0"
    assert ip_routes(_read("route4.json"), ip_interfaces(_read("addr.json"))) == ip_routes(
        _read("route4.txt"), ifaces
    )
    assert ip_rules(_read("rule.json")) == ip_rules(_read("rule.txt"))


def test_tentative_addresses_are_kept_and_failed_ones_dropped() -> None:
    text = """2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default
    link/ether 52:54:00:12:34:56 brd ff:ff:ff:ff:ff:ff
    inet6 2001:db8::5/64 scope global tentative
       valid_lft forever preferred_lft forever
    inet6 2001:db8::6/64 scope global dadfailed tentative
       valid_lft forever preferred_lft forever
"""
    assert ip_interfaces(text) == [{"name": "eth0", "addrs": ["2001:db8::5/64"]}]


def test_bad_lines_name_their_line() -> None:
    with pytest.raises(ValueError, match="route line 2"):
        ip_routes("default via 10.0.0.1 dev eth0\n10.1.0.0/16 frobnicate 3\n")
    with pytest.raises(ValueError, match="rule line 1"):
        ip_rules("100: from all wobble 3\n")


def test_a_multipath_route_says_the_kernel_picks_the_next_hop() -> None:
    from netviz.engine.parser import parse_ruleset
    from netviz.engine.pipeline import trace_dicts

    host = host_from_ip_json(_read("addr.json"), _read("link.json"), _read("route4.json"))
    rules = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
    trace = trace_dicts(parse_ruleset(rules), host, {"proto": "udp", "src": "10.61.0.5", "dst": "10.63.1.1"}, "ipv4")
    route = next(s for s in trace.steps if s.kind.name == "ROUTE")
    assert "via 10.61.0.2 dev eth0" in route.text and "one of 2 next hops" in route.text
