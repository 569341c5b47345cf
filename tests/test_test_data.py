"""The tests carry their own data: a fresh clone runs every test, whatever
sits beside it, and each data file says where it came from."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"

# A path that climbs out of the project: a quoted `..` component, or
# `parents[n]` with n past the project root.
CLIMBS = re.compile(r"""/ *["']\.\.["']|["']\.\./""")


def _python_files() -> list[Path]:
    return sorted([*(ROOT / "tests").rglob("*.py"), *(ROOT / "netviz").rglob("*.py")])


def test_no_test_reads_outside_the_project() -> None:
    found = []
    for path in _python_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if CLIMBS.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
            for m in re.finditer(r"parents\[(\d+)\]", line):
                depth = len(path.relative_to(ROOT).parts) - 1
                if int(m[1]) > depth:
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)


def test_the_real_dumps_and_the_iptables_test_data_are_vendored() -> None:
    realworld = [p for p in (DATA / "realworld").iterdir() if p.suffix in (".rules", ".restore")]
    assert len(realworld) >= 16
    assert len(list((DATA / "iptables-tests").glob("*.t"))) >= 30
    for folder in ("dumps-ipt-save", "dumps-ipt-restore", "dumps-firewalld-restore"):
        assert any((DATA / "iptables-tests" / folder).iterdir()), folder


def _named_in(path: Path, sources: Path) -> bool:
    # A SOURCES.md names a file (`x.rules`, `nft/x.json`), a pattern
    # (`lib*.t`, `dumps-ipt-save/*`) or the listing a file was made from
    # (`x.nft` for x.json), in a table or in prose.
    text = sources.read_text(encoding="utf-8")
    names = re.findall(r"`([^`\s]+)`", text)
    rel = path.relative_to(sources.parent)
    tails = [Path(*rel.parts[n:]) for n in range(len(rel.parts))]
    return any(tail.match(name) for tail in tails for name in names) or any(
        name.split("/")[-1].startswith(path.stem + ".") for name in names
    )


def test_every_data_file_names_its_source() -> None:
    missing = []
    for path in sorted(p for p in DATA.rglob("*") if p.is_file() and p.name != "SOURCES.md"):
        # the nearest SOURCES.md up the tree speaks for the file
        folder = path.parent
        while not (folder / "SOURCES.md").exists() and folder != DATA:
            folder = folder.parent
        if not _named_in(path, folder / "SOURCES.md"):
            missing.append(str(path.relative_to(DATA)))
    assert not missing, f"not named in a tests/data SOURCES.md: {missing}"
