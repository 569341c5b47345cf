"""A node built in namespaces, snapshotted with netviz-collect, imported in
one step, and checked against the kernel (issue 10, third "done when").

The node: a Linux bridge `br0` with two veth ports (their peers in two
"container" namespaces), an uplink `eth0` (peer in an "outside" namespace),
iptables rules in the style of kube-proxy (a NodePort DNAT to a pod on the
bridge, MASQUERADE of pod traffic leaving the node) and a native nftables
table.  The collector runs inside the node namespace (`ip netns exec`), and
what it wrote becomes scenarios whose traces must equal the kernel's.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from netviz.kernel.check import check_scenario, render_text
from netviz.kernel.netns import in_ns, namespace
from netviz.scenario import Scenario
from netviz.testing.compare import format_hop

COLLECTOR = Path(__file__).resolve().parents[2] / "scripts" / "netviz-collect"

NODE_RULES = """\
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A OUTPUT -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A POSTROUTING -j KUBE-POSTROUTING
-A KUBE-NODEPORTS -p tcp -m tcp --dport 30080 -j MARK --set-xmark 0x4000/0x4000
-A KUBE-NODEPORTS -p tcp -m tcp --dport 30080 -j DNAT --to-destination 10.77.0.2:8080
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MASQUERADE
-A POSTROUTING -s 10.77.0.0/24 ! -o br0 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -i br0 -o br0 -j ACCEPT
-A FORWARD -d 10.77.0.0/24 -m conntrack --ctstate DNAT -j ACCEPT
-A FORWARD -s 10.77.0.0/24 -j ACCEPT
COMMIT
"""

NODE_NFT = """\
table inet node-extra {
    chain extra_forward {
        type filter hook forward priority 10; policy accept;
        tcp dport 9999 drop
    }
}
"""


def _sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=20)


@pytest.fixture(params=["iptables", "iptables+nft"])
def node(kernel: None, request: pytest.FixtureRequest) -> Iterator[str]:
    with namespace("nvz-snap") as ns, namespace("nvz-snapc1") as c1, namespace("nvz-snapc2") as c2, \
            namespace("nvz-snapout") as out:
        _sh("ip", "-n", ns, "link", "add", "br0", "type", "bridge")
        _sh("ip", "-n", ns, "addr", "add", "10.77.0.1/24", "dev", "br0")
        for port, peer_ns, addr in (("veth1", c1, "10.77.0.2/24"), ("veth2", c2, "10.77.0.3/24")):
            _sh("ip", "-n", ns, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", peer_ns)
            _sh("ip", "-n", ns, "link", "set", port, "master", "br0", "up")
            _sh("ip", "-n", peer_ns, "addr", "add", addr, "dev", "eth0")
            _sh("ip", "-n", peer_ns, "link", "set", "eth0", "up")
        _sh("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "up0", "netns", out)
        _sh("ip", "-n", ns, "addr", "add", "10.78.0.1/24", "dev", "eth0")
        _sh("ip", "-n", out, "addr", "add", "10.78.0.9/24", "dev", "up0")
        for name in ("eth0", "br0"):
            _sh("ip", "-n", ns, "link", "set", name, "up")
        _sh("ip", "-n", out, "link", "set", "up0", "up")
        in_ns(ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        # kube-proxy's setting, so localhost can reach NodePorts.
        in_ns(ns, ["sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1"])
        in_ns(ns, ["iptables-nft-restore"], stdin=NODE_RULES)
        if request.param == "iptables+nft":
            in_ns(ns, ["nft", "-f", "-"], stdin=NODE_NFT)
        yield ns


def _collect(ns: str, tmp_path: Path) -> str:
    path = tmp_path / "node.snapshot"
    subprocess.run(
        ["ip", "netns", "exec", ns, "sh", str(COLLECTOR), "-o", str(path)],
        check=True, capture_output=True, text=True, timeout=60,
    )
    return path.read_text()


@pytest.mark.django_db
def test_it_takes_a_snapshot_in_a_namespace_and_imports_it_in_one_step(
    node: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from netviz.snapshots import import_snapshot

    text = _collect(node, tmp_path)
    assert "=== iptables backend=nft" in text and "KUBE-NODEPORTS" in text
    if "nft" in request.node.callspec.params["node"]:
        assert '"node-extra"' in text  # the nft listing
    assert "net.ipv4.ip_forward = 1" in text
    result = import_snapshot(text, name="ns-node")
    ruleset = result.ruleset
    # The nft listing's own table counts its rule.
    nft_rules = 1 if "nft" in request.node.callspec.params["node"] else 0
    assert ruleset.family == "ipv4" and ruleset.rule_count == 11 + nft_rules
    host = result.hosts[0].as_scenario_host()
    ifaces = {i["name"]: i for i in host["interfaces"]}
    assert "10.77.0.1/24" in ifaces["br0"]["addrs"] and "10.78.0.1/24" in ifaces["eth0"]["addrs"]
    assert ifaces["br0"].get("type") == "bridge"
    assert ifaces["veth1"].get("master") == "br0" and ifaces["veth2"].get("master") == "br0"


PACKETS = {
    # To the NodePort on the node's own address: DNAT to the pod behind the
    # bridge, forwarded out of br0.
    "nodeport": ({"proto": "tcp", "src": "10.78.0.9", "sport": 40000, "dst": "10.78.0.1",
                  "dport": 30080, "in_iface": "eth0"}, "ACCEPT", {"dst": "10.77.0.2", "dport": 8080}),
    # From the node itself to its own NodePort (OUTPUT path), then out of br0.
    "node-local": ({"proto": "tcp", "src": "10.78.0.1", "sport": 40005, "dst": "10.78.0.1",
                    "dport": 30080}, "ACCEPT", {"dst": "10.77.0.2", "dport": 8080}),
    # localhost to a NodePort: allowed by route_localnet=1, masqueraded
    # (kube-proxy marks it 0x4000) because 127.0.0.1 cannot leave the node.
    "localhost": ({"proto": "tcp", "src": "127.0.0.1", "sport": 40006, "dst": "127.0.0.1",
                   "dport": 30080}, "ACCEPT", {"src": "10.77.0.1", "dst": "10.77.0.2", "dport": 8080}),
    # A pod talking to the outside, arriving on its bridge port: routed from
    # br0 to eth0 and masqueraded.
    "masquerade": ({"proto": "tcp", "src": "10.77.0.2", "sport": 40001, "dst": "10.78.0.9",
                    "dport": 80, "in_iface": "veth1"}, "ACCEPT", {"src": "10.78.0.1"}),
    # Dropped by the native nftables table on the way out.
    "nft-drop": ({"proto": "tcp", "src": "10.77.0.2", "sport": 40002, "dst": "10.78.0.9",
                  "dport": 9999, "in_iface": "veth1"}, "DROP", {}),
    # Between the two ports of the bridge: bridged, and with
    # bridge-nf-call-iptables seen by FORWARD as br0 → br0.
    "bridged": ({"proto": "tcp", "src": "10.77.0.2", "sport": 40003, "dst": "10.77.0.3",
                 "dport": 80, "in_iface": "veth1"}, "ACCEPT", {"dst": "10.77.0.3"}),
}

# A hop each trace must hold, besides agreeing with the kernel: the rule that
# shows the packet took the path it should.
EXPECTED_HOP = {
    "nodeport": {"table": "nat", "chain": "KUBE-NODEPORTS", "rule": 2, "verdict": "ACCEPT"},
    "node-local": {"table": "nat", "chain": "KUBE-NODEPORTS", "rule": 2, "verdict": "ACCEPT"},
    "localhost": {"table": "nat", "chain": "KUBE-POSTROUTING", "rule": 2, "verdict": "ACCEPT"},
    "masquerade": {"table": "nat", "chain": "POSTROUTING", "rule": 2, "verdict": "ACCEPT"},
    "nft-drop": {"family": "inet", "table": "node-extra", "chain": "extra_forward", "rule": 1,
                 "verdict": "DROP"},
    # The bridge is the input and output device at FORWARD (br_nf_forward_ip).
    "bridged": {"table": "filter", "chain": "FORWARD", "rule": 1, "verdict": "ACCEPT"},
}

# What the engine or the replay cannot do yet; strict, so each flips to a
# failure (and is removed) the day it can.
def _applies(request: pytest.FixtureRequest, which: str) -> None:
    if which == "nft-drop" and request.node.callspec.params.get("node") == "iptables":
        pytest.skip("no nft table on this node")


@pytest.mark.parametrize("which", sorted(PACKETS))
def test_snapshot_traces_agree_with_the_kernel(
    node: str, tmp_path: Path, which: str, request: pytest.FixtureRequest
) -> None:
    from netviz.snapshots import snapshot_scenario

    _applies(request, which)
    packet, verdict, out = PACKETS[which]
    scenario: Scenario = snapshot_scenario(_collect(node, tmp_path), packet)
    check = check_scenario(scenario)
    assert check.ran, check.unavailable
    assert check.agree, render_text(check)
    assert check.engine is not None
    assert check.engine.verdict == verdict
    assert EXPECTED_HOP[which] in check.engine.hops()
    header = check.engine.packet_out.header()
    assert {k: header[k] for k in out} == out


@pytest.mark.django_db
@pytest.mark.parametrize("which", sorted(PACKETS))
def test_the_stored_snapshot_checks_in_the_kernel_as_the_button_does(
    node: str, tmp_path: Path, which: str, request: pytest.FixtureRequest
) -> None:
    # Upload in one step, then the "Check in the kernel" job on what was
    # stored: the ruleset and the host profile the trace page picks.
    from netviz.kernel_jobs import kernel_check
    from netviz.models import Job
    from netviz.snapshots import import_snapshot
    from netviz.web.trace_forms import host_dict

    _applies(request, which)
    ruleset = import_snapshot(_collect(node, tmp_path), name="ns-node").ruleset
    packet, verdict, _ = PACKETS[which]
    job = Job(kind="kernel_check", params={
        "ruleset": ruleset.pk, "host": host_dict(ruleset.hosts.first(), ruleset.family), "packet": packet,
    })
    summary = kernel_check(job, lambda *args, **kwargs: None)
    assert summary["ran"], summary["unavailable"]
    assert summary["agree"], summary["rows"]
    assert summary["engine"]["verdict"] == verdict
    assert format_hop(EXPECTED_HOP[which]) in [row["engine_text"] for row in summary["rows"]]


STUB_SERVER = """\
import http.server, json, pathlib, sys
out = pathlib.Path(sys.argv[1])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        (out / "path").write_text(self.path)
        (out / "authorization").write_text(self.headers.get("Authorization", ""))
        (out / "body").write_bytes(body)
        answer = json.dumps({"url": "http://netviz.test/rulesets/1/"}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.handle_request()
"""


@pytest.mark.django_db
def test_the_collector_uploads_with_the_token_from_the_environment(
    kernel: None, tmp_path: Path, django_user_model: type
) -> None:
    import shutil
    import sys

    from django.test import Client

    from netviz import apitokens

    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    user = django_user_model.objects.create_user("collector", password="pw-collector-1")  # type: ignore[attr-defined]
    _, token = apitokens.create_token(user, "node")
    with namespace("nvz-snapup") as ns:
        # A stand-in server inside the namespace records what the collector sends.
        server = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", STUB_SERVER, str(tmp_path)],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            port = server.stdout.readline().strip()
            url = f"http://127.0.0.1:{port}/api/snapshots/"
            done = subprocess.run(
                ["ip", "netns", "exec", ns, "sh", str(COLLECTOR), "-o", str(tmp_path / "n.snapshot"),
                 "--upload", url, "--name", "node 7"],
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "NETVIZ_TOKEN": token},
                capture_output=True, text=True, timeout=60,
            )
            server.wait(timeout=10)
        finally:
            if server.poll() is None:
                server.kill()
    assert done.returncode == 0, done.stderr
    assert "http://netviz.test/rulesets/1/" in done.stdout
    assert (tmp_path / "authorization").read_text() == f"Bearer {token}"
    assert (tmp_path / "path").read_text() == "/api/snapshots/?name=node_7"
    body = (tmp_path / "body").read_bytes()
    assert body == (tmp_path / "n.snapshot").read_bytes()
    assert token.encode() not in body  # never inside the snapshot
    # What it sent is what the API takes.
    response = Client().post("/api/snapshots/?name=node_7", data=body, content_type="text/plain",
                             HTTP_AUTHORIZATION=(tmp_path / "authorization").read_text())
    assert response.status_code == 201, response.content


OLD_TOOL = """#!/bin/sh
# An {name} without JSON output, as iproute2 before 4.13 or nft built
# without libjansson.
for arg in "$@"; do
    [ "$arg" = -j ] && {{ echo "{name}: JSON support not compiled in" >&2; exit 1; }}
done
exec {real} "$@"
"""


@pytest.mark.django_db
def test_tools_without_json_output_give_text_sections_that_import(
    node: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    import shutil

    from netviz.snapshots import import_snapshot, snapshot_scenario

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("ip", "nft"):
        real = shutil.which(name)
        assert real is not None
        (bin_dir / name).write_text(OLD_TOOL.format(name=name, real=real))
        (bin_dir / name).chmod(0o755)
    path = tmp_path / "old.snapshot"
    subprocess.run(
        ["ip", "netns", "exec", node, "sh", str(COLLECTOR), "-o", str(path)],
        env={"PATH": f"{bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin"}, check=True, capture_output=True, timeout=60,
    )
    text = path.read_text()
    assert '=== ip-addr format=text command="ip addr show"' in text
    assert '=== nft format=text command="nft list ruleset"' in text
    result = import_snapshot(text)
    ifaces = {i["name"]: i for i in result.hosts[0].interfaces}
    assert "10.78.0.1/24" in ifaces["eth0"]["addrs"] and ifaces["veth1"].get("master") == "br0"
    if "nft" in request.node.callspec.params["node"]:
        assert "table inet node-extra" in result.ruleset.nftables_source
        packet, verdict, _ = PACKETS["nft-drop"]
        check = check_scenario(snapshot_scenario(text, packet))
        assert check.agree, render_text(check)
        assert check.engine is not None and check.engine.verdict == verdict
