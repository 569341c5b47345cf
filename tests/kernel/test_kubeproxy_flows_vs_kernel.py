"""kube-proxy's packet-flow expectations on a default kube-proxy node, hop by
hop against the kernel.

The ruleset is the one kube-proxy's own TestTracePacket traces; the node is
described as kube-proxy leaves it: forwarding on, net.ipv4.conf.all.
route_localnet=1 (localhost NodePorts), bridge-nf-call-iptables=1.  Each case
states what kube-proxy's test expects (the endpoint, masquerade, DROP,
REJECT, ACCEPT) and the kernel must agree with netviz on every hop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from netviz.engine.pipeline import trace_scenario
from netviz.kernel import replay
from netviz.scenario import scenario_from_dict
from netviz.testing.compare import hops_diff

RULES = (Path(__file__).resolve().parents[1] / "data" / "kube-proxy" / "TestTracePacket.rules").read_text()
KUBE_SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.ipv4.conf.all.route_localnet": "1",
    "net.bridge.bridge-nf-call-iptables": "1",
}
# The test's node IPs on eth0; pods (10.0.0.0/8, endpoints 10.180.0.x) behind cni0.
NODE: dict[str, Any] = {
    "interfaces": [
        {"name": "eth0", "addrs": ["192.168.0.2/24", "192.168.1.2/24"]},
        {"name": "cni0", "addrs": ["10.0.0.1/8"]},
    ],
    "routes": ["default via 192.168.0.1 dev eth0"],
}
POD, NODE_IP, EXTERNAL = "10.0.0.2", "192.168.0.2", "203.0.113.2"


def flow(src: str, dst: str, dport: int) -> dict[str, Any]:
    pkt: dict[str, Any] = {"proto": "tcp", "src": src, "dst": dst, "sport": 40000, "dport": dport}
    if src == POD:
        pkt["in_iface"] = "cni0"
    elif src == EXTERNAL:
        pkt["in_iface"] = "eth0"
    return pkt


# name: (packet, expected: an endpoint "ip:port", or ACCEPT/DROP/REJECT/"" for
# no NAT, masquerade expected)
CASES: dict[str, tuple[dict[str, Any], str, bool]] = {
    "no match": (flow(POD, "10.0.0.3", 80), "", False),
    "single endpoint": (flow(POD, "172.30.0.41", 80), "10.180.0.1:80", False),
    "LOCAL, KUBE-MARK-MASQ": (flow(NODE_IP, "192.168.99.22", 80), "10.180.0.2:80", True),
    "DROP": (flow(EXTERNAL, "192.168.99.22", 80), "DROP", False),
    "ACCEPT (NodePortHealthCheck)": (flow(NODE_IP, NODE_IP, 30000), "ACCEPT", False),
    "REJECT": (flow(POD, "172.30.0.46", 80), "REJECT", False),
    "localhost to NodePort": (flow("127.0.0.1", "127.0.0.1", 3001), "10.180.0.2:80", True),
    "node IP to NodePort": (flow(NODE_IP, NODE_IP, 3001), "10.180.0.2:80", True),
    "external to NodePort with no local endpoints": (flow(EXTERNAL, NODE_IP, 3001), "DROP", False),
    "external to NodePort": (flow(EXTERNAL, "192.168.1.2", 3003), "10.180.0.3:80", True),
    "pod to NodePort": (flow(POD, NODE_IP, 3001), "10.180.0.2:80", False),
    "loadbalancer source range": (flow(EXTERNAL, "5.6.7.8", 80), "10.180.0.3:80", True),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_kube_proxy_packet_flows_agree_with_the_kernel(kernel: None, name: str) -> None:
    packet, expected, masq = CASES[name]
    sc = scenario_from_dict({"ruleset": RULES, "host": {**NODE, "sysctls": KUBE_SYSCTLS}, "packet": packet})
    engine = trace_scenario(sc)
    kernel_trace = replay(sc)
    diff = hops_diff(kernel_trace.hops, engine.hops())
    assert not diff, f"{engine.summary}\n{diff}"
    out = engine.packet_out
    if expected in ("DROP", "REJECT"):
        assert engine.verdict == "DROP" and engine.hops()[-1].get("verdict") == "DROP"
        rule = next(s for s in reversed(engine.steps) if s.is_hop)
        assert rule.text.endswith(f"-j {expected}"), rule.text
    elif expected == "ACCEPT":
        assert engine.verdict == "ACCEPT" and out.dst == engine.packet_in.dst
    else:
        assert engine.verdict == "ACCEPT", engine.summary
        endpoint = f"{out.dst}:{out.dport}" if expected else f"{engine.packet_in.dst}:{engine.packet_in.dport}"
        assert endpoint == (expected or f"{packet['dst']}:{packet['dport']}")
        assert (out.src != engine.packet_in.src) == masq, engine.summary
    if kernel_trace.packet_out is not None and engine.verdict == "ACCEPT":
        assert kernel_trace.packet_out["dst"] == str(out.dst)


def test_localhost_nodeport_needs_route_localnet(kernel: None) -> None:
    # Without route_localnet the DNATed 127.0.0.1 packet cannot leave by cni0:
    # it ends after nat OUTPUT, in the kernel and in netviz.
    packet = flow("127.0.0.1", "127.0.0.1", 3001)
    sc = scenario_from_dict({"ruleset": RULES, "host": {**NODE, "sysctls": {"net.ipv4.ip_forward": "1"}}, "packet": packet})
    engine = trace_scenario(sc)
    kernel_trace = replay(sc)
    assert not hops_diff(kernel_trace.hops, engine.hops())
    assert engine.verdict == "DROP" and engine.hops()[-1]["table"] == "nat"
    assert "route_localnet" in engine.summary
