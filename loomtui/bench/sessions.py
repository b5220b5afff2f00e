"""Session save/load speed and size: ``loomtui bench sessions``."""

from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path

from loomtui.bench.synthetic import make_tree
from loomtui.core import session


def main(sizes: list[int]) -> int:
    print("generated trees: 8 tokens a node, top-20 distribution, top-5 alternatives per token")
    print("(each load runs with the saved tree freed, as when a session is opened)")
    print(f"{'nodes':>8} {'save s':>8} {'load s':>8} {'bytes/node':>11} {'MB':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            tree = make_tree(n)
            path = Path(tmp) / f"bench-{n}.json"
            t0 = time.perf_counter()
            session.save(tree, path)
            t1 = time.perf_counter()
            del tree  # load as a fresh process would: without the generated tree in memory
            gc.collect()
            t_load = time.perf_counter()
            loaded = session.load(path)
            t2 = time.perf_counter()
            assert len(loaded) == n
            del loaded
            gc.collect()
            size = path.stat().st_size
            print(f"{n:8d} {t1 - t0:8.3f} {t2 - t_load:8.3f} {size / n:11.0f} {size / 1e6:8.1f}",
                  flush=True)
    return 0
