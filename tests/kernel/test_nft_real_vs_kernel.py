"""The real nftables listings (tests/data/realworld-nft) loaded with `nft -f`
beside an (empty or small) iptables dump: a few packets each, the engine's
hops (with `family`) against the kernel's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from netviz.engine.pipeline import trace_scenario
from netviz.kernel import replay
from netviz.scenario import scenario_from_dict
from netviz.testing import hops_diff

pytestmark = [pytest.mark.usefixtures("kernel"), pytest.mark.slow]

DATA = Path(__file__).resolve().parents[1] / "data" / "realworld-nft"


def host(a: str, b: str) -> dict[str, Any]:
    return {"interfaces": [{"name": a, "addrs": ["192.168.5.1/24"]}, {"name": b, "addrs": ["10.0.0.1/24"]}],
            "routes": []}


def tcp(src: str, dst: str, dport: int, iface: str | None, **kw: Any) -> dict[str, Any]:
    pkt = {"proto": "tcp", "src": src, "dst": dst, "sport": 40000, "dport": dport, **kw}
    if iface:
        pkt["in_iface"] = iface
    return pkt


# listing → (interfaces, packets); 192.168.5.0/24 on the first, 10.0.0.0/24 on the second.
CASES: dict[str, tuple[tuple[str, str], list[dict[str, Any]]]] = {
    "candy-home-router": (("wan", "lan"), [
        tcp("192.168.5.9", "192.168.5.1", 80, "wan"), tcp("192.168.5.9", "192.168.5.1", 22, "wan"),
        tcp("10.0.0.7", "192.168.5.9", 443, "lan"),
    ]),
    "docker29-usernet-portmap": (("eth0", "docker0"), [
        tcp("192.168.5.9", "192.168.5.1", 8080, "eth0"), tcp("10.0.0.7", "192.168.5.9", 443, "docker0"),
        tcp("192.168.5.9", "10.0.0.7", 80, "eth0"),
    ]),
    "gorbe-webserver": (("eth0", "eth1"), [
        tcp("192.168.5.9", "192.168.5.1", 443, "eth0"), tcp("192.168.5.9", "192.168.5.1", 25, "eth0"),
        {"proto": "icmp", "src": "192.168.5.9", "dst": "192.168.5.1", "in_iface": "eth0"},
    ]),
    "kube-proxy-nft-overall": (("eth0", "cni0"), [
        tcp("192.168.5.9", "172.30.0.41", 80, "eth0"), tcp("192.168.5.9", "172.30.0.46", 80, "eth0"),
        tcp("192.168.5.9", "172.30.0.99", 80, "eth0"), tcp("10.0.0.1", "172.30.0.42", 80, None),
    ]),
    "lxd-libvirt-repsys13": (("eth0", "mpbr0"), [
        tcp("10.0.0.7", "192.168.5.9", 443, "mpbr0"), {"proto": "udp", "src": "10.0.0.7", "dst": "10.0.0.1",
                                                        "sport": 5353, "dport": 53, "in_iface": "mpbr0"},
    ]),
    "metal-stack-firewall": (("lan0", "vlan104009"), [
        tcp("192.168.5.9", "192.168.5.1", 9100, "lan0"), tcp("192.168.5.9", "192.168.5.1", 22, "lan0"),
        tcp("192.168.5.9", "10.0.0.7", 443, "lan0"),
    ]),
    "nixos-edge-router": (("enp1s0f0", "br-lan"), [
        tcp("192.168.5.9", "192.168.5.1", 443, "enp1s0f0"), tcp("10.0.0.7", "192.168.5.9", 80, "br-lan"),
        tcp("192.168.5.9", "192.168.5.1", 22, "enp1s0f0"),
    ]),
    "openwrt-fw4-default": (("pppoe-wan", "br-lan"), [
        tcp("192.168.5.9", "192.168.5.1", 22, "pppoe-wan"), tcp("10.0.0.7", "10.0.0.1", 22, "br-lan"),
        tcp("10.0.0.7", "192.168.5.9", 443, "br-lan"),
    ]),
    "rhel8-firewalld-only": (("enp0s3", "virbr0"), [
        tcp("192.168.5.9", "192.168.5.1", 22, "enp0s3"), tcp("192.168.5.9", "192.168.5.1", 8080, "enp0s3"),
        tcp("10.0.0.7", "192.168.5.9", 443, "virbr0"),
    ]),
    "rhel8-firewalld-libvirt": (("enp0s3", "virbr0"), [
        tcp("192.168.5.9", "192.168.5.1", 22, "enp0s3"), tcp("10.0.0.7", "192.168.5.9", 443, "virbr0"),
    ]),
}
PARAMS = [(name, i) for name, (_, pkts) in CASES.items() for i in range(len(pkts))]


@pytest.mark.parametrize(("name", "i"), PARAMS, ids=[f"{n}-{i}" for n, i in PARAMS])
@pytest.mark.parametrize("kind", ["nft", "json"])
def test_engine_matches_kernel_on_real_listings(name: str, i: int, kind: str) -> None:
    ifaces, packets = CASES[name]
    listing = (DATA / f"{name}.{kind}").read_text()
    sc = scenario_from_dict({"nftables": listing, "family": "ipv4", "host": host(*ifaces), "packet": packets[i]})
    kernel = replay(sc)
    engine = trace_scenario(sc)
    diff = hops_diff(list(kernel.hops), engine.hops())
    assert not diff, f"{name} packet {packets[i]}\n{diff}\nkernel trace:\n" + "\n".join(kernel.raw)
    if kernel.verdict is not None:
        assert kernel.verdict == engine.verdict


V6_LISTINGS = {
    "rhel8-firewalld-only": ("enp0s3", "virbr0"), "gorbe-webserver": ("eth0", "eth1"),
    "metal-stack-firewall": ("lan0", "lan1"), "openwrt-fw4-default": ("pppoe-wan", "br-lan"),
    "nixos-edge-router": ("enp1s0f0", "br-lan"), "lxd-libvirt-repsys13": ("eth0", "mpbr0"),
}
V6_PACKETS = [
    ({"proto": "tcp", "src": "2001:db8:1::9", "dst": "2001:db8:1::1", "sport": 40000, "dport": 22}, 0),
    ({"proto": "tcp", "src": "2001:db8:1::9", "dst": "2001:db8:2::7", "sport": 40000, "dport": 443}, 0),
    ({"proto": "icmp", "src": "2001:db8:1::9", "dst": "2001:db8:1::1"}, 0),
    ({"proto": "udp", "src": "2001:db8:2::9", "dst": "2001:db8:1::7", "sport": 5000, "dport": 53}, 1),
]


@pytest.mark.parametrize("name", sorted(V6_LISTINGS))
@pytest.mark.parametrize("n", range(len(V6_PACKETS)))
def test_engine_matches_kernel_on_real_listings_ipv6(name: str, n: int) -> None:
    ifaces = V6_LISTINGS[name]
    packet, side = V6_PACKETS[n]
    sc = scenario_from_dict({
        "nftables": (DATA / f"{name}.nft").read_text(), "family": "ipv6",
        "host": {"interfaces": [{"name": ifaces[0], "addrs": ["2001:db8:1::1/64"]},
                                {"name": ifaces[1], "addrs": ["2001:db8:2::1/64"]}], "routes": []},
        "packet": {**packet, "in_iface": ifaces[side]},
    })
    kernel = replay(sc)
    engine = trace_scenario(sc)
    diff = hops_diff(list(kernel.hops), engine.hops())
    assert not diff, f"{name} packet {packet}\n{diff}\nkernel trace:\n" + "\n".join(kernel.raw)
    if kernel.verdict is not None:
        assert kernel.verdict == engine.verdict
