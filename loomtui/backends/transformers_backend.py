"""A :class:`~loomtui.core.predictor.Predictor` for any transformers causal LM.

Every node's KV slice is kept in a tree-wide :class:`KVStore`, so a context's cache is its
path's slices concatenated and only uncached nodes run through the model. Sampling n children
prefills once and expands the cache to the batch. A context longer than the model's window
keeps its most recent tokens (and is not cached, since positions shift).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch

from loomtui.backends.cache_adapter import (
    KV,
    Buffers,
    CacheAdapter,
    LeanLayer,
    buffers,
    from_cache,
    kv_slice,
    over,
    to_cache,
)
from loomtui.backends.detokenize import IncrementalText, token_bytes, token_starts
from loomtui.backends.kv_store import KVStore, Slice
from loomtui.backends.lean_forward import SharedPrefix
from loomtui.backends.sampling import draw, filtered_logprobs, generator
from loomtui.core.errors import ModelError, TreeError
from loomtui.core.node import Alternatives, Choices, Distribution, Sampler
from loomtui.core.predictor import OnToken, Segment
from loomtui.core.tree import Tree

FOREIGN_CACHE = 100_000
"""Token ids kept for nodes this model re-tokenises (another model's, untokenised), LRU."""
DIGITS = 5
"""Stored log-probabilities are rounded to this many decimals (sessions stay small)."""


@dataclass(slots=True)
class _Context:
    cache: Any  # a transformers cache holding the context (None for an empty context)
    length: int  # positions in the cache
    last_logits: torch.Tensor  # [vocab] float32, after the context's last token
    truncated: int  # oldest context tokens dropped to fit the window
    cacheable: bool  # False when truncated: new slices would have shifted positions


@dataclass(slots=True)
class _Seen:
    """A node on a context's path, as read when the context was assembled."""

    id: str
    text: str
    ids: list[int]  # its token ids for this model
    fresh: bool  # it had no token ids: it takes these
    scores: bool  # its tokens still need log-probabilities and alternatives


@dataclass(slots=True)
class _Hot:
    """The last context assembled for the model: its buffers and the store slices laid out in
    them from position 0. The next context on the same path (a sibling, a child) copies only the
    slices that differ, and the model writes its new tokens straight after them."""

    bufs: Buffers
    slices: list[Slice]


@dataclass(slots=True)
class _Handle:
    kv: KV
    start: int
    last_logits: torch.Tensor | None


class TransformersPredictor:
    """Predictor over a loaded transformers model and tokenizer."""

    def __init__(self, model: Any, tokenizer: Any, model_id: str, *,
                 kv_budget_bytes: int = 256 * 2**20, alternatives: int = 5,
                 lean: bool = True) -> None:
        self.model = model
        self.tok = tokenizer
        self.model_id = model_id
        cfg = model.config
        window: Any = getattr(cfg, "max_position_embeddings", None) or getattr(
            cfg, "n_positions", 2048)
        self.context_window = int(window)
        self.vocab_size = int(model.get_output_embeddings().weight.shape[0])
        self.device = next(model.parameters()).device
        self.adapter = CacheAdapter(model, lean=lean)
        self.store = KVStore(kv_budget_bytes)
        self.n_alternatives = alternatives
        self.eos_ids = self._eos_ids()
        self.lock = threading.RLock()
        self._hot: _Hot | None = None
        self._pieces: dict[int, str] = {}
        self._foreign: OrderedDict[tuple[str, str], list[int]] = OrderedDict()

    # ------------------------------------------------------------ tokenizer
    def _eos_ids(self) -> set[int]:
        ids = set()
        for source in (getattr(self.model, "generation_config", None), self.model.config,
                       self.tok):
            e = getattr(source, "eos_token_id", None)
            if isinstance(e, int):
                ids.add(e)
            elif isinstance(e, (list, tuple)):
                ids.update(x for x in e if isinstance(x, int))
        return ids

    def tokenize(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False))

    def decode(self, token_ids: list[int]) -> str:
        return self.tok.decode(token_ids, skip_special_tokens=False,
                               clean_up_tokenization_spaces=False)

    def token_text(self, token_id: int) -> str:
        s = self._pieces.get(token_id)
        if s is None:
            s = self._pieces[token_id] = self.decode([token_id])
        return s

    def bytes_if_split(self, token_ids: list[int], text: str) -> list[bytes] | None:
        """Each token's raw bytes when ``text`` (their decoding) is not exact: a token that
        ends inside a UTF-8 character decodes to U+FFFD, and the node keeps the bytes so that
        the branch's text is decoded whole. None when the text is exact (or the vocabulary is
        not byte-level)."""
        if "\ufffd" not in text:
            return None
        pieces = token_bytes(self.tok.convert_ids_to_tokens(list(token_ids)))
        if pieces is None or b"".join(pieces) == text.encode("utf-8", "surrogatepass"):
            return None
        return pieces

    def offsets(self, token_ids: list[int], text: str) -> list[int]:
        """Where each token starts in ``text`` (= decode(token_ids)), monotone and in range."""
        return token_starts(self.decode, token_ids, text)

    # ------------------------------------------------------------ distributions
    def _distribution(self, logits: torch.Tensor, top_k: int) -> Distribution:
        lp = torch.log_softmax(logits.float(), -1)
        entropy = float(-(lp.exp() * lp).nan_to_num().sum())
        vals, idx = torch.topk(lp, min(top_k, lp.shape[-1]))
        ids = idx.tolist()
        lps = [round(x, DIGITS) for x in vals.tolist()]
        return Distribution(
            Choices(ids, [self.token_text(t) for t in ids], lps),
            round(entropy, DIGITS), round(float(vals.exp().sum()), DIGITS), self.model_id)

    def _alternatives(self, lp: torch.Tensor) -> Alternatives:
        """Top alternatives for each row of ``lp`` ([seq, vocab] log-probs)."""
        vals, idx = torch.topk(lp, min(self.n_alternatives, lp.shape[-1]), dim=-1)
        out = Alternatives()
        for row_ids, row_lps in zip(idx.tolist(), vals.tolist(), strict=True):
            out.append(Choices(row_ids, [self.token_text(t) for t in row_ids],
                               [round(x, DIGITS) for x in row_lps]))
        return out

    def distribution(self, tree: Tree, node_id: str, top_k: int = 20) -> Distribution:
        with self.lock, torch.inference_mode():
            ctx = self._context(tree, node_id, want_cache=False)
            return self._distribution(ctx.last_logits, top_k)

    # ------------------------------------------------------------ context and cache
    def protect(self, tree: Tree, node_id: str) -> None:
        """Never evict the slices on ``node_id``'s path (the selected branch)."""
        self.store.protected = set(tree.path(node_id))

    def adopt(self, tree: Tree, node_id: str, segment: Segment) -> None:
        """Keep what the model computed for ``segment`` (its KV) under the node now holding it."""
        handle = getattr(segment, "handle", None)
        if isinstance(handle, _Handle):
            with self.lock:
                with tree.lock:  # read atomically; tokenise (if need be) outside the lock
                    raw = [(n.id, n.text, n.token_ids, n.model)
                           for n in map(tree.node, tree.path(node_id))]
                ids = self._ids_of(*raw[-1])
                parent = raw[-2][0] if len(raw) > 1 else None
                start = sum(len(self._ids_of(*r)) for r in raw[:-1]) if parent else -1
                # Only if the node still holds exactly those tokens at that position (it may
                # have been split or moved while this waited for the lock).
                if ids == list(segment.token_ids) and start == handle.start:
                    self.store.put(node_id, parent, handle.kv, handle.start, ids,
                                   handle.last_logits)
        segment.handle = None

    def _ours(self, token_ids: list[int] | None, model: str | None) -> bool:
        """Whether a node's token ids come from this model's tokenizer."""
        return token_ids is not None and model in (None, self.model_id)

    def _ids(self, node: Any) -> list[int]:
        return self._ids_of(node.id, node.text, node.token_ids, node.model)

    def _ids_of(self, node_id: str, text: str, token_ids: list[int] | None,
                model: str | None) -> list[int]:
        """Token ids of a node for this model. Nodes another model made keep their stored ids
        and scores (marked with that model); for context they are re-tokenised here, as are
        nodes with no token ids yet (imported, typed offline)."""
        if self._ours(token_ids, model):
            return token_ids  # type: ignore[return-value]
        key = (node_id, text)
        ids = self._foreign.get(key)
        if ids is None:
            while len(self._foreign) >= FOREIGN_CACHE:
                self._foreign.popitem(last=False)
            ids = self._foreign[key] = self.tokenize(text)
        else:
            self._foreign.move_to_end(key)
        return ids

    def _snapshot(self, tree: Tree, node_id: str) -> list[_Seen]:
        """The path to ``node_id`` as this model sees it. The fields are read atomically
        (the app's main thread may edit the tree while a worker runs the model); tokenising
        happens after, outside the tree's lock, and its result is stored only if the node is
        unchanged."""
        with tree.lock:
            raw = [(n.id, n.text, n.token_ids, n.model,
                    n.token_logprobs is None or n.alternatives is None,
                    n.scores_kept(self.model_id) if n.token_ids is None else None)
                   for n in map(tree.node, tree.path(node_id))]
        out = []
        for nid, text, token_ids, model, unscored, kept in raw:
            fresh = token_ids is None
            ids = self._ids_of(nid, text, token_ids, model)
            if ids and max(ids) >= self.vocab_size:  # a file's ids, checked before the model
                raise TreeError(f"node {nid!r:.40}: token id {max(ids)} is outside the "
                                f"vocabulary of {self.model_id} ({self.vocab_size} tokens)")
            scores = fresh or (self._ours(token_ids, model) and unscored)
            out.append(_Seen(nid, text, ids, fresh, scores))
            if fresh:  # untokenised nodes take this model's tokens; others' scores are kept
                tree.update_if(nid, {"text": text, "token_ids": None}, token_ids=ids,
                               token_offsets=self.offsets(ids, text), token_logprobs=None,
                               alternatives=None, model=self.model_id, scores=kept,
                               token_bytes=None)
        return out

    def _context(self, tree: Tree, node_id: str, reserve: int = 0,
                 want_cache: bool = True) -> _Context:
        """The KV cache and final logits of ``node_id``'s context, running only what is
        not cached. ``reserve`` positions are kept free for tokens to come. Without
        ``want_cache`` a fully cached context returns its logits only (no cache is built)."""
        nodes = self._snapshot(tree, node_id)
        path = [n.id for n in nodes]
        seg_ids = [n.ids for n in nodes]
        total = sum(map(len, seg_ids))
        room = self.context_window - reserve
        if room < 1:
            raise ModelError(f"{reserve} new tokens do not fit the model's window "
                             f"of {self.context_window}")
        if total > room:
            return self._truncated_context(seg_ids, room)
        if total == 0:
            raise TreeError("the context is empty: give the root a prompt")
        # The longest prefix of the path whose slices are valid.
        parts: list[Slice] = []
        start = 0
        parent: str | None = None
        last_logits = None
        for node, ids in zip(nodes, seg_ids, strict=True):
            s = self.store.valid(node.id, parent, start, ids)
            if s is None or (ids and s.last_logits is None):
                break
            parts.append(s)
            if s.last_logits is not None:
                last_logits = s.last_logits
            start += len(ids)
            parent = node.id
        j = len(parts)
        if j == len(nodes):
            self.store.stats.hits += 1
            assert last_logits is not None
            cache = self._assemble(parts, start, reserve) if want_cache else None
            return _Context(cache, start, last_logits, 0, True)
        self.store.stats.misses += 1
        run = [t for ids in seg_ids[j:] for t in ids]
        if not run:  # only nodes without tokens are left: the context ends where it did
            assert last_logits is not None
            for k in range(j, len(nodes)):
                self.store.put(path[k], path[k - 1], [], start, [], last_logits)
            cache = self._assemble(parts, start, reserve) if want_cache else None
            return _Context(cache, start, last_logits, 0, True)
        # Logits are needed at each node's last token, and everywhere in nodes still to score
        # (imported or retokenised ones).
        keep: list[int] = []
        pos = 0
        for node, ids in zip(nodes[j:], seg_ids[j:], strict=True):
            if ids and node.scores:
                keep.extend(range(pos, pos + len(ids)))
            elif ids:
                keep.append(pos + len(ids) - 1)
            pos += len(ids)
        row = {p: i for i, p in enumerate(keep)}
        cache = self._assemble(parts, start, len(run) + reserve)
        logits, cache = self.adapter.forward(
            torch.tensor([run], device=self.device), cache, start, keep)
        self.store.stats.tokens_run += len(run)
        kv = from_cache(cache)
        logits = logits[0]
        prev = last_logits
        pos = 0
        laid_out = True  # the new slices go on the hot list while each was stored
        for k, (node, ids) in enumerate(zip(nodes[j:], seg_ids[j:], strict=True), start=j):
            n = len(ids)
            parent = path[k - 1] if k else None  # the parent this KV was computed under
            if n == 0:
                self.store.put(node.id, parent, [], start + pos, [], prev)
            else:
                last = logits[row[pos + n - 1]]
                if node.scores:
                    seg_logits = logits[row[pos] : row[pos + n - 1] + 1]
                    first = prev[None] if prev is not None else torch.full_like(
                        seg_logits[:1], float("nan"))
                    self._fill_scores(tree, node, torch.cat([first, seg_logits[:-1]]),
                                      first_unknown=prev is None)
                self.store.put(node.id, parent, kv_slice(kv, start + pos, start + pos + n),
                               start + pos, ids, last.clone())
                prev = last
                pos += n
            stored = self.store.slices.get(node.id)
            laid_out = laid_out and stored is not None
            if laid_out:
                parts.append(stored)  # type: ignore[arg-type]
        self._keep_hot(cache, parts)
        return _Context(cache, start + pos, logits[-1].clone(), 0, True)

    def _assemble(self, parts: list[Slice], length: int, extra: int) -> Any:
        """A cache holding ``parts`` (``length`` positions) with room for ``extra`` more,
        reusing the hot context's buffers: only slices that differ from it are copied."""
        if length == 0:
            return None
        need = length + max(extra, 1)
        hot, self._hot = self._hot, None  # until the buffers hold ``parts`` again
        if hot is not None and hot.bufs[0][0].shape[2] >= need:
            common, pos = 0, 0
            for a, b in zip(hot.slices, parts, strict=False):
                if a is not b:
                    break
                common += 1
                pos += len(a.ids)
            for s in parts[common:]:
                n = len(s.ids)
                if not n:
                    continue
                for (kbuf, vbuf), (k, v) in zip(hot.bufs, s.kv, strict=True):
                    kbuf[:, :, pos : pos + n] = k
                    vbuf[:, :, pos : pos + n] = v
                pos += n
            bufs = hot.bufs
        else:
            # Some slack, so that a slightly longer sibling fits the same buffers.
            bufs = buffers([s.kv for s in parts], need + need // 4 + 32)
        self._hot = _Hot(bufs, list(parts))
        return over(bufs, length, self.adapter.lean_only)

    def _keep_hot(self, cache: Any, parts: list[Slice]) -> None:
        """Remember ``cache``'s buffers as holding ``parts`` (after a forward wrote them)."""
        layers = getattr(cache, "layers", None)
        if layers and all(isinstance(layer, LeanLayer) for layer in layers):
            self._hot = _Hot([layer.buffers for layer in layers], parts)
        else:  # pragma: no cover - a cache we do not own
            self._hot = None

    def _fill_scores(self, tree: Tree, node: _Seen, before: torch.Tensor,
                     first_unknown: bool) -> None:
        """Store each token's log-probability and alternatives, unless the node changed."""
        lp = torch.log_softmax(before, -1)
        picked = lp.gather(-1, torch.tensor(node.ids, device=lp.device)[:, None])[:, 0].tolist()
        lps: list[float | None] = [round(x, DIGITS) for x in picked]
        alts = self._alternatives(lp.nan_to_num(float("-inf")))
        if first_unknown:
            lps[0] = None
            alts.ids[0], alts.texts[0], alts.logprobs[0] = [], [], []
        tree.update_if(node.id, {"text": node.text, "token_ids": node.ids},
                       token_logprobs=lps, alternatives=alts, model=self.model_id)

    def _truncated_context(self, seg_ids: list[list[int]], room: int) -> _Context:
        ids = [t for seg in seg_ids for t in seg]
        dropped = len(ids) - room
        ids = ids[dropped:]
        logits, cache = self.adapter.forward(torch.tensor([ids], device=self.device), None, 0,
                                             [len(ids) - 1])
        self.store.stats.misses += 1
        self.store.stats.tokens_run += len(ids)
        return _Context(cache, len(ids), logits[0, -1].clone(), dropped, False)

    # ------------------------------------------------------------ scoring
    def score(self, tree: Tree, node_id: str, text: str) -> Segment:
        ids = self.tokenize(text)
        if not ids:
            raise TreeError("there is no text to score")
        return self.score_tokens(tree, node_id, ids)

    def score_tokens(self, tree: Tree, node_id: str, token_ids: list[int]) -> Segment:
        """Score given tokens as a continuation of ``node_id``: each token's log-probability,
        its alternatives, and the distribution after them."""
        bad = [t for t in token_ids if not 0 <= t < self.vocab_size]
        if bad:
            raise TreeError(f"token id {bad[0]} is outside the vocabulary")
        with self.lock, torch.inference_mode():
            ctx = self._context(tree, node_id, reserve=len(token_ids))
            logits, cache = self.adapter.forward(
                torch.tensor([token_ids], device=self.device), ctx.cache, ctx.length)
            self.store.stats.tokens_run += len(token_ids)
            logits = logits[0]
            before = torch.cat([ctx.last_logits[None], logits[:-1]])
            lp = torch.log_softmax(before, -1)
            picked = lp.gather(-1, torch.tensor(token_ids, device=lp.device)[:, None])[:, 0]
            text = self.decode(token_ids)
            seg = Segment(
                text=text, token_ids=list(token_ids), token_offsets=self.offsets(token_ids, text),
                token_bytes=self.bytes_if_split(token_ids, text),
                token_logprobs=[round(x, DIGITS) for x in picked.tolist()],
                alternatives=self._alternatives(lp),
                distribution=self._distribution(logits[-1], 20),
                finish="scored", truncated_context=ctx.truncated,
            )
            if ctx.cacheable:
                seg.handle = _Handle(kv_slice(from_cache(cache), ctx.length,
                                              ctx.length + len(token_ids)),
                                     ctx.length, logits[-1].clone())
            return seg

    # ------------------------------------------------------------ sampling
    def sample(
        self, tree: Tree, node_id: str, n: int, sampler: Sampler, seed: int,
        on_token: OnToken | None = None, cancel: threading.Event | None = None,
    ) -> list[Segment]:
        """``n`` rollouts from one prefill; rollout i uses seed ``seed + i``."""
        sampler.validated()
        max_tokens = min(sampler.max_tokens, self.context_window // 2)
        with self.lock, torch.inference_mode():
            ctx = self._context(tree, node_id, reserve=max_tokens)
            # Rows' own tokens start at ``offset`` in the cache their KV is sliced from.
            offset = ctx.length
            if ctx.cache is None:
                cache = None
            elif self.adapter.lean is not None:  # the context held once for all rows
                cache, offset = SharedPrefix(from_cache(ctx.cache), n, max_tokens + 1), 0
            else:
                cache = to_cache(from_cache(ctx.cache), max_tokens + 1, batch=n,
                                 lean=self.adapter.lean_only)
            logits = ctx.last_logits[None].expand(n, -1)
            gens = [generator(seed + i) for i in range(n)]
            rows = [Segment("", [], [], [], Alternatives(), seed=seed + i,
                            truncated_context=ctx.truncated) for i in range(n)]
            active = [True] * n
            final: list[torch.Tensor | None] = [None] * n
            length = ctx.length
            texts = [IncrementalText(self.decode) for _ in range(n)]
            for _ in range(max_tokens):
                if cancel is not None and cancel.is_set():
                    for i in range(n):
                        if active[i]:
                            rows[i].finish = "cancelled"
                            active[i] = False
                    break
                raw = torch.log_softmax(logits, -1)
                toks = draw(filtered_logprobs(logits, sampler, raw).cpu(), gens).tolist()
                alt_vals, alt_idx = torch.topk(raw, self.n_alternatives, dim=-1)
                picked = raw.gather(-1, torch.tensor(toks, device=raw.device)[:, None])[:, 0]
                just_done = []
                for i, t in enumerate(toks):
                    if not active[i]:
                        continue
                    if t in self.eos_ids:
                        rows[i].finish = "eos"
                        active[i] = False
                        final[i] = logits[i].clone()
                        continue
                    r = rows[i]
                    r.token_ids.append(t)
                    r.token_logprobs.append(round(float(picked[i]), DIGITS))
                    ids = alt_idx[i].tolist()
                    assert r.alternatives is not None
                    r.alternatives.append(Choices(
                        ids, [self.token_text(x) for x in ids],
                        [round(x, DIGITS) for x in alt_vals[i].tolist()]))
                    added = texts[i].push(t)
                    r.text = texts[i].text
                    if added and sampler.stop and any(
                            s in r.text[max(0, len(r.text) - len(added) - len(s) + 1):]
                            for s in sampler.stop):
                        r.finish = "stop"
                        just_done.append(i)
                    elif len(r.token_ids) >= max_tokens:
                        r.finish = "length"
                        just_done.append(i)
                    if on_token is not None:
                        on_token(i, r)
                if not any(active):  # only end-of-text rows left: nothing to feed
                    break
                step = toks
                logits_all, cache = self.adapter.forward(
                    torch.tensor(step, device=self.device)[:, None], cache, length)
                self.store.stats.tokens_run += n
                length += 1
                logits = logits_all[:, -1]
                for i in just_done:
                    final[i] = logits[i].clone()
                    active[i] = False
                if not any(active):
                    break
            kv_all = from_cache(cache) if cache is not None else []
            for i, r in enumerate(rows):
                r.text = self.decode(r.token_ids)
                r.token_bytes = self.bytes_if_split(r.token_ids, r.text)
                r.token_offsets = (texts[i].starts if texts[i].text == r.text
                                   else self.offsets(r.token_ids, r.text))
                if final[i] is not None:
                    r.distribution = self._distribution(final[i], 20)
                    if ctx.cacheable and r.token_ids:
                        r.handle = _Handle(
                            kv_slice(kv_all, offset, offset + len(r.token_ids), row=i),
                            ctx.length, final[i])
            return rows
