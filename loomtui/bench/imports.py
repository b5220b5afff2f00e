"""Importer speed: ``loomtui bench import``.

For each format, a synthetic file of each size (see :mod:`loomtui.bench.formats`) is
imported from disk as ``loomtui import`` does; the baseline in the same process is parsing
the same bytes with orjson alone, so the ratio says what the importer adds to reading JSON.
The goal: a 100k-node file of any format imports in under 5 s.
"""

from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path

import orjson

from loomtui.bench import formats
from loomtui.bench.synthetic import make_tree
from loomtui.core import session
from loomtui.core.errors import LoomError
from loomtui.core.importers import import_file

GOAL_S = 5.0


def _time_import(path: Path) -> tuple[float, int, float | None]:
    """(import seconds, nodes, seconds to load the same tree as a loomtui session)."""
    gc.collect()
    t0 = time.perf_counter()
    results = import_file(path)
    dt = time.perf_counter() - t0
    n = sum(len(r.tree) for r in results)
    saved = session.dumps(results[0].tree)
    del results
    gc.collect()
    t0 = time.perf_counter()
    try:
        session.loads(saved)
    except LoomError:  # a version-1 session cannot hold token texts without ids
        return dt, n, None
    return dt, n, time.perf_counter() - t0


def main(sizes: list[int]) -> int:
    print("synthetic files (bushy trees, up to 4 children a node); baselines in this process: "
          "orjson.loads of the same bytes (parse), loading the imported tree as a session")
    slow = 0
    with tempfile.TemporaryDirectory() as tmp:
        ref_path = Path(tmp) / "reference.json"
        session.save(make_tree(10_000), ref_path)
        gc.collect()
        t0 = time.perf_counter()
        session.load(ref_path)
        ref = time.perf_counter() - t0
        print(f"reference: `bench sessions`' 10k-node session loads in {ref:.2f} s here (about "
              "0.5 s on an idle machine of this project: scale by that)")
        print(f"{'format':11s} {'nodes':>8s} {'MB':>7s} {'parse s':>8s} {'import s':>9s} "
              f"{'x parse':>8s} {'x session':>9s}  goal")
        for n in sizes:
            for name, make in formats.GENERATORS.items():
                data = make(n)
                path = Path(tmp) / f"{name}-{n}.json"
                path.write_bytes(data)
                del data
                t0 = time.perf_counter()
                orjson.loads(path.read_bytes())
                parse = time.perf_counter() - t0
                dt, nodes, load = _time_import(path)
                ok = dt < GOAL_S or n < 100_000
                slow += not ok
                ratio = f"{dt / load:9.1f}" if load else f"{'-':>9s}"
                print(f"{name:11s} {nodes:8d} {path.stat().st_size / 1e6:7.1f} {parse:8.3f} "
                      f"{dt:9.3f} {dt / parse:8.1f} {ratio}  {'ok' if ok else 'OVER 5 s'}",
                      flush=True)
                path.unlink()
            db = formats.basemode_db(n, Path(tmp) / f"basemode-{n}.db")
            dt, nodes, load = _time_import(db)
            ok = dt < GOAL_S or n < 100_000
            slow += not ok
            ratio = f"{dt / load:9.1f}" if load else f"{'-':>9s}"
            print(f"{'basemode-db':11s} {nodes:8d} {db.stat().st_size / 1e6:7.1f} {'':>8s} "
                  f"{dt:9.3f} {'':>8s} {ratio}  {'ok' if ok else 'OVER 5 s'}", flush=True)
    print("(logitloom counts segments: single-token chains merge into one node)")
    return 0 if not slow else 1
