"""A :class:`~loomtui.core.predictor.Predictor` over an OpenAI-compatible inference engine.

vLLM, SGLang, llama.cpp (``llama-server`` or ``llama-cpp-python``'s server) and hosted APIs all
serve ``/v1/completions`` with ``logprobs``; this predictor drives any of them over HTTP:

- ``distribution``: a one-token greedy completion with ``logprobs`` = the engine's cap, kept as
  a *partial* distribution (top entries only; entropy unknown; mass = their sum);
- ``sample``: one streamed request per child, child i with seed ``seed + i``, sent
  concurrently (bounded), every sampler setting explicit; ``cancel`` closes the streams;
- ``score``: ``echo`` with ``logprobs`` where the engine supports it (llama-cpp-python's echo
  puts each position's distribution one entry late: corrected); elsewhere text is added
  unscored;
- token ids from the engine's tokenizer endpoint where it has one, else ids stay None.

The context is sent as text (every engine takes it, and sibling requests share the prefix the
engine's own prefix cache reuses). Nothing here keeps state per node: it is not a
:class:`~loomtui.core.predictor.CachingPredictor`. Thread-safe: calls may come from several
workers at once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import httpx

from loomtui.backends import engine_wire as wire
from loomtui.backends.engine_client import Cancelled, EngineClient, EngineHTTPError
from loomtui.backends.engine_config import EngineSpec, model_id
from loomtui.core.errors import ModelError, TreeError
from loomtui.core.node import Alternatives, Choices, Distribution, Sampler
from loomtui.core.predictor import OnToken, Segment
from loomtui.core.tree import Tree

DEFAULT_WINDOW = 4096
"""The context window assumed when the engine does not say (profile ``context_window``)."""
ALTERNATIVES = 5
TOKEN_CACHE = 50_000
DIGITS = 5


@dataclass(slots=True)
class EngineStats:
    """What the engine reported doing (``usage``), for benchmarks."""

    requests: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        with self.lock:
            self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            self.completion_tokens += int(usage.get("completion_tokens") or 0)
            details = usage.get("prompt_tokens_details") or {}
            if isinstance(details, dict):
                self.cached_tokens += int(details.get("cached_tokens") or 0)


class EnginePredictor:
    """Predictor over an engine's ``/v1/completions``; construct with :func:`connect`."""

    def __init__(self, spec: EngineSpec, client: EngineClient, served: str, kind: str,
                 window: int) -> None:
        self.spec = spec
        self.client = client
        self.served = served
        self.kind = kind
        self.model_id = model_id(spec.url, served)
        self.context_window = window
        self.max_logprobs = spec.max_logprobs or wire.DEFAULT_MAX_LOGPROBS.get(kind, 20)
        self.concurrency = 1 if kind == "llama-cpp-python" else spec.concurrency
        self.n_alternatives = min(ALTERNATIVES, self.max_logprobs)
        self.notes: list[str] = []
        """Things the user should be told once (a refused logprobs count, unscored text)."""
        self.stats = EngineStats()
        self._lock = threading.Lock()
        self._pieces: OrderedDict[int, str] = OrderedDict()
        self._bos: list[int] | None = None
        self.echo = kind in wire.ECHO
        """Whether the engine scores given text (``echo`` with ``logprobs``)."""

    # ------------------------------------------------------------ misc
    def close(self) -> None:
        self.client.close()

    def _note(self, text: str) -> None:
        with self._lock:
            if text not in self.notes:
                self.notes.append(text)

    def _complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST a non-streamed completion; lowers ``logprobs`` once to a cap the engine
        states, and says so."""
        try:
            out = self.client.post("/completions", body)
        except EngineHTTPError as exc:
            cap = wire.logprobs_cap(exc.detail) if exc.status == 400 else None
            if cap is None or cap >= body["logprobs"]:
                raise
            self.max_logprobs = cap
            self.n_alternatives = min(self.n_alternatives, cap)
            self._note(f"{self.spec.named()} returns at most {cap} logprobs per token")
            out = self.client.post("/completions", {**body, "logprobs": cap})
        self.stats.add(out.get("usage") if isinstance(out, dict) else None)
        with self.stats.lock:
            self.stats.requests += 1
        return out

    def _choice(self, out: Any) -> dict[str, Any]:
        choices = out.get("choices") if isinstance(out, dict) else None
        if not choices or not isinstance(choices[0], dict):
            raise ModelError(f"{self.spec.named()} answered without choices; is it an "
                             "OpenAI-compatible completions engine?")
        return choices[0]

    def _tokens(self, choice: dict[str, Any]) -> list[wire.TokenInfo]:
        toks = wire.parse_logprobs(choice.get("logprobs"))
        if toks is None:
            raise ModelError(f"{self.spec.named()} returned no logprobs; loomtui needs an "
                             "engine that reports them for /v1/completions")
        return toks

    # ------------------------------------------------------------ context
    def _context(self, tree: Tree, node_id: str) -> str:
        with tree.lock:
            text = tree.context_text(node_id)
        if not text:
            raise TreeError("the context is empty: give the root a prompt")
        return text

    # ------------------------------------------------------------ tokenizer
    @property
    def has_tokenizer(self) -> bool:
        return self.kind in wire.TOKENIZE

    def _tokenize_raw(self, text: str) -> list[int]:
        if not self.has_tokenizer:
            raise ModelError(f"{self.spec.named()} has no tokenizer endpoint; tokens are known "
                             "by their text only (pick by rank, or type text)")
        path = wire.TOKENIZE[self.kind][0]
        if self.kind == "llama-cpp-python":
            body: dict[str, Any] = {"input": text, "model": self.served}
        elif self.kind == "llama-server":
            body = {"content": text, "add_special": False}
        else:
            body = {"prompt": text, "model": self.served, "add_special_tokens": False}
        out = self.client.post(path, body, root=True)
        toks = out.get("tokens") if isinstance(out, dict) else None
        if not isinstance(toks, list) or not all(isinstance(t, int) for t in toks):
            raise ModelError(f"{self.spec.named()}: {path} answered without a token list")
        return toks

    def tokenize(self, text: str) -> list[int]:
        """``text``'s token ids by the engine's tokenizer, without a leading BOS it adds."""
        if self._bos is None:
            self._bos = self._tokenize_raw("") if text else []
        ids = self._tokenize_raw(text)
        if self._bos and ids[: len(self._bos)] == self._bos:
            ids = ids[len(self._bos):]
        return ids

    def decode(self, token_ids: list[int]) -> str:
        if not token_ids:
            return ""
        if not self.has_tokenizer:
            raise ModelError(f"{self.spec.named()} has no detokenizer endpoint")
        path = wire.TOKENIZE[self.kind][1]
        body: dict[str, Any] = {"tokens": list(token_ids)}
        if self.kind != "llama-server":
            body["model"] = self.served
        out = self.client.post(path, body, root=True)
        text = out.get("text", out.get("prompt", out.get("content"))) if isinstance(
            out, dict) else None
        if not isinstance(text, str):
            raise ModelError(f"{self.spec.named()}: {path} answered without text")
        return text

    def token_text(self, token_id: int) -> str:
        with self._lock:
            s = self._pieces.get(token_id)
        if s is None:
            s = self.decode([token_id])
            with self._lock:
                self._pieces[token_id] = s
                while len(self._pieces) > TOKEN_CACHE:
                    self._pieces.popitem(last=False)
        return s

    def _ids_for(self, text: str, n_tokens: int) -> list[int] | None:
        """Token ids for a segment of ``n_tokens`` tokens: the engine's tokenisation of its
        text when it has as many tokens, else None (tokens known by text only)."""
        if not self.has_tokenizer or not text:
            return None
        ids = self.tokenize(text)
        return ids if len(ids) == n_tokens else None

    # ------------------------------------------------------------ distributions
    def _choices(self, top: list[tuple[str, float, int | None]], k: int) -> Choices:
        top = top[:k]
        return Choices([i for _, _, i in top], [t for t, _, _ in top],
                       [round(min(lp, 0.0), DIGITS) for _, lp, _ in top])

    def _dist(self, top: list[tuple[str, float, int | None]], k: int) -> Distribution:
        return Distribution.from_choices(self._choices(top, k), self.model_id)

    def distribution(self, tree: Tree, node_id: str, top_k: int = 20) -> Distribution:
        text = self._context(tree, node_id)
        k = max(1, min(top_k, self.max_logprobs))
        out = self._complete(wire.completion_body(self.kind, self.served, text, wire.GREEDY,
                                                  0, k))
        toks = self._tokens(self._choice(out))
        if not toks:
            raise ModelError(f"{self.spec.named()} generated no token after node {node_id} "
                             "(the end of its window?)")
        return self._dist(toks[0].top, min(k, self.max_logprobs))

    # ------------------------------------------------------------ scoring
    def score(self, tree: Tree, node_id: str, text: str) -> Segment:
        """Score ``text`` after ``node_id`` with ``echo``; on an engine without prompt
        logprobs the text comes back unscored (and :attr:`notes` says so)."""
        if not text:
            raise TreeError("there is no text to score")
        context = self._context(tree, node_id)
        if not self.echo:
            self._note(f"{self.spec.named()} cannot score given text (no echo with logprobs): "
                       "typed text is added unscored")
            return Segment(text, None, None, [], None, finish="scored")  # type: ignore[arg-type]
        k = self.n_alternatives
        body = wire.completion_body(self.kind, self.served, context + text, wire.GREEDY, 0, k,
                                    echo=True)
        try:
            choice = self._choice(self._complete(body))
        except EngineHTTPError as exc:
            if exc.status == 400 and "echo" in exc.detail.lower():
                self.echo = False
                return self.score(tree, node_id, text)
            raise
        return self._scored(context, text, self._tokens(choice))

    def _scored(self, context: str, text: str, toks: list[wire.TokenInfo]) -> Segment:
        """The segment of ``text``'s tokens in an echoed answer over ``context + text`` plus
        one generated token (whose alternatives are the distribution after ``text``)."""
        full = context + text
        starts, pos = [], 0
        for t in toks:  # offsets recomputed from the texts (engines count differently)
            starts.append(pos)
            pos += len(t.text)
        n_prompt = next((i for i, s in enumerate(starts) if s >= len(full)), len(toks))
        if "".join(t.text for t in toks[:n_prompt]) != full:
            raise ModelError(f"{self.spec.named()} echoed a prompt that differs from the one "
                             "sent; cannot tell which scores are the text's")
        first = next((i for i in range(n_prompt) if starts[i] >= len(context)), n_prompt)
        if (first < n_prompt and starts[first] != len(context)) or (
                first and starts[first - 1] + len(toks[first - 1].text) > len(context)):
            raise ModelError(f"{self.spec.named()} tokenises the text together with the end "
                             "of the context (a token spans both); add it from a nearby "
                             "boundary instead")
        lps: list[float | None] = []
        alts = Alternatives()
        idx = range(first, n_prompt)
        if self.kind == "llama-cpp-python":
            # Measured (0.3.36): entry i holds the distribution *after* token i (its
            # token_logprobs are of token i under that, meaningless), and the generated
            # token has no entry. So token i's score is looked up in entry i - 1.
            for i in idx:
                before = toks[i - 1].top if i else []
                lp = next((x for t, x, _ in before if t == toks[i].text), None)
                if lp is None and i:  # not among the top entries: ask for all of them there
                    lp = self._logprob_after(full[: starts[i]], toks[i].text)
                lps.append(None if lp is None else round(min(lp, 0.0), DIGITS))
                alts.append(self._choices(before, self.n_alternatives))
            after = toks[n_prompt - 1] if n_prompt else None
        else:  # entry i: token i's score and the distribution it was drawn from
            for i in idx:
                lp = toks[i].logprob
                lps.append(None if lp is None else round(min(lp, 0.0), DIGITS))
                alts.append(self._choices(toks[i].top, self.n_alternatives))
            after = toks[n_prompt] if n_prompt < len(toks) else None
        dist = self._dist(after.top, self.n_alternatives) if after is not None and (
            after.top) else None
        offsets = [starts[i] - len(context) for i in idx]
        return Segment(text=text, token_ids=self._ids_for(text, len(offsets)),  # type: ignore[arg-type]
                       token_offsets=offsets, token_logprobs=lps,  # type: ignore[arg-type]
                       alternatives=alts, distribution=dist, finish="scored")

    def _logprob_after(self, prefix: str, token: str) -> float | None:
        """The log-probability of ``token`` after ``prefix`` from the whole distribution there
        (llama-cpp-python returns all of it for a large ``logprobs``); None if not found."""
        body = wire.completion_body(self.kind, self.served, prefix, wire.GREEDY, 0, 1 << 20)
        toks = self._tokens(self._choice(self._complete(body)))
        top = toks[0].top if toks else []
        return next((x for t, x, _ in top if t == token), None)

    def score_tokens(self, tree: Tree, node_id: str, token_ids: list[int]) -> Segment:
        """Score given token ids: their text, scored as typed text (the engine re-tokenises
        it; the ids are kept when it gives the same number of tokens)."""
        text = self.decode(list(token_ids))
        seg = self.score(tree, node_id, text)
        if seg.token_offsets is not None and len(seg.token_offsets) == len(token_ids):
            seg.token_ids = list(token_ids)
        return seg

    # ------------------------------------------------------------ sampling
    def sample(
        self, tree: Tree, node_id: str, n: int, sampler: Sampler, seed: int,
        on_token: OnToken | None = None, cancel: threading.Event | None = None,
    ) -> list[Segment]:
        """``n`` rollouts, one streamed request each (child i: seed ``seed + i``), at most
        :attr:`concurrency` at a time. ``cancel`` closes the open streams; the tokens that
        arrived are kept. Any failure cancels the others and raises one ModelError."""
        sampler = sampler.validated()
        context = self._context(tree, node_id)
        cancel = cancel or threading.Event()
        failed: list[BaseException] = []  # the first failure; the others follow from it
        rows = [Segment("", [], [], [], Alternatives(), seed=seed + i) for i in range(n)]
        open_streams: dict[int, httpx.Response] = {}
        streams_lock = threading.Lock()
        callback_lock = threading.Lock()

        def close_all() -> None:
            with streams_lock:
                for resp in list(open_streams.values()):
                    resp.close()

        def opened(i: int, resp: httpx.Response | None) -> None:
            with streams_lock:
                if resp is None:
                    open_streams.pop(i, None)
                else:
                    open_streams[i] = resp
                    if cancel.is_set() or failed:
                        resp.close()

        def one(i: int) -> None:
            if cancel.is_set() or failed:
                rows[i].finish = "cancelled"
                return
            body = wire.completion_body(self.kind, self.served, context, sampler, seed + i,
                                        self.n_alternatives, stream=True)
            try:
                self._stream_row(body, rows[i], i, sampler, on_token, callback_lock,
                                 lambda r: opened(i, r))
            except Exception as exc:
                with streams_lock:
                    first = not failed and not (cancel.is_set() or isinstance(exc, Cancelled))
                    if first:
                        failed.append(exc)
                rows[i].finish = "cancelled"
                if first:
                    close_all()

        pool = ThreadPoolExecutor(max_workers=max(1, min(n, self.concurrency)),
                                  thread_name_prefix="loomtui-engine")
        try:
            pending = {pool.submit(one, i) for i in range(n)}
            while pending:
                _, pending = wait(pending, timeout=0.05)
                if cancel.is_set():
                    close_all()
        finally:
            pool.shutdown(wait=True)
        if failed:
            err = failed[0]
            if isinstance(err, ModelError):
                raise err
            raise ModelError(f"{self.spec.named()}: {type(err).__name__}: "
                             f"{self.client.clean(str(err))}") from err
        for row in rows:
            self._finish_row(row)
        return rows

    def _stream_row(self, body: dict[str, Any], row: Segment, i: int, sampler: Sampler,
                    on_token: OnToken | None, callback_lock: threading.Lock,
                    opened: Any) -> None:
        reason: Any = None
        ids: list[int | None] = []
        with self.client.stream("/completions", body, opened) as events:
            with self.stats.lock:
                self.stats.requests += 1
            for event in events:
                self.stats.add(event.get("usage"))
                choices = event.get("choices") or []
                if not choices:
                    continue
                choice = choices[0]
                toks = wire.parse_logprobs(choice.get("logprobs"))
                piece = choice.get("text") or ""
                if toks is None and piece:
                    raise ModelError(f"{self.spec.named()} streamed text without logprobs; "
                                     "loomtui needs an engine that reports them")
                for t in toks or []:
                    row.token_offsets.append(len(row.text))
                    row.text += t.text
                    row.token_logprobs.append(None if t.logprob is None  # type: ignore[arg-type]
                                              else round(min(t.logprob, 0.0), DIGITS))
                    assert row.alternatives is not None
                    row.alternatives.append(self._choices(t.top, self.n_alternatives))
                    ids.append(t.id)
                    if t.raw is not None:
                        if row.token_bytes is None:
                            row.token_bytes = []
                        row.token_bytes.append(t.raw)
                if toks and on_token is not None:
                    with callback_lock:
                        on_token(i, row)
                if choice.get("finish_reason"):
                    reason = choice["finish_reason"]
        if reason is None:
            raise ModelError(f"{self.spec.named()} ended a stream before it finished (a "
                             "llama-cpp-python server does this to a request when another "
                             "arrives: start it with --interrupt_requests False)")
        row.finish = wire.finish_of(reason, sampler.stop, len(row.token_offsets),
                                    sampler.max_tokens)
        if ids and all(i is not None for i in ids):  # the engine said which (llama-server)
            row.token_ids = ids  # type: ignore[assignment]

    def _finish_row(self, row: Segment) -> None:
        """Token ids for a finished row, where the engine's tokenizer gives them exactly as
        many tokens; bytes kept only where they differ from the text."""
        if row.token_bytes is not None and (
                len(row.token_bytes) != len(row.token_offsets)
                or b"".join(row.token_bytes) == row.text.encode("utf-8", "surrogatepass")):
            row.token_bytes = None
        if not row.token_ids or len(row.token_ids) != len(row.token_offsets):
            ids = self._ids_for(row.text, len(row.token_offsets)) if row.text else None
            row.token_ids = ids  # type: ignore[assignment]


def connect(spec: EngineSpec, transport: httpx.BaseTransport | None = None) -> EnginePredictor:
    """Contact the engine once (``/v1/models``): check it speaks the OpenAI API, pick the
    served model (the spec's, or the only one), detect its kind and window."""
    client = EngineClient(spec, transport)
    try:
        models = client.get("/models")
        data = models.get("data") if isinstance(models, dict) else None
        if not isinstance(data, list):
            raise ModelError(f"{spec.named()} answered /v1/models without a model list; is "
                             "it an OpenAI-compatible engine?")
        names = [str(m.get("id")) for m in data if isinstance(m, dict) and m.get("id")]
        if spec.model:
            if names and spec.model not in names:
                raise ModelError(f"{spec.named()} does not serve {spec.model!r}; it serves "
                                 f"{', '.join(map(repr, names[:8]))}")
            served = spec.model
        elif len(names) == 1:
            served = names[0]
        else:
            listed = ", ".join(map(repr, names[:8])) or "none"
            raise ModelError(f"{spec.named()} serves {len(names)} models ({listed}); choose "
                             "one with --model")
        kind = spec.kind or wire.kind_of(models)
        window = spec.context_window or wire.context_window(models, served) or DEFAULT_WINDOW
    except BaseException:
        client.close()
        raise
    return EnginePredictor(spec, client, served, kind, window)
