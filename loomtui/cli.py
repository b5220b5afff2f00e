"""Headless commands that do what the TUI does, so every loom action is scriptable.

Errors are one line on stderr (``loomtui: error: ...``) with exit status 2.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from loomtui.command_line import COMMANDS, is_tty, route
from loomtui.core import limits
from loomtui.core.errors import LoomError
from loomtui.core.limits import Bound
from loomtui.core.node import Sampler
from loomtui.core.text import inline, json_safe, short, terminal_safe, unescape
from loomtui.core.tree import Tree

LOCK_WAIT = 120.0
"""Seconds a command that changes a session waits for another loomtui writing it."""


def _json(obj: Any) -> str:
    """One line of strict JSON with no character a terminal would act on. A sum of a file's
    log-probabilities can overflow to -inf (which JSON cannot hold): written as null."""
    try:
        text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(obj), ensure_ascii=False, allow_nan=False)
    return json_safe(text)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _prob(lp: float | None) -> str:
    return "   ?  " if lp is None else f"{100 * math.exp(lp):5.1f}%"


# ------------------------------------------------------------------ session commands
def _load(path: str) -> Tree:
    from loomtui.core import session

    return session.load(path)


def _save(tree: Tree, path: str) -> None:
    from loomtui.core import session

    session.save(tree, path)


@contextmanager
def _editing(path: str) -> Iterator[Tree]:
    """The session at ``path``, held under its writer lock from load to save (so a second
    writer waits, then sees this one's change); saved if it changed, and never over a file
    that changed meanwhile."""
    from loomtui.core import session

    if not os.path.lexists(path):  # no lock file is left beside a session that is not there
        raise LoomError(f"{path}: no such file")
    with session.locked(path, LOCK_WAIT):
        tree, stamp = session.load_stamped(path)
        revision = tree.revision
        yield tree
        if tree.revision != revision:
            session.save(tree, path, expect=stamp)


def _new_file(path: str, force: bool) -> Path:
    """A path a command may create: refused if it exists (without --force) or its directory
    does not."""
    out = Path(path)
    if out.exists() and not force:
        raise LoomError(f"{out}: already exists; pass --force to replace it")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise LoomError(f"{out}: the directory {parent} does not exist")
    return out


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
        print(_json(info))
        return 0
    n = tree.node(nid)
    print(f"node {inline(nid)}  origin {n.origin}  depth {info['depth']}  "
          f"children {len(info['children'])}")
    bits = []
    if n.sampler is not None:
        s = n.sampler
        bits.append(f"T={s.temperature} top-p={s.top_p} top-k={s.top_k} min-p={s.min_p}")
    if n.seed is not None:
        bits.append(f"seed {n.seed}")
    if n.model:
        bits.append(f"model {short(n.model, 80)}")
    if info["logprob"] is not None:
        bits.append(f"logprob {info['logprob']:.3f}")
    if info["cumulative_logprob"] is not None:
        bits.append(f"cumulative {info['cumulative_logprob']:.3f}")
    if bits:
        print("  ".join(bits))
    if n.note:
        print(f"note: {terminal_safe(n.note)}")
    print("--- context ---")
    print(terminal_safe(info["context"]))
    print("--- next token ---")
    d = n.distribution
    if d is None:
        print("(not computed: expand or pick with a model to compute it)")
    else:
        ent = "?" if d.entropy is None else f"{d.entropy:.3f} nats"
        kind = "top-k only, " if d.partial else ""
        print(f"entropy {ent}  {kind}top-{len(d.top)} mass {100 * d.mass:.1f}%  "
              f"model {short(str(d.model), 80)}")
        for rank, (tid, text, lp) in enumerate(d.top.head(args.top), 1):
            bar = "█" * max(1, round(20 * math.exp(lp)))
            shown = "     ?" if tid is None else f"{tid:6d}"
            print(f"{rank:3d} {_prob(lp)} {shown} {short(repr(text), 24):24s} {bar}")
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
            print(_json({"id": nid, "depth": depth, "parent": tree.parent(nid),
                         "text": n.text, "logprob": n.logprob(), "origin": n.origin,
                         "bookmarked": n.bookmarked}))
        else:
            marks = ("*" if n.bookmarked else " ") + (">" if nid == tree.selected else " ")
            indent = "  " * min(rel, 40) if rel <= 40 else f"{'  ' * 40}[{rel}] "
            lp = n.logprob()
            mean = lp / n.n_tokens if lp is not None and n.n_tokens else None
            print(f"{indent}{inline(nid)} {marks}{n.origin[:4]:4s} {_prob(mean)} "
                  f"{short(n.text, 60)}")
        stack.extend((k, depth + 1) for k in reversed(tree.children(nid, args.order)))
    return 0


def _import_targets(args: argparse.Namespace, src: Path, results: list[Any]) -> list[Path]:
    """Where each imported tree goes: ``-o`` (a file, or a directory for several trees), else
    ``NAME.loomtui.json`` beside the original."""
    from loomtui.core.importers import session_paths

    if not args.output:
        return session_paths(src, results)
    out = Path(args.output)
    if len(results) == 1:
        return [out]
    if out.exists() and not out.is_dir():
        raise LoomError(f"{out}: {len(results)} trees need a directory, and this is a file")
    return session_paths(src, results, out)


def cmd_import(args: argparse.Namespace) -> int:
    from loomtui.core.importers import READERS, import_file
    from loomtui.core.text import inline

    src = Path(args.file)
    results = import_file(src, args.fmt, tree=args.tree, note=args.note)
    targets = _import_targets(args, src, results)
    if len(set(targets)) != len(targets):
        raise LoomError(f"two trees would be written to {targets[0].parent}/ under one name; "
                        "import them one at a time (--tree / --note)")
    for out in targets:
        if src.exists() and out.exists() and out.resolve() == src.resolve():
            raise LoomError(f"{out}: is the file being imported; it is never written")
        if out.exists() and not (args.output and args.force):
            hint = "pass --force to replace it" if args.output else "give -o SESSION"
            raise LoomError(f"{out}: already exists; {hint}")
    if args.output and len(results) > 1:
        out_dir = Path(args.output)
        if not out_dir.parent.is_dir():
            raise LoomError(f"{out_dir.parent}: no such directory")
        out_dir.mkdir(exist_ok=True)
    for out in targets:
        if not (out.parent if str(out.parent) else Path(".")).is_dir():
            raise LoomError(f"{out.parent}: no such directory")
    for imported, out in zip(results, targets, strict=True):
        title = READERS[imported.fmt].TITLE
        for note in imported.notes:
            print(f"loomtui: note: {inline(note)}", file=sys.stderr)
        _save(imported.tree, str(out))
        what = f" {inline(imported.name)!r}" if imported.name else ""
        print(f"imported {len(imported.tree)} nodes ({title}{what}) into {out}",
              file=sys.stderr)
    return 0


def _write_export(args: argparse.Namespace, data: bytes) -> None:
    """Write an export atomically (a reader never sees half a file; the old one is kept as
    .bak); never over the session being exported."""
    from loomtui.core.session.files import write_atomic

    out = Path(args.output)
    if out.exists() and out.resolve() == Path(args.session).resolve():
        raise LoomError(f"{args.output}: is the session being exported")
    write_atomic(out, data)


def cmd_export(args: argparse.Namespace) -> int:
    from loomtui.core.exporters import TREE_FORMATS, export_tree

    tree = _load(args.session)
    if args.format in TREE_FORMATS:
        if args.node is not None:
            raise LoomError(f"--node exports one branch; --format {args.format} writes the "
                            "whole tree (use --format text or markdown for a branch)")
        data = export_tree(tree, args.format)
        if args.output:
            _write_export(args, data)
        else:
            sys.stdout.buffer.write(data + b"\n")
        return 0
    from loomtui.core.export import export_branch

    text = export_branch(tree, _node_id(tree, args.node), args.format)
    if args.output:
        _write_export(args, text.encode("utf-8"))
    else:  # exact text to a file or pipe; control characters made visible on a terminal
        sys.stdout.write(terminal_safe(text) if is_tty(sys.stdout) else text)
    return 0


# ------------------------------------------------------------------ model commands
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
    """The model for a command: --model, else the session's own model when loomtui may load
    it because a file names it (``models.trusted_session_model``), else the default."""
    from loomtui.backends import load_predictor
    from loomtui.backends.models import trusted_session_model

    spec = _engine_spec(args, tree)
    if spec is not None:
        from loomtui.backends.engine import connect

        return connect(spec)
    model = getattr(args, "model", None)
    refused = None
    if model is None and tree is not None and tree.model:
        model = trusted_session_model(tree.model)
        refused = tree.model if model is None else None
    pred = load_predictor(model, threads=args.threads, device=args.device, dtype=args.dtype)
    if tree is not None and tree.model and tree.model != pred.model_id:
        named = short(tree.model, 80)
        if refused is not None:
            note = (f"the session names the model {named!r}, which is not a bundled or "
                    f"configured model (give it with --model to use it); using {pred.model_id}")
        else:
            note = (f"session was scored by {named}; using {pred.model_id} (stored "
                    "distributions keep the model that made them)")
        print(f"loomtui: note: {note}", file=sys.stderr)
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

    out = _new_file(args.session, args.force)
    if not args.prompt:
        raise LoomError("--prompt: the prompt is empty")
    pred = _predictor(args)
    tree = new_tree(pred, args.prompt)
    _notes(pred)
    from loomtui.core import session

    if args.force:
        session.save(tree, out)
    else:  # refused if another program made the file while the model loaded
        session.save(tree, out, expect=None)
    print(tree.root_id)
    return 0


def _grow(args: argparse.Namespace, compute: Callable[[Tree, Any, str], Any]) -> int:
    """Load the session (locked), run phase one (``compute``) and phase two, save, print the
    new ids."""
    from loomtui.core import grow

    with _editing(args.session) as tree:
        nid = _node_id(tree, args.node)
        pred = _predictor(args, tree)
        made = [node.id for node in grow.grow(tree, pred, compute(tree, pred, nid))]
        _notes(pred)
    for nid in made:  # only once the session holding them is saved
        print(nid)
    return 0


def cmd_expand(args: argparse.Namespace) -> int:
    from loomtui.core import grow

    def compute(tree: Tree, pred: Any, nid: str) -> grow.Growth:
        seed = args.seed if args.seed is not None else tree.seed
        sampler = _sampler(args, tree)
        try:
            sampler.validated(pred.context_window)
        except ValueError as exc:
            raise LoomError(f"{exc} (the model's window)") from None
        return grow.sample(tree, pred, nid, sampler, seed)

    return _grow(args, compute)


def cmd_pick(args: argparse.Namespace) -> int:
    from loomtui.core import grow

    if args.token is not None and not args.token:
        raise LoomError("--token: the token text is empty")

    def compute(tree: Tree, pred: Any, nid: str) -> grow.Growth:
        tid = grow.choose_token(tree, pred, nid, rank=args.rank, token_text=args.token)
        return grow.score_tokens(tree, pred, nid, [tid])

    return _grow(args, compute)


def cmd_type(args: argparse.Namespace) -> int:
    from loomtui.core import grow

    text = _text_option(args.text, args.escapes, "--text")
    if not text:
        raise LoomError("--text: there is no text to add")
    return _grow(args, lambda tree, pred, nid: grow.score_text(tree, pred, nid, text))


def _text_option(text: str, escapes: bool, option: str) -> str:
    if not escapes:
        return text
    try:
        return unescape(text)
    except ValueError as exc:
        raise LoomError(f"{option}: {exc}") from None


# ------------------------------------------------------------------ edit commands
def _edit(args: argparse.Namespace, fn: Callable[[Tree, str], Any]) -> int:
    """Apply one edit to a node of the session (locked load, edit, save)."""
    with _editing(args.session) as tree:
        result = fn(tree, _node_id(tree, args.node))
    for line in result if isinstance(result, list) else [result]:  # once saved
        if line is not None:
            print(inline(line))  # ids from the file: controls made visible
    return 0


def cmd_branch(args: argparse.Namespace) -> int:
    from loomtui.core import grow

    return _edit(args, lambda t, nid: grow.branch_at(t, nid, args.at, args.rank).id)


def cmd_edit(args: argparse.Namespace) -> int:
    text = _text_option(args.text, args.escapes, "--text")

    def edit(t: Tree, nid: str) -> str:
        if nid == t.root_id:
            return t.edit_prompt(text).id
        if text == t.node(nid).text:
            raise LoomError(f"node {nid}: the text is unchanged")
        return t.edit(nid, text).id

    return _edit(args, edit)


def cmd_split(args: argparse.Namespace) -> int:
    return _edit(args, lambda t, nid: t.split(nid, at_token=args.at, at_char=args.char).id)


def cmd_merge(args: argparse.Namespace) -> int:
    return _edit(args, lambda t, nid: t.merge(nid).id)


def cmd_delete(args: argparse.Namespace) -> int:
    def delete(t: Tree, nid: str) -> list[str]:
        doomed = t.delete(nid)
        print(f"deleted {_count(len(doomed), 'node')}", file=sys.stderr)
        return doomed

    return _edit(args, delete)


def cmd_note(args: argparse.Namespace) -> int:
    text = _text_option(args.text, args.escapes, "--text")
    return _edit(args, lambda t, nid: t.set_note(nid, text))


def cmd_bookmark(args: argparse.Namespace) -> int:
    return _edit(args, lambda t, nid: t.set_bookmark(nid, not args.off))


def cmd_select(args: argparse.Namespace) -> int:
    def select(t: Tree, nid: str) -> None:
        if t.selected != nid:
            t.select(nid)
            t.touch()

    return _edit(args, select)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


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
    if args.what == "import":
        from loomtui.bench.imports import main as bench_imports

        return bench_imports(args.sizes)
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
    from loomtui.backends import host_spawn

    host = None
    if not args.engine and is_tty(sys.stdin) and is_tty(sys.stdout):
        # First: the model process imports torch on the other core while the app starts
        # (the one ``loomtui.launch`` started, when it did).
        from loomtui.backends.hosted import ModelHost

        host = ModelHost.start(args.threads)
    host_spawn.discard()  # one started first and not taken has nothing to do
    from loomtui.ui.app import run_app

    return run_app(args.session, model=args.model, prompt=args.prompt, threads=args.threads,
                   device=args.device, dtype=args.dtype, sessions_dir=args.sessions_dir,
                   engine=args.engine, host=host)


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
            print(_json({
                "id": m.node_id, "depth": m.depth, "parent": tree.parent(m.node_id),
                "origin": node.origin, "start": m.start, "end": m.end,
                "node_start": m.node_start, "match": context[m.start:m.end], "text": node.text,
                "logprob": node.logprob(), "bookmarked": node.bookmarked, "tags": node.tags,
            }))
        else:
            if query.text:
                shown = _snippet(context, m.start, m.end)
            else:
                shown = _snippet(context, m.node_start, m.node_start + len(node.text),
                                 mark=False)
            print(f"{inline(m.node_id):>6} d{m.depth:<3} {node.origin[:7]:7s} {shown}")
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
    plan = _plan(args)  # bad input: one line, before the session or the model is loaded
    with _editing(args.session) as tree:
        rc, error = _run_grow(args, plan, tree)
    if error is not None:  # what was grown before it is saved
        raise error
    return rc


def _run_grow(args: argparse.Namespace, plan: Any, tree: Tree
              ) -> tuple[int, BaseException | None]:
    import threading

    from loomtui.core import autoloom

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
        error = out["error"]
        if not isinstance(error, Exception):
            raise error
        if not isinstance(error, LoomError):
            error = LoomError(f"autoloom stopped: {type(error).__name__}: {error}")
        return 2, error
    result: autoloom.Result = out["result"]
    print(f"autoloom: run {result.run} (tag autoloom:{result.run}, seed {result.seed}) made "
          f"{len(result.made)} nodes, {result.stopped}", file=sys.stderr)
    if result.best is not None:
        print(inline(result.best))
    return (130 if interrupted else 0), None


# ------------------------------------------------------------------ parser
def _bounded(kind: type, bound: Any) -> Callable[[str], Any]:
    """An argparse type: ``kind`` parsed, then checked against a limits.Bound."""
    def parse(raw: str) -> Any:
        try:
            value = kind(raw)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"must be {what}, got {raw!r}") from None
        if not bound.contains(value):
            raise argparse.ArgumentTypeError(f"must be in {bound.describe()}, got {raw}")
        return value

    parse.__name__ = bound.name
    return parse


def _at_least(low: int) -> Callable[[str], int]:
    return _bounded(int, Bound(f">= {low}", low, 2**63, integer=True))


def _model_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model directory, cached hub id, GGUF file, or 'bard'; "
                   "with --engine, the served model's name")
    p.add_argument("--engine", metavar="URL_OR_PROFILE",
                   help="an OpenAI-compatible engine: its /v1 URL or a profile of the config")
    p.add_argument("--threads", type=_bounded(int, Bound("threads", 1, 1024, integer=True)),
                   default=None, help="torch CPU threads (1..1024)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                   help="where the model runs (default: auto)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                   help="weights' precision (default: float32)")


def _edit_parser(sub: Any, name: str, help_: str, fn: Callable[..., int],
                 node_help: str = "node id (default: the selected node)") -> Any:
    p = sub.add_parser(name, help=help_, description=help_)
    p.add_argument("session")
    p.add_argument("--node", help=node_help)
    p.set_defaults(func=fn)
    return p


class UsageError(LoomError):
    """A command line that does not parse: one line, exit status 2 (not argparse's usage)."""


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No abbreviated options: ``--eng URL`` would be an engine here, yet the launcher
        # (``loomtui.launch``), which reads the command line before this parser exists, would
        # not see one and start the model process for nothing.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("loomtui").strip()
        raise UsageError(f"{command + ': ' if command else ''}{message} "
                         f"(see {self.prog} --help)")


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
    ap = _Parser(prog="loomtui", description=(__doc__ or "").splitlines()[0])
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
    p.add_argument("--top", type=_at_least(0), default=10, help="distribution entries to show")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("tree", help="an outline of the tree (id, marks, origin, per-token "
                                     "probability as a geometric mean, text)")
    p.add_argument("session")
    p.add_argument("--node", help="outline only this subtree")
    p.add_argument("--max-depth", type=_at_least(0))
    p.add_argument("--order", choices=("created", "probability"), default="created")
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    p.set_defaults(func=cmd_tree)

    from loomtui.core.importers import FORMATS

    p = sub.add_parser("import", help="import another loom's tree (format detected from the "
                                       "content): " + ", ".join(FORMATS))
    p.add_argument("file")
    p.add_argument("-o", "--output", help="session file to write (a directory when the file "
                                          "holds several trees); default: NAME.loomtui.json "
                                          "beside the original, never over an existing file")
    p.add_argument("--from", dest="fmt", choices=FORMATS, help="the file's format (default: "
                                                              "detected)")
    p.add_argument("--tree", help="basemode-loom: the tree to import (name or id; default: all)")
    p.add_argument("--note", help="loomsidian: the note to import (its path; default: all)")
    p.add_argument("--force", action="store_true", help="replace an existing -o session file")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("export", help="a branch as plain text or Markdown, or the whole tree "
                                       "as another loom's file")
    p.add_argument("session")
    p.add_argument("--node", help="last node of the branch (default: the selected node; "
                                  "text and markdown only)")
    p.add_argument("--format", choices=("text", "markdown", "pyloom", "loomsidian", "miniloom"),
                   default="text", help="text, markdown (a branch); pyloom (socketteer/loom), "
                                        "loomsidian (one note), miniloom (the whole tree)")
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
    p.add_argument("-n", type=_bounded(int, limits.N), dest="n",
                   help=f"rollouts ({limits.N.describe()})")
    p.add_argument("--max-tokens", type=_bounded(int, limits.MAX_TOKENS),
                   help="tokens per rollout (1..the model's window)")
    p.add_argument("--temperature", type=_bounded(float, limits.TEMPERATURE),
                   help=f"{limits.TEMPERATURE.describe()}; 0 is greedy")
    p.add_argument("--top-p", type=_bounded(float, limits.TOP_P),
                   help=f"{limits.TOP_P.describe()}; 1 is off")
    p.add_argument("--top-k", type=_bounded(int, limits.TOP_K), help="0 is off")
    p.add_argument("--min-p", type=_bounded(float, limits.MIN_P),
                   help=f"{limits.MIN_P.describe()}; 0 is off")
    p.add_argument("--seed", type=_bounded(int, limits.SEED),
                   help="base seed in [0, 2**63) (child i uses seed+i)")
    p.add_argument("--stop", action="append",
                   help=f"stop string (repeatable, at most {limits.MAX_STOPS}; \\n escapes)")
    _model_opts(p)
    p.set_defaults(func=cmd_expand)

    p = sub.add_parser("pick", help="add a one-token child chosen from the distribution")
    p.add_argument("session")
    p.add_argument("--node", help="parent node (default: the selected node)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--rank", type=_at_least(1), help="1 = most probable")
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

    p = _edit_parser(sub, "branch", "branch inside a node from its stored alternatives: split "
                     "before token AT and add the RANK-th alternative there (no model needed); "
                     "prints the new id", cmd_branch)
    p.add_argument("--at", type=_at_least(0), required=True, help="token index in the node")
    p.add_argument("--rank", type=_at_least(1), required=True,
                   help="which stored alternative (1 = most probable)")

    p = _edit_parser(sub, "edit", "edit a node's text: an edited fork beside it (the root, the "
                     "prompt, is edited in place and every score goes stale); prints its id",
                     cmd_edit)
    p.add_argument("--text", required=True)
    p.add_argument("--escapes", action="store_true", help="interpret \\n and other escapes")

    p = _edit_parser(sub, "split", "split a node in two at a token index (or a character "
                     "offset if it has no tokens); prints the tail's id", cmd_split)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--at", type=_at_least(1), help="token index where the tail starts")
    g.add_argument("--char", type=_at_least(1), help="character offset (untokenised text)")

    _edit_parser(sub, "merge", "merge a node with its chain of only children; prints its id",
                 cmd_merge)
    _edit_parser(sub, "delete", "delete a node and its subtree; prints the deleted ids",
                 cmd_delete, node_help="node id (required)").set_defaults(require_node=True)

    p = _edit_parser(sub, "note", "write a note on a node (an empty text removes it)", cmd_note)
    p.add_argument("--text", required=True)
    p.add_argument("--escapes", action="store_true", help="interpret \\n and other escapes")

    p = _edit_parser(sub, "bookmark", "bookmark a node (--off removes the bookmark)",
                     cmd_bookmark)
    p.add_argument("--off", action="store_true")

    _edit_parser(sub, "select", "make a node the selected one (the app opens there)",
                 cmd_select, node_help="node id")

    _search_parser(sub)
    _grow_parser(sub)

    p = sub.add_parser("models", help="the models loomtui can find, and which is the default")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("bench", help="benchmarks (ratios against a baseline in one run)")
    p.add_argument("what", choices=("sessions", "predictor", "app", "import", "search", "grow",
                                    "engine"))
    p.add_argument("--sizes", type=_at_least(1), nargs="*", default=[1000, 10000, 100000])
    p.add_argument("--model")
    p.add_argument("--threads", type=_bounded(int, Bound("threads", 1, 1024, integer=True)),
                   default=1)
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


@functools.cache
def _parser(version: str) -> argparse.ArgumentParser:
    """The parser, built once per process (building it costs more than most commands)."""
    parser = build_parser()
    parser.add_argument("--version", action="version", version=f"loomtui {version}")
    return parser


def _route(argv: list[str]) -> list[str]:
    """``loomtui [SESSION] [options]`` opens the app; anything else must be a command."""
    routed = route(argv)
    if routed is None:
        raise LoomError(f"unknown command {short(argv[0], 40)!r} (commands: "
                        f"{', '.join(COMMANDS)}; to open or start a session, give a path "
                        "ending in .json)")
    return routed


def main(argv: Sequence[str] | None = None) -> int:
    from loomtui import __version__

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv = _route(argv)
    except LoomError as exc:
        print(f"loomtui: error: {exc}", file=sys.stderr)
        return 2
    parser = _parser(__version__)
    try:
        args = parser.parse_args(argv)
        if getattr(args, "require_node", False) and args.node is None:
            raise UsageError(f"{args.command}: --node is required "
                             f"(see loomtui {args.command} --help)")
        return int(args.func(args) or 0)
    except LoomError as exc:
        print(f"loomtui: error: {inline(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("loomtui: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())

