"""Uploads built to hurt the server: a chain loop that would walk forever,
dumps past the server's limits, counters past 64 bits, pasted text past the
size limit.  Each is refused with a readable reason, and nothing is stored."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.core.management import CommandError, call_command
from django.test import Client, override_settings
from django.urls import reverse

from netviz import models, store
from netviz.engine import limits

pytestmark = pytest.mark.django_db

# The dump of the report (issue 12): a goto loop INPUT → A → B → A.
GOTO_LOOP = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:A - [0:0]
:B - [0:0]
-A INPUT -g A
-A A -g B
-A B -g A
COMMIT
"""
# Every chain calls the next three times: within the jump stack, so it loads
# (as in the kernel), but one packet makes 3^14 calls.
FAN_OUT = "\n".join(
    ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    + [f":C{i} - [0:0]" for i in range(1, 16)]
    + ["-A INPUT -j C1"]
    + [f"-A C{i} -j C{i + 1}" for i in range(1, 15) for _ in range(3)]
    + ["COMMIT", ""]
)
HOST = {"interfaces": [{"name": "eth0", "addrs": ["10.0.0.1/24"]}], "routes": []}
LOCAL_PACKET = {"proto": "tcp", "src": "10.0.0.2", "sport": "40000", "dst": "10.0.0.1", "dport": "22",
                "tcp_flags": "S", "in_iface": "eth0", "ctstate": "NEW"}


def trace_url(rs: models.Ruleset) -> str:
    host = store.store_host(name="h", interfaces=HOST["interfaces"], routes=HOST["routes"], ruleset=rs)
    return reverse("netviz:trace", args=[rs.pk]) + "?" + urlencode({**LOCAL_PACKET, "host": host.pk})


def test_the_goto_loop_upload_is_refused_with_the_chains_and_the_line(client: Client) -> None:
    r = client.post(reverse("netviz:upload"), {"dump_text": GOTO_LOOP})
    assert r.status_code == 400
    body = r.content.decode()
    assert "A → B → A" in body and "Too many links" in body and "-A B -g A" in body
    assert not models.Ruleset.objects.exists()


def test_a_loop_stored_before_the_check_gives_an_error_not_a_hung_worker(client: Client) -> None:
    # A row written before the loader refused loops: its trace page must end.
    rs = models.Ruleset.objects.create(name="old loop", source=GOTO_LOOP)
    r = client.get(trace_url(rs))
    assert r.status_code == 200
    assert "Too many links" in r.content.decode()


