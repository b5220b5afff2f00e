"""App speed, driven with Textual's Pilot: ``loomtui bench app`` (prints numbers; no asserts).

* launch to first frame and to the model being ready (a fresh Python each run);
* keys while an autosave of a 40,000-node session runs (autosave on), and while the model
  samples in a worker, each against the same keys at rest;

* keypress latency moving through a 10,000-node tree (every node has a stored distribution,
  so each move also redraws the branch and the distribution panel);
* opening and walking a 5,000-deep chain;
* time from pressing ``e`` to the first streamed token on screen, with the bundled model;
* selecting a node whose distribution is stored, and one whose parent only is cached;
* searching a 100,000-node tree from the search bar (``/``): the index built when the bar
  opens, then each query from the line changing to its results on screen (the debounce
  excluded) and the search itself in its worker, against the 200 ms target.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from typing import Any

SIZE = (140, 40)



def _screen(app: Any) -> Any:
    """The app's loom screen (the bench opens a session, so there is one)."""
    screen = app.loom_screen
    assert screen is not None
    return screen

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
    """Times a key from being sent to the first frame composed after the screen handled it."""

    def __init__(self, app) -> None:
        from loomtui.ui import compat

        self.app = app
        self.frames: list[float] = []
        self.handled = 0.0
        compat.hook_frames(app, lambda: self.frames.append(time.perf_counter()))
        screen = _screen(app)
        show = screen.show_selection

        def on_show(*args, **kwargs) -> None:
            show(*args, **kwargs)
            self.handled = time.perf_counter()

        screen.show_selection = on_show

    async def key(self, key: str) -> float | None:
        from loomtui.ui import compat

        await asyncio.sleep(0.02)  # let the previous frame settle
        self.handled = 0.0
        t0 = time.perf_counter()
        compat.send_key(self.app, key)
        deadline = t0 + 3
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


async def _walk(pilot, presses: int, rng: random.Random) -> list[float]:
    """A random walk of h/j/k/l keys (mostly down and across), each a move that can be made
    from where the selection is: a key that cannot move draws no frame to time."""
    probe = FrameProbe(pilot.app)
    screen = _screen(pilot.app)
    tree = screen.loom
    out = []
    for _ in range(presses):
        nid = tree.selected
        siblings = tree.siblings(nid, screen.order)
        at = siblings.index(nid)
        moves = {"h": tree.parent(nid) is not None, "l": bool(tree.children(nid)),
                 "j": at + 1 < len(siblings), "k": at > 0}
        keys = [k for k in "hjkllljj" if moves[k]]
        if not keys:  # a tree of one node: nowhere to go
            break
        took = await probe.key(rng.choice(keys))
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
        samples = await _walk(pilot, presses, random.Random(0))
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
            seen = _screen(app).stream_updates
            t0 = time.perf_counter()
            first = None
            _screen(app).action_expand()
            while _screen(app).generating:
                await asyncio.sleep(0.001)
                if first is None and _screen(app).stream_updates > seen:
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
            _screen(app).select(tree.root_id)
            await app.workers.wait_for_complete()
            await pilot.pause()
            tree.update(kid, distribution=None)
            pred.store.drop(kid)
            t0 = time.perf_counter()
            _screen(app).select(kid)
            while (tree.node(kid).distribution is None
                   or _screen(app).dist_panel.mode != "distribution"):
                await asyncio.sleep(0.0005)
            cached.append(time.perf_counter() - t0)
    print(_summary("first streamed token on screen", firsts, 300), flush=True)
    print(_summary("whole expand (4 x 32 tokens)", totals), flush=True)
    print(_summary("select node with stored distribution", selects, 50), flush=True)
    print(_summary("select node, parent cached (bard)", cached, 100), flush=True)


