"""Put the tested-stacks table, from the records of the last run, into the docs.

    python scripts/compat/publish.py [build/compat]

Reads ``host.json`` (written by ``make test``) and the matrix's
``<suite>-rpy2-<line>.json`` records, and replaces the text between
``<!-- matrix:begin -->`` and ``<!-- matrix:end -->`` in README.md and
docs/compatibility.md with one table row per stack. Exits 1 when a record is
missing or a stack did not pass: the docs only ever show a green run.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STACKS = ["host", "trixie-rpy2-3.5", "trixie-rpy2-3.6", "sid-rpy2-3.5", "sid-rpy2-3.6"]
DOCS = [REPO / "README.md", REPO / "docs" / "compatibility.md"]
MARKED = re.compile(r"(<!-- matrix:begin -->\n).*?(<!-- matrix:end -->)", re.S)


def rpy2_cell(dists: dict[str, str | None]) -> str:
    if dists.get("rpy2-rinterface"):
        return f"{dists['rpy2']} (rinterface {dists['rpy2-rinterface']})"
    return str(dists.get("rpy2"))


def passed(result: str) -> str:
    found = re.search(r"(\d+) passed", result)
    return f"{found.group(1)} passed" if found else result


def table(out: Path) -> str:
    rows = ["| OS | R | lme4 | lmerTest | Matrix | rpy2 | Python | tests |",
            "|---|---|---|---|---|---|---|---|"]
    for stack in STACKS:
        path = out / f"{stack}.json"
        if not path.exists():
            raise SystemExit(f"no record {path}: run `make test` and `make matrix` first")
        rec = json.loads(path.read_text())
        if rec["status"] != "PASS":
            raise SystemExit(f"{stack} did not pass ({rec['result']}): not publishing")
        pk = rec["r_packages"]
        rows.append(f"| {rec['os']} | {rec['r']} | {pk['lme4']} | {pk['lmerTest']} | "
                    f"{pk['Matrix']} | {rpy2_cell(rec['python_dists'])} | {rec['python']} | "
                    f"{passed(rec['result'])} |")
    rows.append("")
    rows.append(f"Last run: {date.today().isoformat()}, `make test` and `make matrix` "
                "(records in `build/compat/`).")
    return "\n".join(rows) + "\n"


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else REPO / "build" / "compat"
    text = table(out)
    for doc in DOCS:
        old = doc.read_text()
        new, n = MARKED.subn(lambda m: m.group(1) + text + m.group(2), old)
        if n != 1:
            raise SystemExit(f"{doc}: no single <!-- matrix:begin/end --> block")
        doc.write_text(new)
        print(f"updated {doc.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
