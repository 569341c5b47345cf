"""Real iptables-save dumps (tests/data/realworld) on a host made to fit them:
the kernel's fate first, then the engine's hops against the kernel's.

Addresses are those of the dumps; everything lives in the replay's own
namespaces, so nothing leaves the machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from netviz.engine.pipeline import trace_scenario
from netviz.kernel import replay
from netviz.scenario import scenario_from_dict
from netviz.testing import hops_diff

REALWORLD = Path(__file__).resolve().parents[1] / "data" / "realworld"
pytestmark = [pytest.mark.usefixtures("kernel"), pytest.mark.slow]

DOCKER_HOST = {
    "interfaces": [
        {"name": "eth0", "addrs": ["198.51.100.10/24"]},
        {"name": "docker0", "addrs": ["172.17.0.1/16"]},
    ],
    "routes": ["default via 198.51.100.1 dev eth0"],
}
KUBE_FLANNEL_HOST = {
    "interfaces": [
        {"name": "eth0", "addrs": ["192.168.1.5/24"]},
        {"name": "cni0", "addrs": ["10.1.0.1/25"]},
        {"name": "virbr0", "addrs": ["192.168.122.1/24"]},
        {"name": "docker0", "addrs": ["172.17.0.1/16"]},
    ],
    "routes": ["default via 192.168.1.1 dev eth0"],
}
CALICO_HOST = {
    "interfaces": [
        {"name": "eth0", "addrs": ["10.0.2.15/24"]},
        {"name": "cali1a2b3c", "addrs": []},
        {"name": "vxlan.calico", "addrs": ["192.168.77.0/32"]},
    ],
    "routes": [
        "default via 10.0.2.2 dev eth0",
        "192.168.10.5 dev cali1a2b3c scope link",
        "192.168.20.0/26 via 192.168.20.0 dev vxlan.calico onlink",
    ],
}
FIREWALLD_HOST = {
    "interfaces": [
        {"name": "wlp58s0", "addrs": ["192.168.1.20/24"]},
        {"name": "virbr0", "addrs": ["192.168.122.1/24"]},
    ],
    "routes": ["default via 192.168.1.1 dev wlp58s0"],
}
# The sets kube-proxy (IPVS mode) and Calico use in the IPVS dump, in
# `ipset save` form (KUBE-CLUSTER-IP from ipset-kube-proxy-ipvs-cluster-ip).
IPVS_SETS = """create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536
add KUBE-CLUSTER-IP 10.100.49.21,tcp:80
add KUBE-CLUSTER-IP 10.101.177.188,tcp:443
add KUBE-CLUSTER-IP 10.96.0.10,tcp:53
add KUBE-CLUSTER-IP 10.96.0.1,tcp:443
add KUBE-CLUSTER-IP 10.96.0.10,udp:53
add KUBE-CLUSTER-IP 10.99.180.41,tcp:5473
add KUBE-CLUSTER-IP 10.96.0.10,tcp:9153
create KUBE-NODE-PORT-TCP bitmap:port range 0-65535
add KUBE-NODE-PORT-TCP 30080
create KUBE-LOOP-BACK hash:ip,port,ip family inet hashsize 1024 maxelem 65536
add KUBE-LOOP-BACK 192.168.10.5,tcp:80,192.168.10.5
create cali40masq-ipam-pools hash:net family inet maxelem 1048576
add cali40masq-ipam-pools 192.168.0.0/16
create cali40all-ipam-pools hash:net family inet maxelem 1048576
add cali40all-ipam-pools 192.168.0.0/16
"""


def tcp(src: str, dst: str, dport: int, in_iface: str | None, sport: int = 40000) -> dict[str, Any]:
    return {"proto": "tcp", "src": src, "sport": sport, "dst": dst, "dport": dport, "in_iface": in_iface}


def udp(src: str, dst: str, dport: int, in_iface: str | None, sport: int = 40001) -> dict[str, Any]:
    return {"proto": "udp", "src": src, "sport": sport, "dst": dst, "dport": dport, "in_iface": in_iface}


CASES: list[tuple[str, str, str | None, dict[str, Any], dict[str, Any], str]] = [
    # (id, dump, ipsets, host, packet, the kernel's fate)
    ("docker-published-port", "docker-default-published-port.rules", None, DOCKER_HOST,
     tcp("203.0.113.7", "198.51.100.10", 10080, "eth0"), "ACCEPT"),
    ("docker-container-out", "docker-default-published-port.rules", None, DOCKER_HOST,
     tcp("172.17.0.2", "203.0.113.9", 443, "docker0"), "ACCEPT"),
    ("docker-unpublished-forward", "docker-default-published-port.rules", None, DOCKER_HOST,
     tcp("203.0.113.7", "172.17.0.2", 22, "eth0"), "DROP"),
    ("docker-host-input", "docker-default-published-port.rules", None, DOCKER_HOST,
     udp("198.51.100.50", "198.51.100.10", 53, "eth0"), "ACCEPT"),
    ("docker-local-to-published", "docker-default-published-port.rules", None, DOCKER_HOST,
     tcp("198.51.100.10", "198.51.100.10", 10080, None), "ACCEPT"),
    ("flannel-pod-to-apiserver", "kube-proxy-flannel-centos7-BROKEN.rules", None, KUBE_FLANNEL_HOST,
     tcp("10.1.0.5", "10.2.0.1", 443, "cni0"), "DROP"),
    ("flannel-ssh-in", "kube-proxy-flannel-centos7-BROKEN.rules", None, KUBE_FLANNEL_HOST,
     tcp("192.168.1.50", "192.168.1.5", 22, "eth0"), "ACCEPT"),
    ("flannel-pod-out", "kube-proxy-flannel-centos7-BROKEN.rules", None, KUBE_FLANNEL_HOST,
     tcp("10.1.0.5", "203.0.113.9", 443, "cni0"), "DROP"),
    ("flannel-host-out", "kube-proxy-flannel-centos7-BROKEN.rules", None, KUBE_FLANNEL_HOST,
     udp("192.168.1.5", "192.168.1.1", 53, None), "ACCEPT"),
    ("calico-pod-out", "calico-felix-fv-vxlan-natoutgoing-off.rules", None, CALICO_HOST,
     tcp("192.168.10.5", "203.0.113.9", 443, "cali1a2b3c"), "DROP"),
    ("calico-host-in", "calico-felix-fv-vxlan-natoutgoing-off.rules", None, CALICO_HOST,
     tcp("10.0.2.2", "10.0.2.15", 22, "eth0"), "ACCEPT"),
    ("calico-host-out-vxlan", "calico-felix-fv-vxlan-natoutgoing-off.rules", None, CALICO_HOST,
     udp("10.0.2.15", "10.0.2.2", 4789, None), "ACCEPT"),
    ("ipvs-pod-to-cluster-ip", "kube-proxy-ipvs-calico-natoutgoing-on.rules", IPVS_SETS, CALICO_HOST,
     udp("192.168.10.5", "10.96.0.10", 53, "cali1a2b3c"), "ACCEPT"),
    ("ipvs-host-to-cluster-ip", "kube-proxy-ipvs-calico-natoutgoing-on.rules", IPVS_SETS, CALICO_HOST,
     tcp("10.0.2.15", "10.96.0.1", 443, None), "ACCEPT"),
    ("ipvs-nodeport-in", "kube-proxy-ipvs-calico-natoutgoing-on.rules", IPVS_SETS, CALICO_HOST,
     tcp("203.0.113.7", "10.0.2.15", 30080, "eth0"), "ACCEPT"),
    ("firewalld-ssh-in", "firewalld-fedora27-iptables-counters.rules", None, FIREWALLD_HOST,
     tcp("192.168.1.50", "192.168.1.20", 22, "wlp58s0"), "ACCEPT"),
    ("firewalld-closed-port", "firewalld-fedora27-iptables-counters.rules", None, FIREWALLD_HOST,
     tcp("192.168.1.50", "192.168.1.20", 80, "wlp58s0"), "DROP"),
    ("firewalld-vm-out", "firewalld-fedora27-iptables-counters.rules", None, FIREWALLD_HOST,
     tcp("192.168.122.50", "203.0.113.9", 443, "virbr0"), "ACCEPT"),
    ("firewalld-local-out", "firewalld-fedora27-iptables-counters.rules", None, FIREWALLD_HOST,
     udp("192.168.1.20", "192.168.1.1", 53, None), "ACCEPT"),
]


@pytest.mark.parametrize(
    ("dump", "ipsets", "host", "packet", "fate"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_real_dump(
    dump: str, ipsets: str | None, host: dict[str, Any], packet: dict[str, Any], fate: str
) -> None:
    data: dict[str, Any] = {
        "ruleset": (REALWORLD / dump).read_text(encoding="utf-8"),
        "host": host,
        "packet": packet,
    }
    if ipsets:
        data["ipsets"] = ipsets
    sc = scenario_from_dict(data)
    kernel = replay(sc)
    raw = "\n".join(kernel.raw)
    assert kernel.hops, f"the kernel reported nothing for {dump}:\n{raw}"
    assert kernel.verdict == fate, raw
    engine = trace_scenario(sc)
    diff = hops_diff(list(kernel.hops), engine.hops())
    assert not diff, "engine differs from the kernel:\n" + diff + "\n" + raw
    assert engine.verdict == kernel.verdict