async def _keys_while(pilot, busy, start, keys: list[str], want: int) -> list[float]:
    """Key latencies measured only while ``busy()`` (started by ``start()`` as needed)."""
    probe = FrameProbe(pilot.app)
    out: list[float] = []
    i = 0
    tries = 0
    while len(out) < want and tries < want * 20:
        tries += 1
        if not busy():
            await start()
            continue
        took = await probe.key(keys[i % len(keys)])
        i += 1
        if took is not None and busy():
            out.append(took)
    return out


async def bench_autosave(n: int = 40000, rounds: int = 5, per_round: int = 12) -> None:
    """Navigation keys while an autosave of an ``n``-node session runs (autosave on), and the
    same keys at rest, in alternating rounds (so both see the same machine load); for each
    way of saving (see :mod:`loomtui.ui.saver`)."""
    import os
    import tempfile
    from pathlib import Path

    from loomtui.bench.synthetic import make_tree
    from loomtui.ui.app import AUTOSAVE_DELAY, LoomApp

    tree = _as_opened(make_tree(n))
    keys = list("hjkllljjhk")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.json"
        app = LoomApp(tree=tree, path=path, autosave_delay=AUTOSAVE_DELAY)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = _screen(app)

            async def start() -> None:
                await app.workers.wait_for_complete()
                t0 = time.perf_counter()
                screen.action_bookmark()  # a change: autosave follows after the delay
                while not app.saving and time.perf_counter() - t0 < 5:
                    await asyncio.sleep(0.001)

            for mode in ("steps", "thread"):
                os.environ["LOOMTUI_SAVE"] = mode
                t0 = time.perf_counter()
                await start()
                while app.saving:
                    await asyncio.sleep(0.005)
                alone = time.perf_counter() - t0 - AUTOSAVE_DELAY
                rest: list[float] = []
                during: list[float] = []
                for _ in range(rounds):
                    await app.workers.wait_for_complete()
                    rest += await _keys(pilot, keys[:per_round])
                    during += await _keys_while(pilot, lambda: app.saving, start, keys,
                                                per_round)
                await app.workers.wait_for_complete()
                ratio = statistics.median(during) / statistics.median(rest)
                print(_summary(f"keys at rest ({mode} rounds)", rest, 50), flush=True)
                print(_summary(f"keys during autosave ({mode})", during, 50)
                      + f"  [p50 x{ratio:.2f} of rest; one save alone {alone:.1f} s]",
                      flush=True)
            os.environ.pop("LOOMTUI_SAVE", None)


