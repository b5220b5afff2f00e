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
from loomtui.core.text import short, terminal_safe, unescape
from loomtui.core.tree import Tree

COMMANDS = ("open", "show", "tree", "import", "export", "new", "expand", "pick", "type", "bench",
            "models", "compare")


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


def _engine_spec(args: argparse.Namespace, tree: Tree | None) -> Any:
    """The engine to use: ``--engine`` (``--model`` names its served model), or a configured
    profile matching the session's engine model id; None for a local model. A session alone
    never makes loomtui contact a URL."""
    from loomtui.backends.engine_config import choose

    return choose(getattr(args, "engine", None), getattr(args, "model", None),
                  tree.model if tree is not None else None)


def _notes(pred: Any) -> None:
    for note in getattr(pred, "notes", ()):
        print(f"loomtui: note: {terminal_safe(note)}", file=sys.stderr)


def _predictor(args: argparse.Namespace, tree: Tree | None = None) -> Any:
    from loomtui.backends import load_predictor

    spec = _engine_spec(args, tree)
    if spec is not None:
        from loomtui.backends.engine import connect

        return connect(spec)
    model = getattr(args, "model", None)
    if model is None and tree is not None and tree.model:
        model = session_model(tree.model)
    pred = load_predictor(model, threads=args.threads, device=args.device, dtype=args.dtype)
    if tree is not None and tree.model and tree.model != pred.model_id:
        print(f"loomtui: note: session was scored by {terminal_safe(tree.model)}; using "
              f"{pred.model_id} (stored distributions keep the model that made them)",
              file=sys.stderr)
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
    _notes(pred)
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
    _notes(pred)
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


def cmd_compare(args: argparse.Namespace) -> int:
    """Two predictors' next-token distributions after a node, side by side (printed only;
    the session is not changed)."""
    from loomtui.core.compare import compare, format_comparison

    tree = _load(args.session)
    nid = _node_id(tree, args.node)
    active = _predictor(args, tree)
    other_args = argparse.Namespace(**{**vars(args), "engine": None, "model": None})
    if "://" in args.with_:
        other_args.engine = args.with_
    else:
        from loomtui.backends.engine_config import profiles

        if args.with_ in profiles():
            other_args.engine = args.with_
        else:
            other_args.model = args.with_
    other = _predictor(other_args)
    a = active.distribution(tree, nid, args.top)
    b = other.distribution(tree, nid, args.top)
    for line in format_comparison(compare(a, b), args.top * 2):
        print(line)
    _notes(active)
    _notes(other)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "engine":
        from loomtui.bench.engine import main as bench_engine

        if not args.engine:
            raise LoomError("bench engine needs --engine URL_OR_PROFILE")
        return bench_engine(args.engine, args.model)
    if args.what == "sessions":
        from loomtui.bench.sessions import main as bench_sessions

        return bench_sessions(args.sizes)
    if args.what == "predictor":
        from loomtui.bench.predictor import main as bench_predictor

        return bench_predictor(args.model, args.threads)
    from loomtui.bench.app import main as bench_app

    return bench_app(args.threads)


def cmd_open(args: argparse.Namespace) -> int:
    from loomtui.ui.app import run_app

    return run_app(args.session, model=args.model, prompt=args.prompt, threads=args.threads,
                   device=args.device, dtype=args.dtype, sessions_dir=args.sessions_dir,
                   engine=args.engine)


# ------------------------------------------------------------------ parser
def _model_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model directory, cached hub id, GGUF file, or 'bard'; "
                   "with --engine, the served model's name")
    p.add_argument("--engine", metavar="URL_OR_PROFILE",
                   help="an OpenAI-compatible engine: its /v1 URL or a profile of the config")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--dtype", default="float32", help="float32, bfloat16 or float16")


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

    p = sub.add_parser("models", help="the models loomtui can find, and which is the default")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("bench", help="benchmarks (ratios against a baseline in one run)")
    p.add_argument("what", choices=("sessions", "predictor", "app", "engine"))
    p.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000, 100000])
    p.add_argument("--model")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--engine", metavar="URL_OR_PROFILE", help="for `bench engine`")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("compare", help="two predictors' next-token distributions after a node, "
                                        "matched by token text, with KL and total variation")
    p.add_argument("session")
    p.add_argument("--node", help="node id (default: the selected node)")
    p.add_argument("--with", dest="with_", required=True, metavar="ENGINE_URL_OR_MODEL",
                   help="the other predictor: an engine URL or profile, or a local model")
    p.add_argument("--top", type=int, default=20, help="entries asked of each side")
    _model_opts(p)
    p.set_defaults(func=cmd_compare)
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

