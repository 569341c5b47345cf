"""A seeded generator of big, realistic kube-proxy (iptables mode) dumps.

`generate_dump(services, endpoints, calico_pods, seed)` gives the text
`iptables-save` prints on a Kubernetes node running kube-proxy in iptables
mode (and, optionally, Calico's per-pod workload chains), plus the list of
services it contains so benchmarks and tests can aim packets at them.

The shape follows kube-proxy's proxier.go (pkg/proxy/iptables):
- nat KUBE-SERVICES: one rule per service port cluster IP, plus external IP
  and load-balancer IP rules, then the KUBE-NODEPORTS jump last;
- KUBE-SVC-<hash>: `! -s <cluster CIDR> … -j KUBE-MARK-MASQ`, then one rule
  per endpoint, each but the last with `statistic --mode random
  --probability 1/(n-i)` (the kernel keeps it as a u32 fraction of 2^31, and
  iptables-save prints it back with 11 decimals);
- KUBE-SEP-<hash>: `-s <endpoint> -j KUBE-MARK-MASQ` and `-j DNAT`;
- filter KUBE-SERVICES: REJECT for service ports without endpoints.
Chain hashes are kube-proxy's: base32(sha256(name + protocol …))[:16].
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import random
from dataclasses import dataclass, field
from typing import Any

CLUSTER_CIDR = ipaddress.IPv4Network("10.244.0.0/16")
SERVICE_CIDR = ipaddress.IPv4Network("10.96.0.0/12")
NODE_IP = ipaddress.IPv4Address("192.168.49.2")
NODE_NET = "192.168.49.2/24"
GATEWAY = "192.168.49.1"
EXTERNAL_NET = ipaddress.IPv4Network("198.51.100.0/24")  # TEST-NET-2
LB_NET = ipaddress.IPv4Network("203.0.113.0/24")  # TEST-NET-3
NODEPORT_BASE = 30000
MASQ_MARK = "0x4000/0x4000"

NAMESPACES = ("default", "kube-system", "shop", "payments", "monitoring", "ingress", "auth", "search")
APP_NAMES = ("web", "api", "cart", "db", "cache", "queue", "auth", "search", "metrics", "gateway")
# (port name, protocol, port, target port)
PORTS: tuple[tuple[str, str, int, int], ...] = (
    ("http", "tcp", 80, 8080),
    ("https", "tcp", 443, 8443),
    ("grpc", "tcp", 9090, 9090),
    ("redis", "tcp", 6379, 6379),
    ("pg", "tcp", 5432, 5432),
    ("metrics", "tcp", 9153, 9153),
    ("dns", "udp", 53, 53),
    ("syslog", "udp", 514, 5514),
)


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    port_name: str
    proto: str
    cluster_ip: str
    port: int
    target_port: int
    endpoints: tuple[str, ...]
    node_port: int | None = None
    external_ip: str | None = None
    lb_ip: str | None = None

    @property
    def svc_port_name(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port_name}"


@dataclass
class GeneratedDump:
    text: str
    services: list[Service] = field(default_factory=list)
    pods: list[tuple[str, str]] = field(default_factory=list)  # (iface, ip)
    rule_count: int = 0

    def host(self) -> dict[str, Any]:
        """The node as a scenario `host` object (shared/spec/scenario.md)."""
        interfaces: list[dict[str, Any]] = [{"name": "eth0", "addrs": [NODE_NET]}]
        routes = [f"default via {GATEWAY} dev eth0"]
        if self.pods:
            # Calico routes each pod /32 to its veth; the host side has no address.
            interfaces.extend({"name": iface, "addrs": []} for iface, _ in self.pods)
            routes.extend(f"{ip} dev {iface} scope link" for iface, ip in self.pods)
        else:
            interfaces.append({"name": "cni0", "addrs": ["10.244.0.1/16"]})
        return {"interfaces": interfaces, "routes": routes}


def chain_hash(*parts: str) -> str:
    # servicePortChainName()/servicePortEndpointChainName() in proxier.go
    digest = hashlib.sha256("".join(parts).encode()).digest()
    return base64.b32encode(digest).decode()[:16]


def probability(n_left: int) -> str:
    # xt_statistic keeps the probability as a fraction of 2^31
    # (libxt_statistic.c: lround(0x80000000 * prob)); iptables-save prints
    # that fraction back with "%.11f".
    fixed = round(0x80000000 / n_left)
    return f"{fixed / 0x80000000:.11f}"


def _cali_id(rng: random.Random) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
    return "cali:" + "".join(rng.choice(alphabet) for _ in range(16))


def _services(n: int, endpoints: int, rng: random.Random) -> list[Service]:
    cluster_ips = rng.sample(range(10, min(SERVICE_CIDR.num_addresses - 1, 10 + n * 8)), n)
    pod_ips = iter(rng.sample(range(2, CLUSTER_CIDR.num_addresses - 1), n * max(endpoints, 1) + 8))
    out: list[Service] = []
    for i in range(n):
        ns = NAMESPACES[i % len(NAMESPACES)]
        name = f"{APP_NAMES[rng.randrange(len(APP_NAMES))]}-{i}"
        port_name, proto, port, target = PORTS[rng.randrange(len(PORTS))]
        # One service in 20 has no ready endpoints (filter REJECT rule).
        count = 0 if i % 20 == 19 else endpoints
        eps = tuple(f"{CLUSTER_CIDR[next(pod_ips)]}" for _ in range(count))
        node_port = NODEPORT_BASE + i % 2768 if i % 10 == 3 else None
        external_ip = str(EXTERNAL_NET[1 + i % 250]) if i % 25 == 7 else None
        lb_ip = str(LB_NET[1 + i % 250]) if i % 50 == 11 else None
        out.append(
            Service(
                namespace=ns,
                name=name,
                port_name=port_name,
                proto=proto,
                cluster_ip=str(SERVICE_CIDR[cluster_ips[i]]),
                port=port,
                target_port=target,
                endpoints=eps,
                node_port=node_port,
                external_ip=external_ip,
                lb_ip=lb_ip,
            )
        )
    # kubernetes.default is always there.
    out.insert(
        0,
        Service("default", "kubernetes", "https", "tcp", str(SERVICE_CIDR[1]), 443, 6443,
                (str(NODE_IP),)),
    )
    return out


def generate_dump(
    services: int, endpoints: int, calico_pods: int = 0, seed: int = 0
) -> GeneratedDump:
    rng = random.Random(seed)
    svcs = _services(services, endpoints, rng)
    filter_chains: list[str] = []
    filter_rules: list[str] = []
    nat_chains: list[str] = []
    nat_services: list[str] = []
    nat_nodeports: list[str] = []
    filter_services: list[str] = []
    filter_external: list[str] = []
    svc_chain_rules: list[str] = []
    sep_chain_rules: list[str] = []
    ext_chain_rules: list[str] = []

    for svc in svcs:
        spn = svc.svc_port_name
        proto = svc.proto
        svc_hash = chain_hash(spn, proto)
        svc_chain = f"KUBE-SVC-{svc_hash}"
        ext_chain = f"KUBE-EXT-{svc_hash}"
        match_port = f"-p {proto} -m comment --comment \"{spn} {{what}}\" -m {proto} --dport {svc.port}"
        if not svc.endpoints:
            filter_services.append(
                f"-A KUBE-SERVICES -d {svc.cluster_ip}/32 "
                + match_port.format(what="has no endpoints")
                + " -j REJECT --reject-with icmp-port-unreachable"
            )
            for addr in (svc.external_ip, svc.lb_ip):
                if addr:
                    filter_external.append(
                        f"-A KUBE-EXTERNAL-SERVICES -d {addr}/32 "
                        + match_port.format(what="has no endpoints")
                        + " -j REJECT --reject-with icmp-port-unreachable"
                    )
            if svc.node_port:
                filter_external.append(
                    f"-A KUBE-EXTERNAL-SERVICES -p {proto} -m comment --comment \"{spn} has no endpoints\" "
                    f"-m addrtype --dst-type LOCAL -m {proto} --dport {svc.node_port} "
                    "-j REJECT --reject-with icmp-port-unreachable"
                )
            continue
        nat_chains.append(svc_chain)
        nat_services.append(
            f"-A KUBE-SERVICES -d {svc.cluster_ip}/32 " + match_port.format(what="cluster IP") + f" -j {svc_chain}"
        )
        external = bool(svc.external_ip or svc.lb_ip or svc.node_port)
        if external:
            nat_chains.append(ext_chain)
            ext_chain_rules.append(
                f"-A {ext_chain} -m comment --comment \"masquerade traffic for {spn} external destinations\" "
                "-j KUBE-MARK-MASQ"
            )
            ext_chain_rules.append(f"-A {ext_chain} -j {svc_chain}")
        if svc.external_ip:
            nat_services.append(
                f"-A KUBE-SERVICES -d {svc.external_ip}/32 " + match_port.format(what="external IP") + f" -j {ext_chain}"
            )
        if svc.lb_ip:
            nat_services.append(
                f"-A KUBE-SERVICES -d {svc.lb_ip}/32 " + match_port.format(what="loadbalancer IP") + f" -j {ext_chain}"
            )
        if svc.node_port:
            nat_nodeports.append(
                f"-A KUBE-NODEPORTS -p {proto} -m comment --comment \"{spn}\" -m {proto} "
                f"--dport {svc.node_port} -j {ext_chain}"
            )
        svc_chain_rules.append(
            f"-A {svc_chain} ! -s {CLUSTER_CIDR} -d {svc.cluster_ip}/32 "
            + match_port.format(what="cluster IP")
            + " -j KUBE-MARK-MASQ"
        )
        n = len(svc.endpoints)
        for i, ep in enumerate(svc.endpoints):
            sep_chain = f"KUBE-SEP-{chain_hash(spn, proto, ep, str(svc.target_port))}"
            nat_chains.append(sep_chain)
            stat = "" if i == n - 1 else f" -m statistic --mode random --probability {probability(n - i)}"
            svc_chain_rules.append(
                f"-A {svc_chain} -m comment --comment \"{spn} -> {ep}:{svc.target_port}\"{stat} -j {sep_chain}"
            )
            sep_chain_rules.append(f"-A {sep_chain} -s {ep}/32 -m comment --comment \"{spn}\" -j KUBE-MARK-MASQ")
            sep_chain_rules.append(
                f"-A {sep_chain} -p {proto} -m comment --comment \"{spn}\" -m {proto} "
                f"-j DNAT --to-destination {ep}:{svc.target_port}"
            )

    # -- filter ----------------------------------------------------------
    filter_builtin_rules = [
        "-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL",
        "-A INPUT -m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS",
        "-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES",
        "-A INPUT -j KUBE-FIREWALL",
        "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL",
        "-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD",
        "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
        "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES",
        "-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL",
        "-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
        "-A OUTPUT -j KUBE-FIREWALL",
    ]
    filter_chains.extend([
        "KUBE-EXTERNAL-SERVICES", "KUBE-FIREWALL", "KUBE-FORWARD", "KUBE-KUBELET-CANARY",
        "KUBE-NODEPORTS", "KUBE-PROXY-CANARY", "KUBE-PROXY-FIREWALL", "KUBE-SERVICES",
    ])
    filter_rules.extend([
        ("-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment \"block incoming localnet connections\" "
        "-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"),
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
        "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark 0x4000/0x4000 -j ACCEPT",
        ("-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" "
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
    ])
    filter_rules.extend(filter_external)
    filter_rules.extend(filter_services)

    calico_filter_chains: list[str] = []
    calico_rules: list[str] = []
    pods: list[tuple[str, str]] = []
    if calico_pods:
        pods = _calico(calico_pods, rng, calico_filter_chains, calico_rules, filter_builtin_rules)

    lines = [f"# Generated by iptables-save v1.8.9 (nf_tables) on seed {seed}"]
    lines += [
        "*mangle",
        ":PREROUTING ACCEPT [0:0]",
        ":INPUT ACCEPT [0:0]",
        ":FORWARD ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]",
        ":KUBE-IPTABLES-HINT - [0:0]",
        ":KUBE-KUBELET-CANARY - [0:0]",
        ":KUBE-PROXY-CANARY - [0:0]",
        "COMMIT",
        "*filter",
        ":INPUT ACCEPT [0:0]",
        ":FORWARD ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
    ]
    filter_user = sorted(filter_chains + calico_filter_chains)
    lines += [f":{c} - [0:0]" for c in filter_user]
    lines += _by_chain(["INPUT", "FORWARD", "OUTPUT", *filter_user],
                       filter_builtin_rules + filter_rules + calico_rules)
    lines += ["COMMIT", "*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
              ":POSTROUTING ACCEPT [0:0]"]
    nat_fixed = ["KUBE-KUBELET-CANARY", "KUBE-MARK-MASQ", "KUBE-NODEPORTS", "KUBE-POSTROUTING",
                 "KUBE-PROXY-CANARY", "KUBE-SERVICES"]
    nat_user = sorted(nat_fixed + nat_chains)
    lines += [f":{c} - [0:0]" for c in nat_user]
    nat_lines = [
        "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
        "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
        "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING",
    ]
    nat_lines += ext_chain_rules
    nat_lines += [f"-A KUBE-MARK-MASQ -j MARK --set-xmark {MASQ_MARK}"]
    nat_lines += nat_nodeports
    nat_lines += [
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0",
        "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully",
    ]
    nat_lines += sep_chain_rules
    nat_lines += nat_services
    nat_lines += [
        ("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in "
        "this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")
    ]
    nat_lines += svc_chain_rules
    lines += _by_chain(["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING", *nat_user], nat_lines)
    lines += ["COMMIT", "# Completed"]
    text = "\n".join(lines) + "\n"
    rule_count = sum(1 for line in lines if line.startswith("-A "))
    return GeneratedDump(text=text, services=svcs, pods=pods, rule_count=rule_count)


def _by_chain(order: list[str], rules: list[str]) -> list[str]:
    # iptables-save prints a table's rules chain by chain, in the order it
    # lists the chains; within a chain, in rule order.
    rank = {name: i for i, name in enumerate(order)}
    return sorted(rules, key=lambda rule: rank[rule.split(" ", 2)[1]])


def _calico(
    count: int,
    rng: random.Random,
    chains: list[str],
    rules: list[str],
    builtin_rules: list[str],
) -> list[tuple[str, str]]:
    # Felix's filter layout: FORWARD → cali-FORWARD → cali-from-wl-dispatch /
    # cali-to-wl-dispatch, which `-g` into the per-workload chains
    # cali-fw-<iface> (from the pod) / cali-tw-<iface> (to the pod); those
    # call the namespace and service-account profiles (cali-pro-*) and
    # policies (cali-pi-*), which set the accept mark 0x10000.
    accept_mark = "0x10000/0x10000"
    builtin_rules.insert(0, f"-A FORWARD -m comment --comment \"{_cali_id(rng)}\" -j cali-FORWARD")
    builtin_rules.insert(0, f"-A INPUT -m comment --comment \"{_cali_id(rng)}\" -j cali-INPUT")
    chains.extend(["cali-FORWARD", "cali-INPUT", "cali-from-wl-dispatch", "cali-to-wl-dispatch"])
    rules.extend([
        f"-A cali-FORWARD -m comment --comment \"{_cali_id(rng)}\" -j MARK --set-xmark 0x0/0xe0000",
        f"-A cali-FORWARD -i cali+ -m comment --comment \"{_cali_id(rng)}\" -j cali-from-wl-dispatch",
        f"-A cali-FORWARD -o cali+ -m comment --comment \"{_cali_id(rng)}\" -j cali-to-wl-dispatch",
        (f"-A cali-FORWARD -m comment --comment \"{_cali_id(rng)}\" -m comment --comment "
        "\"Policy explicitly accepted packet.\" -m mark --mark 0x10000/0x10000 -j ACCEPT"),
        f"-A cali-INPUT -i cali+ -m comment --comment \"{_cali_id(rng)}\" -g cali-from-wl-dispatch",
        f"-A cali-INPUT -m comment --comment \"{_cali_id(rng)}\" -j ACCEPT",
    ])
    profiles = sorted({f"kns.{ns}" for ns in NAMESPACES})
    for prof in profiles:
        for direction in ("pro", "pri"):
            chain = f"cali-{direction}-{prof}"
            chains.append(chain)
            rules.append(f"-A {chain} -m comment --comment \"{_cali_id(rng)}\" -j MARK --set-xmark {accept_mark}")
            rules.append(f"-A {chain} -m comment --comment \"{_cali_id(rng)}\" -m mark --mark {accept_mark} -j RETURN")
    pods: list[tuple[str, str]] = []
    addrs = rng.sample(range(2, CLUSTER_CIDR.num_addresses - 1), count)
    dispatch_from: list[str] = []
    dispatch_to: list[str] = []
    for i in range(count):
        iface = "cali" + hashlib.sha1(f"pod-{i}".encode()).hexdigest()[:11]
        ip = str(CLUSTER_CIDR[addrs[i]])
        pods.append((iface, ip))
        ns = NAMESPACES[i % len(NAMESPACES)]
        for kind, prof_dir, dispatch, flag in (("fw", "pro", dispatch_from, "-i"), ("tw", "pri", dispatch_to, "-o")):
            chain = f"cali-{kind}-{iface}"
            chains.append(chain)
            dispatch.append(f"-A cali-{'from' if kind == 'fw' else 'to'}-wl-dispatch {flag} {iface} "
                            f"-m comment --comment \"{_cali_id(rng)}\" -g {chain}")
            rules.extend([
                f"-A {chain} -m comment --comment \"{_cali_id(rng)}\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                f"-A {chain} -m comment --comment \"{_cali_id(rng)}\" -m conntrack --ctstate INVALID -j DROP",
                f"-A {chain} -m comment --comment \"{_cali_id(rng)}\" -j MARK --set-xmark 0x0/0x10000",
            ])
            if kind == "fw":
                rules.extend([
                    (f"-A {chain} -p udp -m comment --comment \"{_cali_id(rng)}\" -m comment "
                    "--comment \"Drop VXLAN encapped packets originating in workloads\" -m multiport --dports 4789 -j DROP"),
                    (f"-A {chain} -p ipencap -m comment --comment \"{_cali_id(rng)}\" -m comment "
                    "--comment \"Drop IPinIP encapped packets originating in workloads\" -j DROP"),
                ])
            rules.extend([
                f"-A {chain} -m comment --comment \"{_cali_id(rng)}\" -j cali-{prof_dir}-kns.{ns}",
                (f"-A {chain} -m comment --comment \"{_cali_id(rng)}\" -m comment --comment "
                "\"Return if profile accepted\" -m mark --mark 0x10000/0x10000 -j RETURN"),
                (f"-A {chain} -m comment --comment \"{_cali_id(rng)}\" -m comment --comment "
                "\"Drop if no profiles matched\" -j DROP"),
            ])
    rules.extend(dispatch_from)
    rules.append(f"-A cali-from-wl-dispatch -m comment --comment \"{_cali_id(rng)}\" -m comment "
                 "--comment \"Unknown interface\" -j DROP")
    rules.extend(dispatch_to)
    rules.append(f"-A cali-to-wl-dispatch -m comment --comment \"{_cali_id(rng)}\" -m comment "
                 "--comment \"Unknown interface\" -j DROP")
    return pods


# Sizes the benchmark uses: about 1k, 10k and 110k rules.
SIZES: dict[str, tuple[int, int, int]] = {
    "1k": (75, 3, 6),  # 1,000 rules
    "10k": (830, 3, 50),  # 9,989 rules
    "110k": (9600, 3, 300),  # 110,278 rules
}


def sample_packets(dump: GeneratedDump, count: int, seed: int = 1) -> list[dict[str, Any]]:
    """A mix of scenario packets: cluster-IP hits from a pod and from outside,
    misses (unknown addresses, wrong ports), NodePorts and external IPs."""
    rng = random.Random(seed)
    with_eps = [s for s in dump.services if s.endpoints]
    nodeports = [s for s in with_eps if s.node_port]
    externals = [s for s in with_eps if s.external_ip or s.lb_ip]
    pod_ifaces = [iface for iface, _ in dump.pods] or ["cni0"]
    out: list[dict[str, Any]] = []
    for i in range(count):
        kind = i % 6
        svc = with_eps[rng.randrange(len(with_eps))]
        packet: dict[str, Any] = {"proto": svc.proto, "sport": 40000 + rng.randrange(20000),
                                  "dst": svc.cluster_ip, "dport": svc.port, "in_iface": "eth0",
                                  "src": str(EXTERNAL_NET[200 + rng.randrange(50)])}
        if kind == 0:  # from a pod to a service
            iface = pod_ifaces[rng.randrange(len(pod_ifaces))]
            packet["in_iface"] = iface
            ip = dict(dump.pods).get(iface)
            packet["src"] = ip or str(CLUSTER_CIDR[5000 + rng.randrange(1000)])
        elif kind == 1:  # from outside to a cluster IP
            pass
        elif kind == 2:  # miss: right address, wrong port
            packet["dport"] = 1 + (svc.port % 1000)
        elif kind == 3 and nodeports:  # NodePort on the node's address
            np = nodeports[rng.randrange(len(nodeports))]
            packet.update(proto=np.proto, dst=str(NODE_IP), dport=np.node_port)
        elif kind == 4 and externals:
            ext = externals[rng.randrange(len(externals))]
            packet.update(proto=ext.proto, dst=ext.external_ip or ext.lb_ip, dport=ext.port)
        else:  # miss: an address no service has, or a locally generated packet
            if rng.random() < 0.5:
                packet["dst"] = str(EXTERNAL_NET[100 + rng.randrange(50)])
            else:
                packet.pop("in_iface")
                packet["src"] = str(NODE_IP)
        if packet["proto"] == "tcp":
            packet["tcp_flags"] = "S"
        out.append(packet)
    return out
