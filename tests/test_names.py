"""Readable names for controller-generated chains, from real dumps."""

from __future__ import annotations

from pathlib import Path

import pytest

from netviz.engine.parser import parse_ruleset
from netviz.web.names import chain_descriptions, describe_chain, service_from_comment

REALWORLD = Path(__file__).resolve().parent / "data" / "realworld"


def realworld(name: str) -> str:
    return (REALWORLD / name).read_text()


@pytest.mark.parametrize(
    ("comment", "service", "endpoint"),
    [
        ("default/kubernetes:https cluster IP", "default/kubernetes:https", None),
        ("masquerade traffic for jenkins/jenkins:http external destinations", "jenkins/jenkins:http", None),
        ("default/kubernetes:https -> 192.168.1.5:6443", "default/kubernetes:https", "192.168.1.5:6443"),
        ("ingress-nginx/ingress-nginx-controller:https has no endpoints", "ingress-nginx/ingress-nginx-controller:https", None),
        ("default/my-nginx-svc", "default/my-nginx-svc", None),
    ],
)
def test_it_reads_the_service_from_kube_proxy_comments(comment: str, service: str, endpoint: str | None) -> None:
    assert service_from_comment(comment) == (service, endpoint)


def test_it_ignores_other_comments() -> None:
    assert service_from_comment("cali:Cz_u1IQiXIMmKD4c") is None
    assert service_from_comment("kubernetes service portals") is None


def test_it_describes_calico_and_docker_chains() -> None:
    assert describe_chain("cali-fw-cali112d888c0c2") == "from workload cali112d888c0c2"
    assert describe_chain("cali-tw-cali112d888c0c2") == "to workload cali112d888c0c2"
    assert describe_chain("cali-pri-kns.kube-system") == "profile namespace kube-system ingress"
    assert describe_chain("cali-pro-_CVSZITRyIpEmH8AB6H") == "profile _CVSZITRyIpEmH8AB6H egress"
    assert describe_chain("cali-po-_j5sVgQTfF-APgMw0kN9") == "policy _j5sVgQTfF-APgMw0kN9 egress"
    assert describe_chain("cali-pi-_abc") == "policy _abc ingress"
    assert describe_chain("DOCKER-USER") == "Docker: your rules, run before Docker's"
    assert describe_chain("MY-CHAIN") is None


def test_it_names_kube_proxy_chains_in_a_real_dump() -> None:
    names = chain_descriptions(parse_ruleset(realworld("kube-proxy-flannel-centos7-FIXED.rules")))
    svc = {c: d for (t, c), d in names.items() if c.startswith("KUBE-SVC-")}
    assert svc and all(d.startswith("service ") for d in svc.values())
    assert names[("nat", "KUBE-SVC-NPX46M4PTMTKRN6Y")] == "service default/kubernetes:https"
    seps = {c: d for (t, c), d in names.items() if c.startswith("KUBE-SEP-")}
    assert seps and all(d.startswith("endpoint ") for d in seps.values())


def test_it_names_external_traffic_chains() -> None:
    text = realworld("kube-proxy-test-overall-iptables-rules.restore")
    try:
        rs = parse_ruleset(text)
    except ValueError as exc:  # restore input, not save output
        pytest.skip(f"the engine does not read this restore file: {exc}")
    names = chain_descriptions(rs)
    ext = {d for (t, c), d in names.items() if c.startswith(("KUBE-EXT-", "KUBE-FW-", "KUBE-SVL-"))}
    assert ext, names
    assert all(d.startswith("service ") for d in ext)
