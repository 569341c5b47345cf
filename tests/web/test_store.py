"""Storing dumps: store_ruleset / store_host / load_ruleset, and the
import_dump and load_demo commands, on real dumps."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from webdumps import DEMO, demo_text, shared_dump

from netviz import models, store
from netviz.engine.ruleset import Family

pytestmark = pytest.mark.django_db

BAD_DUMP = """*filter
:INPUT ACCEPT [0:0]
-A INPUT -p tcp --dport 22 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 80 -j NOSUCHCHAIN
COMMIT
"""


def counts() -> tuple[int, ...]:
    return (
        models.Ruleset.objects.count(),
        models.Table.objects.count(),
        models.Chain.objects.count(),
        models.Rule.objects.count(),
        models.IPSet.objects.count(),
        models.HostProfile.objects.count(),
    )


def test_it_stores_tables_chains_rules_and_line_numbers() -> None:
    source = demo_text("docker-host")
    rs = store.store_ruleset(name="docker", source=source)
    assert rs.rule_count == 18
    assert rs.chain_count == 12
    assert [t.name for t in rs.tables.all()] == ["filter", "nat"]
    dnat = models.Rule.objects.get(chain__table__ruleset=rs, target="DNAT")
    assert dnat.chain.name == "DOCKER" and dnat.chain.table.name == "nat"
    assert dnat.index == 2
    # Line numbers point into the stored text.
    assert source.splitlines()[dnat.line - 1].startswith("-A DOCKER ! -i docker0 -p tcp")
    forward = models.Chain.objects.get(table__ruleset=rs, table__name="filter", name="FORWARD")
    assert forward.builtin and forward.policy == "DROP"
    assert models.Rule.objects.filter(chain=forward).count() == 6


def test_it_stores_counters_and_comments() -> None:
    rs = store.store_ruleset(name="k3s", source=shared_dump("k3s-kube-proxy-docker-counters.rules"))
    with_counters = models.Rule.objects.filter(chain__table__ruleset=rs, packets__isnull=False)
    assert with_counters.count() == rs.rule_count
    assert models.Rule.objects.filter(chain__table__ruleset=rs, comment__contains="default/kubernetes:https").exists()


def test_it_stores_ipsets(calico_ruleset: models.Ruleset) -> None:
    sets = {s.name: s for s in calico_ruleset.ipsets.all()}
    assert set(sets) == {"cali40masq-ipam-pools", "cali40all-ipam-pools"}
    assert sets["cali40masq-ipam-pools"].type == "hash:net"
    assert sets["cali40masq-ipam-pools"].members == ["10.244.0.0/16"]


def test_it_stores_nothing_when_the_dump_is_bad() -> None:
    before = counts()
    with pytest.raises(store.ParseError) as info:
        store.store_ruleset(name="bad", source=BAD_DUMP)
    assert info.value.line == 4
    assert counts() == before


def test_it_tells_ipset_errors_apart() -> None:
    with pytest.raises(store.ParseError) as info:
        store.store_ruleset(
            name="bad sets",
            source=demo_text("calico-node"),
            ipsets_source="create s hash:net family inet\nadd s not-an-address\n",
        )
    assert getattr(info.value, "origin", "") == "ipsets"
    assert info.value.line == 2
    assert models.Ruleset.objects.count() == 0


def test_it_reports_progress_between_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "BATCH_SIZE", 40)
    seen: list[tuple[int, int]] = []
    store.store_ruleset(name="kp", source=demo_text("kube-proxy-node"), progress=lambda d, t: seen.append((d, t)))
    assert seen == [(0, 115), (40, 115), (80, 115), (115, 115)]


def test_it_keeps_uploads_of_anonymous_users_public(django_user_model: type) -> None:
    anon = store.store_ruleset(name="a", source=demo_text("docker-host"))
    assert anon.owner is None and anon.is_public
    user = django_user_model.objects.create_user("alice")
    mine = store.store_ruleset(name="b", source=demo_text("docker-host"), owner=user)
    assert mine.owner == user and not mine.is_public


def test_it_stores_a_host_profile(kube_ruleset: models.Ruleset) -> None:
    host = store.store_host(
        name="node", interfaces=[{"name": "eth0", "addrs": ["10.0.0.5/24"]}],
        routes=["default via 10.0.0.1 dev eth0"], ruleset=kube_ruleset,
    )
    assert host.is_public and host.ruleset == kube_ruleset
    assert host.as_scenario_host() == {
        "interfaces": [{"name": "eth0", "addrs": ["10.0.0.5/24"]}],
        "routes": ["default via 10.0.0.1 dev eth0"],
    }


def test_it_loads_the_engine_ruleset_once_per_process(kube_ruleset: models.Ruleset, monkeypatch: pytest.MonkeyPatch) -> None:
    store.clear_cache()
    calls = []
    real = store.parse_ruleset

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "parse_ruleset", counting)
    fresh = models.Ruleset.objects.get(pk=kube_ruleset.pk)
    first = store.load_ruleset(fresh)
    second = store.load_ruleset(models.Ruleset.objects.get(pk=kube_ruleset.pk))
    assert first is second
    assert len(calls) == 1
    assert first.family is Family.IPV4
    assert len(first.rules()) == kube_ruleset.rule_count
    # A changed source is a different ruleset: parsed again.
    fresh.source = fresh.source.replace("-A KUBE-MARK-DROP -j MARK --set-xmark 0x8000/0x8000\n", "")
    assert len(store.load_ruleset(fresh).rules()) == kube_ruleset.rule_count - 1
    assert len(calls) == 2


def big_dump(services: int) -> str:
    # kube-proxy shaped: per service a KUBE-SERVICES rule, a KUBE-SVC and a
    # KUBE-SEP chain with two rules — 4 rules and 2 chains per service.
    head = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
            ":POSTROUTING ACCEPT [0:0]", ":KUBE-SERVICES - [0:0]", ":KUBE-MARK-MASQ - [0:0]"]
    rules = ['-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
             "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000"]
    for i in range(services):
        svc, sep = f"KUBE-SVC-{i:016X}", f"KUBE-SEP-{i:016X}"
        head += [f":{svc} - [0:0]", f":{sep} - [0:0]"]
        ip, pod, c = f"10.{96 + i // 65536}.{i // 256 % 256}.{i % 256}", f"10.244.{i // 256 % 256}.{i % 256}", f"ns{i % 50}/svc{i}:http"
        rules += [
            f'-A KUBE-SERVICES -d {ip}/32 -p tcp -m comment --comment "{c} cluster IP" -m tcp --dport 80 -j {svc}',
            f'-A {svc} -m comment --comment "{c}" -j {sep}',
            f'-A {sep} -s {pod}/32 -m comment --comment "{c}" -j KUBE-MARK-MASQ',
            f'-A {sep} -p tcp -m comment --comment "{c}" -m tcp -j DNAT --to-destination {pod}:8080',
        ]
    return "\n".join([*head, *rules, "COMMIT", ""])


def test_it_imports_a_110k_rule_dump_and_the_database_can_plan_queries_on_it() -> None:
    # How fast this goes is `manage.py bench`'s business; here: every row is
    # stored, and the database knows how many (PostgreSQL plans a join of
    # rules and chains by its statistics; without them, right after a bulk
    # import, it chose nested loops over 110k × 55k rows and never finished).
    source = big_dump(27_500)
    rs = store.save_parsed(store.parse_ruleset(source), name="big", source=source)
    assert rs.rule_count == 110_002 and rs.chain_count == 55_006
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT relname, reltuples FROM pg_class WHERE relname IN ('netviz_rule', 'netviz_chain')"
            )
            known = dict(cursor.fetchall())
        assert known["netviz_rule"] >= 110_002 * 0.9, known
        assert known["netviz_chain"] >= 55_006 * 0.9, known
    assert models.Rule.objects.filter(chain__table__ruleset=rs).count() == 110_002
    assert models.Chain.objects.filter(table__ruleset=rs, rules__isnull=True).count() == 3


# --- import_dump ----------------------------------------------------------


def test_it_imports_a_dump_from_the_command_line(tmp_path: Path) -> None:
    out = io.StringIO()
    call_command(
        "import_dump", str(DEMO / "calico-node" / "ruleset.rules"),
        "--ipsets", str(DEMO / "calico-node" / "ipsets.ipset"),
        "--name", "cali", "--host", str(DEMO / "calico-node" / "scenarios" / "pod-to-internet.json"),
        stdout=out,
    )
    rs = models.Ruleset.objects.get(name="cali")
    assert "4 tables, 74 chains, 226 rules, 2 ipsets" in out.getvalue()
    assert rs.rule_count == 226 and rs.ipsets.count() == 2
    host = rs.hosts.get()
    assert host.interfaces[0] == {"name": "eth0", "addrs": ["10.240.0.4/16"]}
    assert "default via 10.240.0.1 dev eth0" in host.routes


def test_it_refuses_a_bad_dump_on_the_command_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.rules"
    bad.write_text(BAD_DUMP)
    err = io.StringIO()
    before = counts()
    with pytest.raises(SystemExit) as info:
        call_command("import_dump", str(bad), stderr=err)
    assert info.value.code == 1
    lines = err.getvalue().splitlines()
    assert lines[0].startswith(f"{bad}:4:")
    assert "NOSUCHCHAIN" in lines[0]
    assert lines[1].strip() == "-A INPUT -p tcp -m tcp --dport 80 -j NOSUCHCHAIN"
    assert lines[2].strip() == "^"
    assert lines[1].index("NOSUCHCHAIN") == lines[2].index("^")
    assert counts() == before


def test_it_stores_nothing_when_the_host_file_is_bad(tmp_path: Path) -> None:
    host = tmp_path / "host.json"
    host.write_text(json.dumps({"interfaces": [{"name": "eth0", "addrs": ["not-an-ip"]}], "routes": []}))
    before = counts()
    with pytest.raises(CommandError):
        call_command("import_dump", str(DEMO / "docker-host" / "ruleset.rules"), "--host", str(host))
    assert counts() == before


# --- load_demo ------------------------------------------------------------


def test_it_loads_the_demo_nodes_with_real_traces() -> None:
    call_command("load_demo", stdout=io.StringIO())
    demos = models.Ruleset.objects.filter(is_demo=True)
    assert demos.count() == 6
    for rs in demos:
        assert rs.hosts.count() == 1
        assert 2 <= rs.traces.count() <= 5
        for trace in rs.traces.all():
            assert trace.verdict in ("ACCEPT", "DROP")
            assert trace.result["hops"], trace.title
            assert trace.result["verdict"] == trace.verdict
    docker = demos.get(name="Docker host with a published port")
    published = docker.traces.get(title__contains="published port 10080")
    assert published.verdict == "ACCEPT"
    assert published.result["packet_out"]["dst"] == "172.17.0.2"
    dropped = docker.traces.get(title__contains="port 22")
    assert dropped.verdict == "DROP"


def test_it_loads_the_demo_idempotently() -> None:
    call_command("load_demo", stdout=io.StringIO())
    first = counts(), models.SavedTrace.objects.count(), sorted(models.Ruleset.objects.values_list("pk", flat=True))
    call_command("load_demo", stdout=io.StringIO())
    second = counts(), models.SavedTrace.objects.count(), sorted(models.Ruleset.objects.values_list("pk", flat=True))
    assert first == second


def test_it_keeps_demo_hosts_consistent_with_the_scenarios() -> None:
    for node in sorted(p for p in DEMO.iterdir() if (p / "meta.json").exists()):
        host = json.loads((node / "host.json").read_text())
        for path in (node / "scenarios").glob("*.json"):
            assert json.loads(path.read_text())["host"] == host, path
