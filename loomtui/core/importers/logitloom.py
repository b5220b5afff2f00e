"""logitloom trees (``*.ll.json``): ``{isLogitLoomTreeVersion: "logit-loom-tree-v1",
modelName, modelSettings: {kind, systemPrompt, prompt, prefill}, roots: [Token{id, text,
logprob, prob, branchFinished, children}]}``.

Every logitloom node is one token and siblings are the top-k alternatives at one position.
Here a chain of positions where one sibling goes on is one segment: each token of the
segment keeps its siblings as that position's alternatives (partial: ids unknown), a set of
siblings none of which goes on becomes the distribution after the segment (partial), and
where several siblings go on, each starts a child segment. The root holds the prompt
(``prompt`` + ``prefill`` for a base model, ``prefill`` for a chat model). Each token's id and
``branchFinished`` are kept under ``foreign["logitloom"]["tokens"]``, and ``modelSettings``
under the tree's.
"""

from __future__ import annotations

from typing import Any

from loomtui.core.importers.base import BadInput, Dropped, IdPool, Imported, finish, logprob
from loomtui.core.node import Alternatives, Choices, Distribution, Node

NAME = "logitloom"
TITLE = "logitloom"
VERSION = "logit-loom-tree-v1"


def fits(data: object) -> str | None:
    if not isinstance(data, dict):
        return "the top level is not an object"
    if data.get("isLogitLoomTreeVersion") == VERSION:
        return None
    return f"no isLogitLoomTreeVersion {VERSION!r}"


def _siblings(value: object, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise BadInput(f"{where}: children is not a list")
    for t in value:
        if not isinstance(t, dict) or not isinstance(t.get("text"), str):
            raise BadInput(f"{where}: a token is not an object with a text")
        kids = t.get("children", [])
        if not isinstance(kids, list):
            raise BadInput(f"token {t.get('id')!r:.40}: children is not a list")
    return value


def read(data: object, **_: Any) -> list[Imported]:
    why = fits(data)
    if why is not None:
        raise ValueError(f"not a logitloom tree: {why}")
    assert isinstance(data, dict)
    name = data.get("modelName")
    model = name if isinstance(name, str) else None
    given = data.get("modelSettings")
    settings: dict[str, Any] = given if isinstance(given, dict) else {}
    prompt = settings.get("prompt")
    prompt = prompt if isinstance(prompt, str) else ""
    prefill = settings.get("prefill")
    prefill = prefill if isinstance(prefill, str) else ""
    root_text = prefill if settings.get("kind") == "chat" else prompt + prefill
    pool = IdPool(())
    dropped = Dropped()
    root = Node(id=pool.fresh(), text=root_text, origin="prompt")
    nodes = [root]
    kids: dict[str, list[str]] = {}
    # each stack entry: (segment node, the sibling set that follows it)
    stack: list[tuple[Node, list[dict[str, Any]]]] = [
        (root, _siblings(data.get("roots", []), "roots"))]
    while stack:
        seg, sibs = stack.pop()
        while True:
            going = [t for t in sibs if t.get("children")]
            choices = _choices(sibs, f"node {seg.id!r}", dropped)
            if len(going) != 1 or seg is root:  # the root holds the prompt alone
                if choices is not None and len(choices):
                    seg.distribution = Distribution.from_choices(choices, model)
                    _keep(seg, sibs)
                for t in reversed(going):
                    child = Node(id=pool.fresh(), text="", origin="sampled", model=model)
                    nodes.append(child)
                    kids.setdefault(seg.id, []).append(child.id)
                    _append(child, t, sibs, choices, dropped)
                    stack.append((child, _siblings(t["children"], f"token {t.get('id')!r:.40}")))
                if seg.id in kids:
                    kids[seg.id].reverse()
                break
            _append(seg, going[0], sibs, choices, dropped)
            sibs = _siblings(going[0]["children"], f"token {going[0].get('id')!r:.40}")
    tree = finish(nodes, kids, root.id, [False] * len(nodes))
    tree.foreign[NAME] = {k: v for k, v in data.items() if k != "roots"}
    return [Imported(tree, NAME, notes=dropped.notes())]


def _choices(sibs: list[dict[str, Any]], where: str, dropped: Dropped) -> Choices | None:
    out = Choices()
    for t in sibs:
        lp = logprob(t.get("logprob"))
        if lp is None:
            dropped.add("tokens with a log-probability out of range", where)
            continue
        out.ids.append(None)
        out.texts.append(t["text"])
        out.logprobs.append(lp)
    return out


def _keep(seg: Node, sibs: list[dict[str, Any]]) -> None:
    kept = seg.foreign.setdefault(NAME, {"tokens": []})
    kept["tokens"].append([{k: v for k, v in t.items() if k not in ("text", "logprob",
                                                                      "children")}
                           for t in sibs])


def _append(seg: Node, token: dict[str, Any], sibs: list[dict[str, Any]],
            choices: Choices | None, dropped: Dropped) -> None:
    """Add ``token`` (one of ``sibs``) to the end of segment ``seg``."""
    offsets = seg.token_offsets if seg.token_offsets is not None else []
    lps = seg.token_logprobs if seg.token_logprobs is not None else []
    alts = seg.alternatives if seg.alternatives is not None else Alternatives()
    offsets.append(len(seg.text))
    seg.text += token["text"]
    lp = logprob(token.get("logprob"))
    lps.append(lp)
    alts.append(Choices(list(choices.ids), list(choices.texts), list(choices.logprobs))
                if choices is not None else Choices())
    seg.token_offsets, seg.token_logprobs, seg.alternatives = offsets, lps, alts
    _keep(seg, sibs)
