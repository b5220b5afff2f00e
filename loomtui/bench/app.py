"""App speed, driven with Textual's Pilot: ``loomtui bench app`` (prints numbers; no asserts).

* keypress latency moving through a 10,000-node tree (every node has a stored distribution,
  so each move also redraws the branch and the distribution panel);
* opening and walking a 5,000-deep chain;
* time from pressing ``e`` to the first streamed token on screen, with the bundled model;
* selecting a node whose distribution is stored, and one whose parent only is cached.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time

SIZE = (140, 40)


def _as_opened(tree):
    """The tree as the app gets it from a session file: saved and loaded again (loading also
    moves the parsed objects out of the cyclic GC's sight, as a real session's are)."""
    import tempfile
    from pathlib import Path

    from loomtui.core import session

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.json"
        session.save(tree, path)
        return session.load(path)


def _summary(name: str, samples: list[float], target_ms: float | None = None) -> str:
    ms = sorted(1000 * s for s in samples)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    line = (f"{name:34s} n={len(ms):4d}  p50 {statistics.median(ms):7.1f} ms  "
            f"p95 {p95:7.1f} ms  max {ms[-1]:7.1f} ms")
    if target_ms is not None:
        line += f"   (target p95 <= {target_ms:g} ms: {'ok' if p95 <= target_ms else 'MISSED'})"
    return line


class FrameProbe:
    """Times a key from being sent to the first frame composed after the app handled it."""

    def __init__(self, app) -> None:
        self.app = app
        self.frames: list[float] = []
        self.handled = 0.0
        display, show = app._display, app.show_selection

        def on_display(screen, renderable) -> None:
            if renderable is not None:
                self.frames.append(time.perf_counter())
            display(screen, renderable)

        def on_show(*args, **kwargs) -> None:
            show(*args, **kwargs)
            self.handled = time.perf_counter()

        app._display = on_display
        app.show_selection = on_show

    async def key(self, key: str) -> float | None:
        from textual import events

        await asyncio.sleep(0.02)  # let the previous frame settle
        self.handled = 0.0
        t0 = time.perf_counter()
        char = key if len(key) == 1 else None
        self.app._driver.send_message(events.Key(key, char))
        deadline = t0 + 1
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.0005)
            if self.handled and any(f >= self.handled for f in self.frames):
                return next(f for f in self.frames if f >= self.handled) - t0
        return None


async def _keys(pilot, keys: list[str]) -> list[float]:
    probe = FrameProbe(pilot.app)
    out = []
    for key in keys:
        took = await probe.key(key)
        if took is not None:
            out.append(took)
    return out


async def bench_big_tree(n: int = 10000, presses: int = 300) -> None:
    from loomtui.bench.synthetic import make_tree
    from loomtui.ui.app import LoomApp

    tree = _as_opened(make_tree(n))
    t0 = time.perf_counter()
    app = LoomApp(tree=tree, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        print(f"open {n:,}-node tree: {1000 * (time.perf_counter() - t0):.0f} ms", flush=True)
        rng = random.Random(0)
        keys = [rng.choice("hjkllljj") for _ in range(presses)]
        samples = await _keys(pilot, keys)
        print(_summary(f"move in {n:,}-node tree (h/j/k/l)", samples, 50), flush=True)
        samples = await _keys(pilot, ["down"] * 60 + ["up"] * 60)
        print(_summary(f"outline up/down in {n:,}-node tree", samples, 50), flush=True)


async def bench_deep_chain(n: int = 5000) -> None:
    from loomtui.bench.synthetic import make_tree
    from loomtui.ui.app import LoomApp

    tree = _as_opened(make_tree(n, chain=True))
    t0 = time.perf_counter()
    app = LoomApp(tree=tree, autosave=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("G")
        print(f"open {n:,}-deep chain and go to its end: "
              f"{1000 * (time.perf_counter() - t0):.0f} ms", flush=True)
        samples = await _keys(pilot, ["h"] * 100 + ["l"] * 100)
        print(_summary(f"move in {n:,}-deep chain (h/l)", samples, 50), flush=True)


async def bench_stream(threads: int, runs: int = 5) -> None:
    from loomtui.backends import load_predictor
    from loomtui.core.grow import new_tree
    from loomtui.core.node import Sampler
    from loomtui.ui.app import LoomApp

    pred = load_predictor("bard", threads=threads)
    tree = new_tree(pred, "ROMEO:\nBut soft, what light through yonder window breaks?")
    tree.sampler = Sampler(n=4, max_tokens=32)
    app = LoomApp(tree=tree, predictor=pred, autosave=False)
    firsts, totals = [], []
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        for _ in range(runs):
            await pilot.press("g")
            await app.workers.wait_for_complete()
            await pilot.pause()
            seen = app.stream_updates
            t0 = time.perf_counter()
            first = None
            app.action_expand()
            while app.generating:
                await asyncio.sleep(0.001)
                if first is None and app.stream_updates > seen:
                    first = time.perf_counter() - t0
            await pilot.pause()
            totals.append(time.perf_counter() - t0)
            firsts.append(first if first is not None else totals[-1])
        # selecting nodes that already hold a distribution
        await pilot.press("l", "h")
        await app.workers.wait_for_complete()
        selects = await _keys(pilot, ["l", "j", "j", "k", "k", "h"] * 5)
        # selecting a node whose distribution is not stored, but whose parent is cached:
        # its own tokens run through the model in a worker, then the panel shows the result
        cached = []
        for kid in tree.children(tree.root_id)[:12]:
            app.select(tree.root_id)
            await app.workers.wait_for_complete()
            await pilot.pause()
            tree.update(kid, distribution=None)
            pred.store.drop(kid)
            t0 = time.perf_counter()
            app.select(kid)
            while (tree.node(kid).distribution is None
                   or app.dist_panel.mode != "distribution"):
                await asyncio.sleep(0.0005)
            cached.append(time.perf_counter() - t0)
    print(_summary("first streamed token on screen", firsts, 300), flush=True)
    print(_summary("whole expand (4 x 32 tokens)", totals), flush=True)
    print(_summary("select node with stored distribution", selects, 50), flush=True)
    print(_summary("select node, parent cached (bard)", cached, 100), flush=True)


def main(threads: int = 1) -> int:
    print(f"loomtui app benchmark (terminal {SIZE[0]}x{SIZE[1]}, torch threads {threads})")
    asyncio.run(bench_big_tree())
    asyncio.run(bench_deep_chain())
    asyncio.run(bench_stream(threads))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1))