def test_a_walk_past_the_step_budget_is_stopped_on_the_page(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_WALK_STEPS", 20_000)
    rs = store.store_ruleset(name="fan-out", source=FAN_OUT)
    r = client.get(trace_url(rs))
    assert r.status_code == 200
    body = r.content.decode()
    assert "The trace was stopped" in body and "20,000 steps" in body


def test_the_trace_command_refuses_the_goto_loop(tmp_path: Path) -> None:
    path = tmp_path / "loop.rules"
    path.write_text(GOTO_LOOP)
    with pytest.raises(CommandError) as info:
        call_command("trace", "--ruleset", str(path), "--packet", "tcp 10.0.0.2:40000 > 10.0.0.1:22 in eth0",
                     stderr=open("/dev/null", "w"))  # noqa: SIM115
    assert "line 9" in str(info.value) and "A → B → A" in str(info.value)


U64_MAX = 2**64 - 1
COUNTERS = (
    f"*filter\n:INPUT ACCEPT [{U64_MAX}:{2**63}]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    f"[{2**63}:{U64_MAX}] -A INPUT -j ACCEPT\nCOMMIT\n"
)


def test_counters_up_to_64_bits_are_stored_exactly(client: Client) -> None:
    # 2^63 … 2^64-1 overflowed SQLite's and PostgreSQL's signed bigint (a 500).
    r = client.post(reverse("netviz:upload"), {"dump_text": COUNTERS})
    assert r.status_code == 302
    chain = models.Chain.objects.get(name="INPUT")
    assert (chain.packets, chain.bytes) == (U64_MAX, 2**63)
    rule = models.Rule.objects.get(chain=chain)
    assert (rule.packets, rule.bytes) == (2**63, U64_MAX)
    assert list(models.Rule.objects.values_list("packets", flat=True)) == [2**63]
    assert client.get(r["Location"]).status_code == 200


def test_a_counter_above_64_bits_is_refused_with_the_line(client: Client) -> None:
    r = client.post(reverse("netviz:upload"), {"dump_text": COUNTERS.replace(str(U64_MAX), str(U64_MAX + 1), 1)})
    assert r.status_code == 400
    body = r.content.decode()
    assert "2^64-1" in body and str(U64_MAX + 1) in body
    assert not models.Ruleset.objects.exists()


def _csrf_client() -> tuple[Client, str]:
    # A real browser's POST: the CSRF middleware checks it, reading the body first.
    client = Client(enforce_csrf_checks=True)
    client.get(reverse("netviz:upload"))
    return client, client.cookies["csrftoken"].value


@override_settings(NETVIZ_MAX_UPLOAD=1000, DATA_UPLOAD_MAX_MEMORY_SIZE=2000)
@pytest.mark.parametrize("htmx", [False, True])
def test_pasted_text_too_big_to_read_gets_the_readable_413_through_csrf(htmx: bool) -> None:
    client, token = _csrf_client()
    headers = {"HX-Request": "true"} if htmx else {}
    r = client.post(reverse("netviz:upload"), {"dump_text": "x" * 5000, "csrfmiddlewaretoken": token},
                    headers=headers)
    assert r.status_code == (200 if htmx else 413)
    body = r.content.decode()
    assert "larger than the limit of 1000 bytes" in body and 'id="upload-form"' in body
    assert not models.Ruleset.objects.exists()


@override_settings(NETVIZ_MAX_UPLOAD=1000, DATA_UPLOAD_MAX_MEMORY_SIZE=2000)
def test_a_body_too_big_elsewhere_is_413_and_a_forged_post_still_403() -> None:
    client, token = _csrf_client()
    r = client.post("/lessons/new/", {"title": "x" * 5000, "csrfmiddlewaretoken": token})
    assert r.status_code == 413 and b"1000 bytes" in r.content
    # Small enough to read: CSRF protection still answers as before.
    assert client.post("/lessons/new/", {"title": "x"}).status_code == 403


def _chains(n: int) -> str:
    return "*filter\n:INPUT ACCEPT [0:0]\n" + "".join(f":C{i} - [0:0]\n" for i in range(n)) + "COMMIT\n"


@override_settings(NETVIZ_MAX_CHAINS=50)
def test_a_dump_over_the_chain_limit_is_refused_with_the_limit_named(client: Client) -> None:
    # 1e6 chains (16 MB) held 1.66 GB in a worker (issue 12): the server says
    # how many it takes, and stops reading at the first one over.
    r = client.post(reverse("netviz:upload"), {"dump_text": _chains(100)})
    assert r.status_code == 400
    body = r.content.decode()
    assert "more than 50 chains" in body and "NETVIZ_MAX_CHAINS" in body
    assert not models.Ruleset.objects.exists()
    assert client.post(reverse("netviz:upload"), {"dump_text": _chains(40)}).status_code == 302


@override_settings(NETVIZ_MAX_RULES=3)
def test_a_dump_over_the_rule_limit_is_refused(client: Client) -> None:
    r = client.post(reverse("netviz:upload"), {"dump_text": FAN_OUT})
    assert r.status_code == 400 and "more than 3 rules" in r.content.decode()


def test_the_upload_page_states_the_limits(client: Client) -> None:
    body = client.get(reverse("netviz:upload")).content.decode()
    assert "300,000 rules" in body and "100,000 chains" in body


def test_the_parse_cache_is_bounded_by_size_not_count(settings: object) -> None:
    small = [store.store_ruleset(name=f"s{i}", source=_chains(i + 1)) for i in range(12)]
    store.clear_cache()
    for rs in small:
        store.load_ruleset(rs)
    # Twelve small rulesets fit (a count bound of 8 dropped the first four) …
    assert all(store.is_cached(rs) for rs in small)
    big = store.store_ruleset(name="big", source=_chains(3000))
    budget = store.cache_weight(big) + store.cache_weight(small[-1])
    settings.NETVIZ_PARSE_CACHE_BYTES = budget  # type: ignore[attr-defined]
    store.clear_cache()
    for rs in [*small, big]:
        store.load_ruleset(rs)
    # … and a big one pushes out the least recently used until the sum fits.
    assert store.is_cached(big) and store.is_cached(small[-1]) and not store.is_cached(small[0])
    assert sum(store.cache_weight(rs) for rs in [*small, big] if store.is_cached(rs)) <= budget
    # One ruleset larger than the whole budget is used, not kept.
    settings.NETVIZ_PARSE_CACHE_BYTES = store.cache_weight(big) - 1  # type: ignore[attr-defined]
    store.clear_cache()
    assert store.load_ruleset(big).table("filter") is not None
    assert not store.is_cached(big)
