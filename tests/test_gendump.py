"""The generated kube-proxy dumps are what iptables-save prints, and they load."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from netviz.engine.host import Host
from netviz.engine.parser import parse_ruleset
from netviz.engine.pipeline import packet_from_dict, trace_packet
from netviz.engine.ruleset import Family
from netviz.testing.gendump import SIZES, generate_dump, probability, sample_packets


def _kernel_roundtrip(text: str, tmp_path: Path) -> str:
    if shutil.which("iptables-restore") is None or shutil.which("unshare") is None:
        pytest.skip("iptables-restore or unshare is not installed")
    path = tmp_path / "dump.rules"
    path.write_text(text)
    # A fresh network namespace: nothing touches the host's rules.
    probe = subprocess.run(["unshare", "-n", "true"], check=False, capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {probe.stderr.decode().strip()}")
    test = subprocess.run(["unshare", "-n", "iptables-restore", "--test", str(path)],
                          check=False, capture_output=True, text=True)
    assert test.returncode == 0, test.stderr
    saved = subprocess.run(["unshare", "-n", "sh", "-c", f"iptables-restore {path} && iptables-save"],
                           check=False, capture_output=True, text=True)
    assert saved.returncode == 0, saved.stderr
    return saved.stdout


def test_it_loads_and_reads_back_identically(tmp_path: Path) -> None:
    dump = generate_dump(60, 3, calico_pods=4, seed=5)
    saved = _kernel_roundtrip(dump.text, tmp_path)

    def body(text: str) -> list[str]:
        return [re.sub(r" \[\d+:\d+\]$", "", line) for line in text.splitlines() if line[:1] in "*:-C"]

    assert body(saved) == body(dump.text)


def test_it_writes_kube_proxy_chains() -> None:
    dump = generate_dump(40, 4, seed=2)
    ruleset = parse_ruleset(dump.text)
    nat = ruleset.table("nat")
    assert nat is not None
    services = nat.chain("KUBE-SERVICES")
    assert services is not None
    with_eps = [s for s in dump.services if s.endpoints]
    cluster = [r for r in services.rules if any("cluster IP" in c for c in r.comments())]
    assert len(cluster) == len(with_eps)
    svc_chains = [c for c in nat.chains if c.name.startswith("KUBE-SVC-")]
    assert len(svc_chains) == len(with_eps)
    for chain in svc_chains:
        if chain.name == "KUBE-SVC-NPX46M4PTMTKRN6Y":
            continue  # default/kubernetes:https, one endpoint (the API server)
        # masquerade rule + one rule per endpoint, the last one without statistic
        assert len(chain.rules) == 5
        assert "! -s 10.244.0.0/16" in chain.rules[0].text
        probs = [re.search(r"--probability (\S+)", r.text) for r in chain.rules[1:]]
        assert [m.group(1) if m else None for m in probs] == [
            "0.25000000000", "0.33333333349", "0.50000000000", None]
    seps = [c for c in nat.chains if c.name.startswith("KUBE-SEP-")]
    assert len(seps) == 4 * (len(with_eps) - 1) + 1
    assert all(len(c.rules) == 2 and "DNAT --to-destination" in c.rules[1].text for c in seps)
    filt = ruleset.table("filter")
    assert filt is not None
    rejects = filt.chain("KUBE-SERVICES")
    assert rejects is not None
    assert len(rejects.rules) == len(dump.services) - len(with_eps) > 0
    assert dump.rule_count == len(ruleset.rules())


def test_it_prints_probabilities_as_iptables_save_does() -> None:
    # libxt_statistic: stored as lround(p * 2^31), printed with %.11f
    assert probability(3) == "0.33333333349"
    assert probability(7) == "0.14285714272"
    assert probability(1) == "1.00000000000"


def test_it_is_seeded() -> None:
    assert generate_dump(30, 2, 3, seed=9).text == generate_dump(30, 2, 3, seed=9).text
    assert generate_dump(30, 2, 3, seed=9).text != generate_dump(30, 2, 3, seed=10).text


def test_the_benchmark_sizes_are_about_right() -> None:
    targets = {"1k": 1_000, "10k": 10_000, "110k": 110_000}
    for name, args in SIZES.items():
        if name == "110k":
            continue  # generating it takes a few seconds; bench prints its size
        count = generate_dump(*args).rule_count
        assert abs(count - targets[name]) / targets[name] < 0.05, (name, count)


def test_sample_packets_hit_services_and_nodeports() -> None:
    dump = generate_dump(100, 2, calico_pods=5, seed=4)
    ruleset = parse_ruleset(dump.text)
    host = Host.from_dict(dump.host(), Family.IPV4)
    verdicts: Counter[str] = Counter()
    for packet in sample_packets(dump, 60, seed=2):
        trace = trace_packet(ruleset, host, packet_from_dict(packet))
        hops = trace.hops()
        if any(str(h.get("verdict", "")).startswith("JUMP:KUBE-SVC-") for h in hops):
            verdicts["service"] += 1
        if any(h.get("chain") == "KUBE-NODEPORTS" for h in hops):
            verdicts["nodeport"] += 1
        verdicts[trace.verdict] += 1
    assert verdicts["service"] > 10
    assert verdicts["nodeport"] > 0