async def bench_model_work(threads: int, presses: int = 60, hosted: bool = True) -> None:
    """Navigation keys while the model samples in a worker (bard, long rollouts): in its own
    process with its default threads, as ``loomtui open`` runs it, or (``hosted=False``, as
    with ``LOOMTUI_MODEL_PROCESS=0``) in the app's process on ``threads`` threads."""
    from loomtui.backends import load_predictor
    from loomtui.backends.hosted import ModelHost
    from loomtui.bench.synthetic import make_tree
    from loomtui.core.grow import new_tree
    from loomtui.core.node import Sampler
    from loomtui.ui.app import LoomApp
    from loomtui.ui.format import plural

    host = ModelHost.start() if hosted else None
    if host is not None:
        pred: Any = host.load("bard", threads=None, device="auto", dtype="float32")
        where = f"model process, {plural(pred.threads, 'thread')}"
    else:
        pred = load_predictor("bard", threads=threads)
        where = f"in the app, {plural(threads, 'thread')}"
    tree = new_tree(pred, "ROMEO:\nBut soft, what light through yonder window breaks?")
    window = pred.context_window
    tree.sampler = Sampler(n=8, max_tokens=window // 2)
    base = make_tree(2000)
    # a branchy tree around the prompt, so keys have somewhere to go
    for kid in base.children(base.root_id)[:8]:
        node = base.node(kid)
        node.id = tree.new_id()
        tree.add_child(tree.root_id, node)
    tree.history.clear()
    import tempfile
    from pathlib import Path

    from loomtui.ui.app import AUTOSAVE_DELAY

    tmp = tempfile.TemporaryDirectory()
    app = LoomApp(tree=tree, predictor=pred, path=Path(tmp.name) / "work.json",
                  autosave_delay=AUTOSAVE_DELAY)  # autosave on, as a user runs it
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        screen = _screen(app)
        rest = await _keys(pilot, list("ljjkkh") * (presses // 6))

        async def start() -> None:
            await app.workers.wait_for_complete()
            screen.select(tree.root_id)
            screen.action_expand()

        during = await _keys_while(pilot, lambda: screen.generating, start,
                                   list("ljjkkh"), presses)
        screen.stop_growing()
        await app.workers.wait_for_complete()
    tmp.cleanup()
    if host is not None:
        host.close()
    print(_summary(f"keys at rest ({where})", rest, 50), flush=True)
    print(_summary(f"keys while sampling 8 x {window // 2} ({where})", during, 50),
          flush=True)


SEARCH_QUERIES = ["king", "no such words", "lord --max-depth 6", r"thou\s+love --regex",
                  "king --origin sampled --max-logprob -20", "--min-entropy 5 --max-depth 6",
                  "king --context"]


async def bench_search(n: int = 100_000, rounds: int = 3) -> None:
    """Search from the bar on an ``n``-node tree: each query typed into an empty line, timed
    from the line changing (the debounce excluded) to the first frame drawn after its results
    reached the screen, and the search itself in its worker."""
    from loomtui.bench.search import TARGET_MS
    from loomtui.bench.synthetic import make_tree
    from loomtui.ui import compat
    from loomtui.ui.app import LoomApp
    from loomtui.ui.widgets.search_bar import DEBOUNCE

    tree = _as_opened(make_tree(n))
    app = LoomApp(tree=tree, autosave=False)
    frames: list[float] = []
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        compat.hook_frames(app, lambda: frames.append(time.perf_counter()))
        bar = _screen(app).search_bar

        async def results(before: int) -> float:
            while bar.searches == before:
                await asyncio.sleep(0.005)
            return time.perf_counter()

        t0 = time.perf_counter()
        await pilot.press("slash")
        await results(0)
        print(f"search index of {n:,} nodes built when the bar opens: "
              f"{1000 * (time.perf_counter() - t0):.0f} ms (in a worker)", flush=True)
        shown: list[float] = []
        worker: list[float] = []
        for r in range(rounds):
            for line in SEARCH_QUERIES:
                if bar.input.value:
                    before = bar.searches
                    bar.input.value = ""
                    await results(before)
                    await asyncio.sleep(0.05)
                before = bar.searches
                t0 = time.perf_counter()
                bar.input.value = line
                arrived = await results(before)
                while not any(f >= arrived for f in frames):
                    await asyncio.sleep(0.002)
                frame = next(f for f in frames if f >= arrived)
                shown.append(frame - t0 - DEBOUNCE)
                worker.append((bar.took_ms or 0.0) / 1000)
                if r == 0:
                    print(f"  {line!r:44s} {len(bar.matches):7,} matches  search "
                          f"{bar.took_ms or 0:6.0f} ms  on screen "
                          f"{1000 * shown[-1]:6.0f} ms", flush=True)
    print(_summary(f"search {n:,} nodes (worker)", worker, TARGET_MS), flush=True)
    print(_summary(f"search {n:,} nodes (to screen)", shown, TARGET_MS), flush=True)


_LAUNCH = """
import sys, time
t0 = float(sys.argv[1])
from loomtui.backends.host_spawn import start_early
start_early(1)  # as the `loomtui` command does when it opens the app: first of all
import loomtui.cli  # then it imports the command line
from loomtui.backends.hosted import ModelHost
host = ModelHost.start(1)  # and `open` takes that process (before the UI is imported)
import asyncio
from loomtui.ui.app import make_app, tune_process
tune_process()
from loomtui.ui import compat
from loomtui.ui.screens.loom import LoomScreen

async def main():
    app = make_app(sys.argv[2], model=sys.argv[3], threads=1, host=host)
    first = []
    compat.hook_frames(app, lambda: first or first.append(time.time())
                       or first.append("torch" in sys.modules))
    async with app.run_test(size=(120, 36)):
        while not first:
            await asyncio.sleep(0.001)
        torch_at_frame = first[1]
        while not isinstance(app.screen, LoomScreen):
            await asyncio.sleep(0.005)
        shown = time.time()
        while app.model_loading:
            await asyncio.sleep(0.005)
        ready = time.time()
        error = app.model_error
    if error:
        sys.exit(error)
    print(first[0] - t0, shown - t0, ready - t0, torch_at_frame, "torch" in sys.modules)

asyncio.run(main())
"""


def bench_launch(runs: int = 3, model: str = "bard", nodes: int = 0) -> None:
    """From starting Python (``loomtui open SESSION`` as the CLI builds the app, autosave on)
    to the first frame, to the session on screen, and to the model being ready."""
    import os
    import subprocess
    import sys
    import tempfile

    from loomtui.bench.synthetic import make_tree
    from loomtui.core import session
    from loomtui.ui.demo import demo_tree

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "launch.json")
        tree = make_tree(nodes) if nodes else demo_tree()
        session.save(tree, path)
        what = f"{nodes:,}-node session" if nodes else "example session"
        if os.environ.get("PYTHONDONTWRITEBYTECODE"):  # as scripts/open leaves it
            import loomtui

            subprocess.run([sys.executable, "-m", "compileall", "-q",
                            os.path.dirname(loomtui.__file__)], capture_output=True)
        if model == "smollm2":  # as every launch after the first: its weights are cached
            subprocess.run([sys.executable, "-c", "import sys; from loomtui.backends import "
                            "lean_cache; lean_cache.ensure(sys.argv[1])", model], check=True)
        firsts, shown, readies, torch_early, in_app = [], [], [], 0, 0
        for _ in range(runs):
            out = subprocess.run([sys.executable, "-c", _LAUNCH, repr(time.time()), path, model],
                                 capture_output=True, text=True,
                                 env={**os.environ, "PYTHONPATH": os.getcwd()})
            if out.returncode:
                print(f"launch ({what}, {model}) failed: {out.stderr.strip()[-300:]}")
                return
            first, show, ready, early, torch_here = out.stdout.split()
            in_app += torch_here == "True"
            firsts.append(float(first))
            shown.append(float(show))
            readies.append(float(ready))
            torch_early += early == "True"
    print(_summary(f"launch to first frame ({what})", firsts, 1000)
          + f"  [torch imported before it: {torch_early}/{runs}]", flush=True)
    print(_summary(f"launch to session shown ({what})", shown), flush=True)
    print(_summary(f"launch to model ready ({model})", readies,
                   3000 if model == "smollm2" else None)
          + f"  [model in the app's process: {in_app}/{runs}]", flush=True)


def main(threads: int = 1, only: str | None = None) -> int:
    from loomtui.ui.app import tune_process

    tune_process()  # as the app's own process runs
    print(f"loomtui app benchmark (terminal {SIZE[0]}x{SIZE[1]}, torch threads {threads})")
    runs = {
        "launch": bench_launch,
        "launch-smollm2": lambda: bench_launch(model="smollm2"),
        "launch-40k": lambda: bench_launch(nodes=40000),
        "tree": lambda: asyncio.run(bench_big_tree()),
        "chain": lambda: asyncio.run(bench_deep_chain()),
        "stream": lambda: asyncio.run(bench_stream(threads)),
        "model": lambda: asyncio.run(bench_model_work(threads)),
        "model-in-app": lambda: asyncio.run(bench_model_work(threads, hosted=False)),
        "autosave": lambda: asyncio.run(bench_autosave()),
        "search": lambda: asyncio.run(bench_search()),
    }
    for name, run in runs.items():
        if only is None or name == only:
            run()
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1,
                  sys.argv[2] if len(sys.argv) > 2 else None))
