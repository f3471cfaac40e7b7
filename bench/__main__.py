"""Run the benchmark suite, print a table and write bench/results/latest.json.

    python -m bench                      # every module
    python -m bench ingest timeline      # some modules
    python -m bench --quick              # smaller data sets, for a smoke run
    python -m bench --stack postgres     # on DATABASE_URL / FLIGHTREC_QUEUE_URL

Each module in bench/ exposes run(args) -> list of rows
{"name", "value", "unit", "baseline", "ratio", "note"}.
"""

import argparse
import copy
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flightrec_site.settings")

MODULES = [
    "ingest",
    "timeline",
    "timetravel",
    "export",
    "retention",
    "redaction",
    "client",
    "load",
]
RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("modules", nargs="*", help=f"any of {', '.join(MODULES)}")
    parser.add_argument("--quick", action="store_true", help="small data sets")
    parser.add_argument("--stack", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--events", type=int, default=None, help="override data set size")
    args = parser.parse_args(argv)
    if args.stack == "postgres" and not os.getenv("DATABASE_URL"):
        parser.error("--stack postgres needs DATABASE_URL (and FLIGHTREC_QUEUE_URL) set")
    chosen = args.modules or MODULES
    rows, failures = [], []
    for name in chosen:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"bench.{name}":
                print(f"(no benchmark module {name})", file=sys.stderr)
                continue
            raise
        started = time.perf_counter()
        print(f"== {name}", file=sys.stderr, flush=True)
        try:
            # A copy each: a module may set defaults on its args; the next must not see them.
            for row in module.run(copy.copy(args)):
                rows.append({"module": name, **row})
        except Exception as exc:  # report and go on: one broken module should not hide the rest
            failures.append(f"{name}: {exc!r}")
            print(f"   failed: {exc!r}", file=sys.stderr)
        print(f"   {time.perf_counter() - started:.1f}s", file=sys.stderr)
    print_table(rows)
    RESULTS.mkdir(exist_ok=True)
    out = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },  # fmt: skip
        "stack": args.stack,
        "rows": rows,
        "failures": failures,
    }
    (RESULTS / "latest.json").write_text(json.dumps(out, indent=2))
    print(f"\nwritten {RESULTS / 'latest.json'}")
    return 1 if failures else 0


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def print_table(rows: list[dict]) -> None:
    headers = ["module", "name", "value", "unit", "baseline", "ratio", "note"]
    table = [[_fmt(r.get(h)) for h in headers] for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in table)) if table else len(h)
              for i, h in enumerate(headers)]  # fmt: skip
    print()
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    sys.exit(main())
