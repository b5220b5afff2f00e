"""Headless commands that do what the TUI does, so every loom action is scriptable.

Errors are one line on stderr (``loomtui: error: ...``) with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from loomtui.core.errors import LoomError
from loomtui.core.node import Sampler
from loomtui.core.text import short, unescape
from loomtui.core.tree import Tree

COMMANDS = ("open", "show", "tree", "import", "export", "new", "expand", "pick", "type", "bench",
            "models", "search", "grow")


def _prob(lp: float | None) -> str:
    return "   ?  " if lp is None else f"{100 * math.exp(lp):5.1f}%"


# ------------------------------------------------------------------ session commands
def _load(path: str) -> Tree:
    from loomtui.core import session

    return session.load(path)


def _save(tree: Tree, path: str) -> None:
    from loomtui.core import session

    session.save(tree, path)


def _node_id(tree: Tree, node: str | None) -> str:
    if node is None:
        return tree.selected
    tree.node(node)
    return node


def node_json(tree: Tree, node_id: str, top: int) -> dict[str, Any]:
    """The JSON object ``loomtui show --json`` prints for a node."""
    n = tree.node(node_id)
    d = n.distribution
    return {
        "id": n.id,
        "parent": tree.parent(node_id),
        "depth": tree.depth(node_id),
        "context": tree.context_text(node_id),
        "text": n.text,
        "origin": n.origin,
        "token_ids": n.token_ids,
        "token_logprobs": n.token_logprobs,
        "logprob": n.logprob(),
        "cumulative_logprob": tree.cumulative_logprob(node_id),
        "distribution": None if d is None else {
            "top": [{"token_id": t, "text": s, "logprob": lp, "prob": math.exp(lp)}
                    for t, s, lp in d.top.head(top)],
            "entropy": d.entropy, "mass": d.mass, "model": d.model,
        },
        "children": tree.children(node_id),
        "sampler": None if n.sampler is None else n.sampler.to_json(),
        "seed": n.seed,
        "model": n.model,
        "bookmarked": n.bookmarked,
        "note": n.note,
        "tags": n.tags,
    }


def cmd_show(args: argparse.Namespace) -> int:
    tree = _load(args.session)
    nid = _node_id(tree, args.node)
    info = node_json(tree, nid, args.top)
    if args.json:
        print(json.dumps(info, ensure_ascii=False))
        return 0
    n = tree.node(nid)
    print(f"node {nid}  origin {n.origin}  depth {info['depth']}  children {len(info['children'])}")
    bits = []
    if n.sampler is not None:
        s = n.sampler
        bits.append(f"T={s.temperature} top-p={s.top_p} top-k={s.top_k} min-p={s.min_p}")
    if n.seed is not None:
        bits.append(f"seed {n.seed}")
    if n.model:
        bits.append(f"model {n.model}")
    if info["logprob"] is not None:
        bits.append(f"logprob {info['logprob']:.3f}")
    if info["cumulative_logprob"] is not None:
        bits.append(f"cumulative {info['cumulative_logprob']:.3f}")
    if bits:
        print("  ".join(bits))
    if n.note:
        print(f"note: {n.note}")
    print("--- context ---")
    print(info["context"])
    print("--- next token ---")
    d = n.distribution
    if d is None:
        print("(not computed: expand or pick with a model to compute it)")
    else:
        ent = "?" if d.entropy is None else f"{d.entropy:.3f} nats"
        print(f"entropy {ent}  top-{len(d.top)} mass {100 * d.mass:.1f}%  model {d.model}")
        for rank, (tid, text, lp) in enumerate(d.top.head(args.top), 1):
            bar = "█" * max(1, round(20 * math.exp(lp)))
            print(f"{rank:3d} {_prob(lp)} {tid:6d} {short(repr(text), 24):24s} {bar}")
    return 0


def cmd_tree(args: argparse.Namespace) -> int:
    tree = _load(args.session)
    start = _node_id(tree, args.node) if args.node else tree.root_id
    base = tree.depth(start)
    stack = [(start, base)]
    while stack:
        nid, depth = stack.pop()
        n = tree.node(nid)
        rel = depth - base
        if args.max_depth is not None and rel > args.max_depth:
            continue
        if args.json:
            print(json.dumps({"id": nid, "depth": depth, "parent": tree.parent(nid),
                              "text": n.text, "logprob": n.logprob(), "origin": n.origin,
                              "bookmarked": n.bookmarked}, ensure_ascii=False))
        else:
            marks = ("*" if n.bookmarked else " ") + (">" if nid == tree.selected else " ")
            indent = "  " * min(rel, 40) if rel <= 40 else f"{'  ' * 40}[{rel}] "
            lp = n.logprob()
            mean = lp / n.n_tokens if lp is not None and n.n_tokens else None
            print(f"{indent}{nid} {marks}{n.origin[:4]:4s} {_prob(mean)} "
                  f"{short(n.text, 60)}")
        stack.extend((k, depth + 1) for k in reversed(tree.children(nid, args.order)))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from loomtui.core.importers import load_pyloom

    out = Path(args.output)
    if out.exists() and not args.force:
        raise LoomError(f"{out}: already exists; pass --force to replace it")
    tree = load_pyloom(args.file)
    _save(tree, str(out))
    print(f"imported {len(tree)} nodes into {out}", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from loomtui.core.export import export_branch

    tree = _load(args.session)
    text = export_branch(tree, _node_id(tree, args.node), args.format)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise LoomError(f"{args.output}: cannot write: {exc.strerror or exc}") from None
    else:
        sys.stdout.write(text)
    return 0


# ------------------------------------------------------------------ model commands
def session_model(name: str) -> str | None:
    """The session's own model when it can be found here (so a session keeps growing with the
    model that made it unless --model says otherwise), else None for the default."""
    from loomtui.backends.models import resolve

    try:
        resolve(name)
    except LoomError:
        return None
    return name


def _predictor(args: argparse.Namespace, tree: Tree | None = None) -> Any:
    from loomtui.backends import load_predictor

    model = getattr(args, "model", None)
    if model is None and tree is not None and tree.model:
        model = session_model(tree.model)
    pred = load_predictor(model, threads=args.threads, device=args.device, dtype=args.dtype)
    if tree is not None and tree.model and tree.model != pred.model_id:
        print(f"loomtui: note: session was scored by {tree.model}; using {pred.model_id} "
              "(stored distributions keep the model that made them)", file=sys.stderr)
    return pred


def _sampler(args: argparse.Namespace, tree: Tree) -> Sampler:
    base = tree.sampler
    changes: dict[str, Any] = {}
    for key in ("temperature", "top_p", "top_k", "min_p", "max_tokens", "n"):
        value = getattr(args, key, None)
        if value is not None:
            changes[key] = value
    if args.stop:
        try:
            changes["stop"] = tuple(unescape(s) for s in args.stop)
        except ValueError as exc:
            raise LoomError(f"--stop: {exc}") from None
    try:
        return base.with_(**changes).validated()
    except ValueError as exc:
        raise LoomError(str(exc)) from None


def cmd_new(args: argparse.Namespace) -> int:
    from loomtui.core.grow import new_tree

    out = Path(args.session)
    if out.exists() and not args.force:
        raise LoomError(f"{out}: already exists; pass --force to replace it")
    pred = _predictor(args)
    tree = new_tree(pred, args.prompt)
    _save(tree, str(out))
    print(tree.root_id)
    return 0


def _grow(args: argparse.Namespace, compute: Callable[[Tree, Any, str], Any]) -> int:
    """Load the session, run phase one (``compute``) and phase two, save, print the new ids."""
    from loomtui.core import grow

    tree = _load(args.session)
    nid = _node_id(tree, args.node)
    pred = _predictor(args, tree)
    for node in grow.grow(tree, pred, compute(tree, pred, nid)):
        print(node.id)
    _save(tree, args.session)
    return 0


def cmd_expand(args: argparse.Namespace) -> int:
    from loomtui.core import grow

    def compute(tree: Tree, pred: Any, nid: str) -> grow.Growth:
        seed = args.seed if args.seed is not None else tree.seed
        return grow.sample(tree, pred, nid, _sampler(args, tree), seed)

    return _grow(args, compute)


def cmd_pick(args: argparse.Namespace) -> int:
    from loomtui.core import grow

    def compute(tree: Tree, pred: Any, nid: str) -> grow.Growth:
        tid = grow.choose_token(tree, pred, nid, rank=args.rank, token_text=args.token)
        return grow.score_tokens(tree, pred, nid, [tid])

    return _grow(args, compute)


def cmd_type(args: argparse.Namespace) -> int:
    from loomtui.core import grow

    text = unescape(args.text) if args.escapes else args.text
    return _grow(args, lambda tree, pred, nid: grow.score_text(tree, pred, nid, text))


def cmd_models(args: argparse.Namespace) -> int:
    from loomtui.backends.models import describe_models

    for line in describe_models():
        print(line)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "sessions":
        from loomtui.bench.sessions import main as bench_sessions

        return bench_sessions(args.sizes)
    if args.what == "search":
        from loomtui.bench.search import main as bench_search

        return bench_search(args.sizes)
    if args.what == "grow":
        from loomtui.bench.grow import main as bench_grow

        return bench_grow(args.model or "smollm2", args.threads)
    if args.what == "predictor":
        from loomtui.bench.predictor import main as bench_predictor

        return bench_predictor(args.model, args.threads)
    from loomtui.bench.app import main as bench_app

    return bench_app(args.threads)


def cmd_open(args: argparse.Namespace) -> int:
    from loomtui.ui.app import run_app

    return run_app(args.session, model=args.model, prompt=args.prompt, threads=args.threads,
                   device=args.device, dtype=args.dtype, sessions_dir=args.sessions_dir)


# ------------------------------------------------------------------ search and autoloom
def _search_query(args: argparse.Namespace) -> Any:
    import time

    from loomtui.core.search import Query, parse_time

    now = time.time()
    return Query(
        args.query, regex=args.regex, case_sensitive=args.case_sensitive, context=args.context,
        origins=frozenset(args.origin or ()), bookmarked=True if args.bookmarked else None,
        has_note=True if args.has_note else None, tags=tuple(args.tag or ()), model=args.model,
        min_depth=args.min_depth, max_depth=args.max_depth,
        since=None if args.since is None else parse_time(args.since, now),
        until=None if args.until is None else parse_time(args.until, now),
        min_logprob=args.min_logprob, max_logprob=args.max_logprob,
        min_mean_logprob=args.min_mean_logprob, max_mean_logprob=args.max_mean_logprob,
        min_entropy=args.min_entropy,
    ).validated()


def _snippet(context: str, start: int, end: int, width: int = 36, mark: bool = True) -> str:
    """The match with up to ``width`` characters around it, on one line, terminal-safe."""
    from loomtui.core.text import inline

    before = context[max(0, start - width):start]
    after = context[end:end + width]
    lead = "…" if start - width > 0 else ""
    tail = "…" if end + width < len(context) else ""
    hit = inline(context[start:end])
    if mark and hit:
        hit = f"«{hit}»"
    return f"{lead}{inline(before)}{hit}{inline(after)}{tail}"


def cmd_search(args: argparse.Namespace) -> int:
    """Print the matching nodes in pre-order; exit 0 with matches, 1 with none (as grep)."""
    from loomtui.core.search import search

    if args.limit is not None and args.limit < 1:
        raise LoomError(f"--limit must be 1 or more, got {args.limit}")
    tree = _load(args.session)
    query = _search_query(args)
    if args.node is not None:
        tree.node(args.node)
    found = search(tree, query, start=args.node, limit=args.limit)
    for m in found.matches:
        node = tree.node(m.node_id)
        context = tree.context_text(m.node_id)
        if args.json:
            print(json.dumps({
                "id": m.node_id, "depth": m.depth, "parent": tree.parent(m.node_id),
                "origin": node.origin, "start": m.start, "end": m.end,
                "node_start": m.node_start, "match": context[m.start:m.end], "text": node.text,
                "logprob": node.logprob(), "bookmarked": node.bookmarked, "tags": node.tags,
            }, ensure_ascii=False))
        else:
            if query.text:
                shown = _snippet(context, m.start, m.end)
            else:
                shown = _snippet(context, m.node_start, m.node_start + len(node.text),
                                 mark=False)
            print(f"{m.node_id:>6} d{m.depth:<3} {node.origin[:7]:7s} {shown}")
    if found.truncated:
        print(f"loomtui: note: stopped at --limit {args.limit}", file=sys.stderr)
    return 0 if found.matches else 1


def _plan(args: argparse.Namespace) -> Any:
    from loomtui.core.autoloom import AutoloomError, Plan, parse_mix

    if args.mix is not None and args.score is not None:
        raise AutoloomError("give --score or --mix, not both")
    weights = parse_mix(args.mix) if args.mix is not None else ((args.score or "logprob", 1.0),)
    return Plan(args.strategy, args.budget, width=args.width, depth=args.depth, weights=weights,
                question=args.question, seed=args.seed, noise=args.noise).validated()


def cmd_grow(args: argparse.Namespace) -> int:
    """Autoloom from a node: progress on stderr, the best leaf's id on stdout. Ctrl-C stops
    the run and keeps (and saves) what was grown."""
    import threading

    from loomtui.core import autoloom

    plan = _plan(args)  # bad input: one line, before the session or the model is loaded
    tree = _load(args.session)
    nid = _node_id(tree, args.node)
    sampler = _sampler(args, tree).with_(n=plan.width)
    pred = _predictor(args, tree)
    cancel = threading.Event()
    out: dict[str, Any] = {}

    def progress(made: int, budget: int, best: float | None) -> None:
        shown = "-" if best is None else f"{best:.3f}"
        print(f"autoloom: {made}/{budget} nodes, best score {shown}", file=sys.stderr,
              flush=True)

    def work() -> None:
        try:
            out["result"] = autoloom.run(tree, pred, nid, plan, sampler, cancel=cancel,
                                         on_progress=progress)
        except BaseException as exc:  # re-raised on the main thread
            out["error"] = exc

    worker = threading.Thread(target=work, name="autoloom", daemon=True)
    worker.start()
    interrupted = False
    while worker.is_alive():
        try:
            worker.join(0.2)
        except KeyboardInterrupt:
            interrupted = True
            cancel.set()
            print("autoloom: stopping (what was grown is kept)", file=sys.stderr, flush=True)
    if "error" in out:
        raise out["error"]
    result: autoloom.Result = out["result"]
    if result.made:
        _save(tree, args.session)
    print(f"autoloom: run {result.run} (tag autoloom:{result.run}, seed {result.seed}) made "
          f"{len(result.made)} nodes, {result.stopped}", file=sys.stderr)
    if result.best is not None:
        print(result.best)
    return 130 if interrupted else 0


# ------------------------------------------------------------------ parser
def _model_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model directory, cached hub id, GGUF file, or 'bard'")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--dtype", default="float32", help="float32, bfloat16 or float16")


def _search_parser(sub: Any) -> None:
    p = sub.add_parser("search", help="find nodes by text and filters; exit 1 if none match",
                       description="Find nodes whose own text (or, with --context, whole "
                       "context) matches QUERY and that pass every filter; prints them in "
                       "pre-order. Exit status 0 with matches, 1 with none, 2 on error.")
    p.add_argument("session")
    p.add_argument("query", help="text to find (case-insensitive; '' for filters alone)")
    p.add_argument("--regex", action="store_true", help="QUERY is a Python regular expression")
    p.add_argument("--case-sensitive", action="store_true")
    p.add_argument("--context", action="store_true",
                   help="match across segment boundaries in the whole context")
    p.add_argument("--node", help="search only this subtree")
    p.add_argument("--origin", action="append",
                   help="prompt, sampled, picked, typed, edited or imported (repeatable: any)")
    p.add_argument("--bookmarked", action="store_true")
    p.add_argument("--has-note", action="store_true")
    p.add_argument("--tag", action="append",
                   help="a tag, or a pattern such as 'autoloom:*' (repeatable: all)")
    p.add_argument("--model", help="part of the model's name (case-insensitive)")
    p.add_argument("--min-depth", type=int)
    p.add_argument("--max-depth", type=int)
    p.add_argument("--since", help="created at or after: 2026-11-23, 2026-11-23T14:00, or 7d, "
                                   "12h, 30m ago")
    p.add_argument("--until", help="created before (same forms as --since)")
    p.add_argument("--min-logprob", type=float, help="node log-probability at least this")
    p.add_argument("--max-logprob", type=float, help="node log-probability at most this")
    p.add_argument("--min-mean-logprob", type=float, help="per-token mean at least this")
    p.add_argument("--max-mean-logprob", type=float, help="per-token mean at most this")
    p.add_argument("--min-entropy", type=float,
                   help="entropy (nats) of the stored next-token distribution at least this")
    p.add_argument("--limit", type=int, help="stop after this many matches")
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    p.set_defaults(func=cmd_search)


def _grow_parser(sub: Any) -> None:
    p = sub.add_parser("grow", help="autoloom: a model-guided search that grows the tree; "
                                    "prints the best leaf's id",
                       description="Grow up to BUDGET nodes from a node, choosing what to "
                       "expand by score; one undo step, every node tagged autoloom:RUN.")
    p.add_argument("session")
    p.add_argument("--node", help="where to start (default: the selected node)")
    p.add_argument("--budget", type=int, required=True, help="nodes to create, 1..1000")
    p.add_argument("--strategy", required=True, help="best-first, beam or sample")
    p.add_argument("--width", type=int, default=4, help="children per expansion (default 4)")
    p.add_argument("--depth", type=int,
                   help="levels below the start (beam and sample: default 3; best-first: none)")
    p.add_argument("--score", help="logprob (default), mean-logprob or judge")
    p.add_argument("--question", help="the judge's question, with {text} where the passage "
                                      "goes; the score is log P(' yes') - log P(' no')")
    p.add_argument("--mix", help="weighted scores, e.g. logprob=0.2,judge=1")
    p.add_argument("--noise", type=float, default=0.0, help="Gumbel noise scale (seeded)")
    p.add_argument("--seed", type=int, help="base seed (the run replays exactly from it)")
    p.add_argument("--max-tokens", type=int, help="tokens per node (the sampler's)")
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-p", type=float)
    p.add_argument("--top-k", type=int)
    p.add_argument("--min-p", type=float)
    p.add_argument("--stop", action="append", help="stop string (repeatable; \\n escapes)")
    _model_opts(p)
    p.set_defaults(func=cmd_grow)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="loomtui", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("open", help="open the app (the default: `loomtui [SESSION]`)")
    p.add_argument("session", nargs="?")
    p.add_argument("--prompt", help="prompt for a new session")
    p.add_argument("--sessions-dir", help="where new sessions are saved (default: sessions/)")
    _model_opts(p)
    p.set_defaults(func=cmd_open)

    p = sub.add_parser("show", help="a node's context, origin and distribution")
    p.add_argument("session")
    p.add_argument("--node", help="node id (default: the selected node)")
    p.add_argument("--top", type=int, default=10, help="distribution entries to show")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("tree", help="an outline of the tree (id, marks, origin, per-token "
                                     "probability as a geometric mean, text)")
    p.add_argument("session")
    p.add_argument("--node", help="outline only this subtree")
    p.add_argument("--max-depth", type=int)
    p.add_argument("--order", choices=("created", "probability"), default="created")
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    p.set_defaults(func=cmd_tree)

    p = sub.add_parser("import", help="import a socketteer/loom JSON tree")
    p.add_argument("file")
    p.add_argument("-o", "--output", required=True, help="session file to write")
    p.add_argument("--force", action="store_true", help="replace an existing session file")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("export", help="a branch as plain text or Markdown")
    p.add_argument("session")
    p.add_argument("--node", help="last node of the branch (default: the selected node)")
    p.add_argument("--format", choices=("text", "markdown"), default="text")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("new", help="a new session whose root holds a prompt; prints the root id")
    p.add_argument("session")
    p.add_argument("--prompt", required=True)
    p.add_argument("--force", action="store_true", help="replace an existing session file")
    _model_opts(p)
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("expand", help="sample children; prints their ids, one a line")
    p.add_argument("session")
    p.add_argument("--node", help="node to expand (default: the selected node)")
    p.add_argument("-n", type=int, dest="n")
    p.add_argument("--max-tokens", type=int)
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-p", type=float)
    p.add_argument("--top-k", type=int)
    p.add_argument("--min-p", type=float)
    p.add_argument("--seed", type=int, help="base seed (child i uses seed+i)")
    p.add_argument("--stop", action="append", help="stop string (repeatable; \\n escapes)")
    _model_opts(p)
    p.set_defaults(func=cmd_expand)

    p = sub.add_parser("pick", help="add a one-token child chosen from the distribution")
    p.add_argument("session")
    p.add_argument("--node", help="parent node (default: the selected node)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--rank", type=int, help="1 = most probable")
    g.add_argument("--token", help="the token's text (must be a single token)")
    _model_opts(p)
    p.set_defaults(func=cmd_pick)

    p = sub.add_parser("type", help="add typed text as a child, scored token by token")
    p.add_argument("session")
    p.add_argument("--node", help="parent node (default: the selected node)")
    p.add_argument("--text", required=True)
    p.add_argument("--escapes", action="store_true", help="interpret \\n and other escapes")
    _model_opts(p)
    p.set_defaults(func=cmd_type)

    _search_parser(sub)
    _grow_parser(sub)

    p = sub.add_parser("models", help="the models loomtui can find, and which is the default")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("bench", help="benchmarks (ratios against a baseline in one run)")
    p.add_argument("what", choices=("sessions", "predictor", "app", "search", "grow"))
    p.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000, 100000])
    p.add_argument("--model")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_bench)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, "open")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LoomError as exc:
        print(f"loomtui: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("loomtui: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())

