"""Every real dump, with packets drawn from the addresses, interfaces and ports
its own rules name (netviz.testing.dumpfuzz), replayed in the kernel and
compared hop by hop."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netviz.engine.pipeline import trace_scenario
from netviz.kernel import replay
from netviz.scenario import scenario_from_dict
from netviz.testing.compare import hops_diff
from netviz.testing.dumpfuzz import dump_scenarios

DATA = Path(__file__).parent / "data"
REALWORLD = Path(__file__).resolve().parents[1] / "data" / "realworld"
PACKETS = int(os.environ.get("NETVIZ_DUMP_PACKETS", "6"))

# Sets the dumps use, written for these tests (the dumps come without them).
IPSETS = {
    "kube-proxy-ipvs-calico-natoutgoing-on.rules": "kube-proxy-ipvs-calico.ipset",
    "openstack-neutron-ovs-hybrid-sg.rules": "openstack-neutron.ipset",
}
# IPv6 dumps are covered by the packet-kind tests; ufw-libvirt-counters.rules
# is anonymised (IP4_2 placeholders) and loads nowhere.
DUMPS = [
    "calico-aks-kubenet-policy-only-filter.rules",
    "calico-felix-fv-vxlan-natoutgoing-off.rules",
    "docker-default-published-port.rules",
    "firewalld-fedora27-iptables-counters.rules",
    "k3s-kube-proxy-docker-counters.rules",
    "kube-proxy-docker-felix-fv.rules",
    "kube-proxy-flannel-centos7-BROKEN.rules",
    "kube-proxy-flannel-centos7-FIXED.rules",
    "kube-proxy-flannel-docker-libvirt-v1.22.rules",
    "kube-proxy-ipvs-calico-natoutgoing-on.rules",
    "netfilter-testsuite-wireless-isp.rules",
    "openstack-neutron-ovs-hybrid-sg.rules",
]


@pytest.mark.slow
@pytest.mark.parametrize("dump", DUMPS)
def test_real_dump_packets_match_kernel(kernel: None, dump: str) -> None:
    text = (REALWORLD / dump).read_text()
    ipsets = (DATA / IPSETS[dump]).read_text() if dump in IPSETS else None
    failures = []
    for data in dump_scenarios(text, ipsets, seed=7, count=PACKETS):
        scenario = scenario_from_dict({"ruleset": text, "ipsets": ipsets, **data})
        kernel_trace = replay(scenario)
        diff = hops_diff(kernel_trace.hops, trace_scenario(scenario).hops())
        if diff:
            failures.append(f"{data['packet']}\n{diff}")
    assert not failures, "\n\n".join(failures)
