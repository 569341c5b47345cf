"""host.sysctls: how the kernel combines all, default and device values."""

from __future__ import annotations

import pytest

from netviz.engine.host import Host
from netviz.engine.parser import parse_ruleset
from netviz.engine.pipeline import trace_dicts

IFACES = [{"name": "eth0", "addrs": ["10.81.0.1/24"]}, {"name": "eth1", "addrs": ["10.82.0.1/24"]}]


def host(**sysctls: str) -> Host:
    return Host.from_dict({"interfaces": IFACES, "sysctls": {k.replace("__", "."): v for k, v in sysctls.items()}})


def test_absent_keys_take_the_fresh_namespace_values() -> None:
    h = host()
    assert [h.conf(k, "eth0") for k in ("rp_filter", "route_localnet", "accept_local", "src_valid_mark")] == [0, 0, 0, 0]
    assert h.conf("forwarding", "eth0") == 1 and h.conf("forwarding", "eth0", "ipv6") == 1


def test_rp_filter_is_the_maximum_and_flags_are_or() -> None:
    h = Host.from_dict({"interfaces": IFACES, "sysctls": {
        "net.ipv4.conf.all.rp_filter": "2", "net.ipv4.conf.eth0.rp_filter": "1",
        "net.ipv4.conf.eth1.route_localnet": "1", "net.ipv4.conf.all.accept_local": "1"}})
    assert (h.conf("rp_filter", "eth0"), h.conf("rp_filter", "eth1")) == (2, 2)
    assert (h.conf("route_localnet", "eth0"), h.conf("route_localnet", "eth1")) == (0, 1)
    assert h.conf("accept_local", "eth0") == 1


def test_forwarding_is_per_input_device_and_ip_forward_sets_them_all() -> None:
    h = Host.from_dict({"interfaces": IFACES, "sysctls": {"net.ipv4.ip_forward": "0", "net.ipv4.conf.eth1.forwarding": "1"}})
    assert (h.conf("forwarding", "eth0"), h.conf("forwarding", "eth1")) == (0, 1)
    d = Host.from_dict({"interfaces": IFACES, "sysctls": {"net.ipv4.conf.default.rp_filter": "1"}})
    assert (d.conf("rp_filter", "eth0"), d.conf("rp_filter", "lo")) == (1, 0)  # lo predates conf.default


def test_bad_sysctls_are_refused() -> None:
    with pytest.raises(ValueError, match="not a number"):
        Host.from_dict({"sysctls": {"net.ipv4.conf.all.rp_filter": "strict"}})
    with pytest.raises(ValueError, match="net"):
        Host.from_dict({"sysctls": {"kernel.panic": "1"}})
    assert Host.from_dict({"sysctls": {"net.ipv4.ip_forward": "1"}}).to_dict()["sysctls"] == {"net.ipv4.ip_forward": "1"}


RULES = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"


@pytest.mark.parametrize(
    ("sysctls", "packet", "words"),
    [
        ({"net.ipv4.conf.all.rp_filter": "1"}, {"src": "10.81.0.9", "dst": "10.82.0.1", "in_iface": "eth1"},
         ["rp_filter strict", "leaves by eth0", "net.ipv4.conf.all.rp_filter"]),
        ({"net.ipv4.conf.eth0.forwarding": "0"}, {"src": "10.81.0.9", "dst": "10.82.0.9", "in_iface": "eth0"},
         ["net.ipv4.conf.eth0.forwarding = 0"]),
        ({}, {"src": "10.81.0.9", "dst": "127.0.0.1", "in_iface": "eth0"}, ["route_localnet is 0"]),
        ({}, {"src": "10.82.0.1", "dst": "10.81.0.1", "in_iface": "eth0"}, ["accept_local is 0"]),
    ],
)
def test_a_packet_a_sysctl_stops_says_which_and_why(sysctls: dict[str, str], packet: dict[str, str], words: list[str]) -> None:
    trace = trace_dicts(parse_ruleset(RULES), {"interfaces": IFACES, "sysctls": sysctls}, {"proto": "tcp", **packet}, "ipv4")
    assert trace.verdict == "DROP"
    assert trace.hooks == ("PREROUTING",)
    last = trace.steps[-1]
    assert last.kind.name == "DROP" and last.hook == "PREROUTING"
    for w in words:
        assert w in last.text, last.text


def test_the_flow_diagram_shows_the_sysctl_drop_at_the_routing_decision() -> None:
    from netviz.engine.dot_trace import flow_dot

    trace = trace_dicts(parse_ruleset(RULES), {"interfaces": IFACES, "sysctls": {"net.ipv4.conf.all.rp_filter": "1"}},
                        {"proto": "tcp", "src": "10.81.0.9", "dst": "10.82.0.1", "in_iface": "eth1"}, "ipv4")
    node = next(ln for ln in flow_dot(trace).splitlines() if ln.strip().startswith('"flow-route-in" ['))
    assert "DROP" in node and "rp_filter" in node and " drop" in node
