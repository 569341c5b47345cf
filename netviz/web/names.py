"""Readable names for the chains controllers generate.

kube-proxy names its per-service chains by a hash (KUBE-SVC-<16 base32>,
pkg/proxy/iptables/proxier.go servicePortChainName) and writes the service
as "namespace/name:port" into the rules' comments; Calico names per-workload
chains after the interface (cali-fw-<iface>, felix/rules/endpoints.go) and
per-policy/profile chains by prefix (felix/rules/policy.go).  Docker uses a
fixed set.  This module turns those into one-line subtitles.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from netviz.engine.ruleset import Ruleset

ChainKey = tuple[str, str]

FIXED: dict[str, str] = {
    # kube-proxy (iptables mode)
    "KUBE-SERVICES": "kube-proxy: service IP dispatch",
    "KUBE-NODEPORTS": "kube-proxy: NodePort dispatch",
    "KUBE-EXTERNAL-SERVICES": "kube-proxy: external IPs / NodePorts without endpoints",
    "KUBE-POSTROUTING": "kube-proxy: masquerade marked packets",
    "KUBE-MARK-MASQ": "kube-proxy: mark for masquerade",
    "KUBE-MARK-DROP": "kube-proxy: mark for drop",
    "KUBE-FORWARD": "kube-proxy: forward rules",
    "KUBE-FIREWALL": "kubelet: drop marked / martian loopback",
    "KUBE-PROXY-FIREWALL": "kube-proxy: load-balancer source ranges",
    "KUBE-KUBELET-CANARY": "kubelet: canary (flush detector)",
    "KUBE-PROXY-CANARY": "kube-proxy: canary (flush detector)",
    "KUBE-LOAD-BALANCER": "kube-proxy (IPVS): load-balancer IPs",
    "KUBE-NODE-PORT": "kube-proxy (IPVS): NodePorts",
    # Calico
    "cali-PREROUTING": "Calico: PREROUTING hook",
    "cali-INPUT": "Calico: INPUT hook",
    "cali-FORWARD": "Calico: FORWARD hook",
    "cali-OUTPUT": "Calico: OUTPUT hook",
    "cali-POSTROUTING": "Calico: POSTROUTING hook",
    "cali-from-wl-dispatch": "Calico: dispatch packets from workloads",
    "cali-to-wl-dispatch": "Calico: dispatch packets to workloads",
    "cali-from-host-endpoint": "Calico: from host endpoints",
    "cali-to-host-endpoint": "Calico: to host endpoints",
    "cali-from-hep-forward": "Calico: forwarded from host endpoints",
    "cali-to-hep-forward": "Calico: forwarded to host endpoints",
    "cali-wl-to-host": "Calico: workload to this host",
    "cali-nat-outgoing": "Calico: SNAT for pod egress (natOutgoing)",
    "cali-fip-dnat": "Calico: floating IP DNAT",
    "cali-fip-snat": "Calico: floating IP SNAT",
    "cali-cidr-block": "Calico: blocked CIDRs",
    "cali-failsafe-in": "Calico: failsafe inbound ports",
    "cali-failsafe-out": "Calico: failsafe outbound ports",
    "cali-rpf-skip": "Calico: reverse-path filter exceptions",
    # Docker
    "DOCKER": "Docker: published ports",
    "DOCKER-USER": "Docker: your rules, run before Docker's",
    "DOCKER-ISOLATION-STAGE-1": "Docker: network isolation, stage 1",
    "DOCKER-ISOLATION-STAGE-2": "Docker: network isolation, stage 2",
    "DOCKER-INGRESS": "Docker swarm: ingress routing mesh",
    "DOCKER-FORWARD": "Docker: forward rules",
    "DOCKER-BRIDGE": "Docker: per-bridge dispatch",
    "DOCKER-CT": "Docker: conntrack accept",
    "DOCKER-INTERNAL": "Docker: internal networks",
}

# kube-proxy comment suffixes around the "namespace/name:port" service name
# (proxier.go: "%s cluster IP", "%s external IP", "%s loadbalancer IP",
# "%s has no endpoints", "masquerade traffic for %s external destinations",
# "%s -> %s" on KUBE-SVC → KUBE-SEP rules).
_SERVICE_IN_COMMENT = re.compile(
    r"^(?:masquerade traffic for )?"
    # Namespace and name are DNS labels in a real cluster, but an uploaded
    # dump can say anything: accept any non-blank text and escape it later.
    r"(?P<svc>[^\s/]+/[^\s:]+(?::\S*)?)"
    r"(?: cluster IP| external IP| loadbalancer IP| has no endpoints| external destinations"
    r"| -> (?P<ep>\S+))?"
)

_KUBE_PREFIXES = {
    "KUBE-SVC-": "service {svc}",
    "KUBE-SVL-": "service {svc}, node-local endpoints",
    "KUBE-EXT-": "service {svc}, external traffic",
    "KUBE-XLB-": "service {svc}, external traffic (local)",
    "KUBE-FW-": "service {svc}, load-balancer firewall",
    "KUBE-SEP-": "endpoint {ep} of {svc}",
}

_KUBE_NAMED = tuple(_KUBE_PREFIXES)

_CALI_PREFIXES = [
    ("cali-fw-", "from workload {rest}"),
    ("cali-tw-", "to workload {rest}"),
    ("cali-pri-", "profile {rest} ingress"),
    ("cali-pro-", "profile {rest} egress"),
    ("cali-pi-", "policy {rest} ingress"),
    ("cali-po-", "policy {rest} egress"),
    ("cali-th-", "to host endpoint {rest}"),
    ("cali-fh-", "from host endpoint {rest}"),
    ("cali-thfw-", "to host endpoint {rest} (forward)"),
    ("cali-fhfw-", "from host endpoint {rest} (forward)"),
    ("cali-sm-", "set endpoint mark {rest}"),
]


def service_from_comment(comment: str) -> tuple[str, str | None] | None:
    """("namespace/name:port", endpoint or None) from a kube-proxy comment."""
    m = _SERVICE_IN_COMMENT.match(comment.strip())
    if not m:
        return None
    return m.group("svc"), m.group("ep")


def _calico_subject(rest: str) -> str:
    # Profiles for namespaces / service accounts: kns.<ns>, ksa.<ns>.<sa>
    if rest.startswith("kns."):
        return f"namespace {rest[4:]}"
    if rest.startswith("ksa."):
        return f"service account {rest[4:]}"
    return rest


def describe_chain(
    chain: str, comments: Iterable[str] = (), endpoint: str | None = None
) -> str | None:
    """A subtitle for `chain`, or None when there is nothing to add.

    `comments` are the comments of the chain's own rules and of the rules
    jumping to it; `endpoint` the DNAT --to-destination of a KUBE-SEP chain.
    """
    if chain in FIXED:
        return FIXED[chain]
    for prefix, template in _KUBE_PREFIXES.items():
        if chain.startswith(prefix):
            svc = None
            ep = endpoint
            for comment in comments:
                found = service_from_comment(comment)
                if found:
                    svc = svc or found[0]
                    if prefix == "KUBE-SEP-" and found[1] and not ep:
                        ep = found[1]
            if svc is None:
                if prefix == "KUBE-SEP-" and ep:
                    return f"endpoint {ep}"
                return None
            if prefix == "KUBE-SEP-" and not ep:
                return f"endpoint of {svc}"
            return template.format(svc=svc, ep=ep)
    for prefix, template in _CALI_PREFIXES:
        if chain.startswith(prefix):
            rest = chain[len(prefix):]
            if prefix in ("cali-pri-", "cali-pro-"):
                rest = _calico_subject(rest)
            return template.format(rest=rest)
    return None


def chain_descriptions(ruleset: Ruleset) -> dict[ChainKey, str]:
    comments: dict[ChainKey, list[str]] = {}
    endpoints: dict[ChainKey, str] = {}
    for table in ruleset.tables:
        for chain in table.chains:
            key = (table.name, chain.name)
            # Only kube-proxy's chains are named from comments; skip the
            # comment walk for the rest (a 100k-rule dump has many rules).
            own = chain.name.startswith(_KUBE_NAMED)
            for rule in chain.rules:
                target = rule.target
                into = target is not None and target.name.startswith(_KUBE_NAMED)
                if not (own or into):
                    continue
                rule_comments = rule.comments()
                if own:
                    comments.setdefault(key, []).extend(rule_comments)
                if target is None:
                    continue
                if target.name == "DNAT" and chain.name.startswith("KUBE-SEP-"):
                    opt = target.option("--to-destination")
                    if opt is not None:
                        endpoints.setdefault(key, opt.value)
                elif into and table.chain(target.name) is not None:
                    comments.setdefault((table.name, target.name), []).extend(rule_comments)
    out: dict[ChainKey, str] = {}
    for table in ruleset.tables:
        for chain in table.chains:
            key = (table.name, chain.name)
            text = describe_chain(chain.name, comments.get(key, ()), endpoints.get(key))
            if text:
                out[key] = text
    return out
