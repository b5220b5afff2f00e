"""HTTP to an OpenAI-compatible engine: timeouts, bounded retries, SSE streams, one-line errors.

Every failure becomes one :class:`~loomtui.core.errors.ModelError` line that names the engine
and the problem (unreachable, not an OpenAI-compatible server, refused key, bad request...).
The API key is sent as a bearer token and never appears in a message: any text from the
server is cut to one line, made terminal-safe, and has the key masked.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from loomtui.backends.engine_config import EngineSpec
from loomtui.core.errors import ModelError
from loomtui.core.text import one_line

RETRIES = 3
"""Extra attempts after a 429 or a 5xx."""
CONNECT_RETRIES = 1
"""Extra attempts after a refused or dropped connection (before any data arrived)."""
BACKOFF = 0.5
"""Seconds before the first retry; doubled each time (with jitter), or the server's
Retry-After when it is shorter than 10 s."""
RETRY_STATUS = (429, 500, 502, 503, 504)


class Cancelled(Exception):
    """The stream was closed because the user cancelled."""


class EngineHTTPError(ModelError):
    """A refused request, with its status and the server's message (one line)."""

    def __init__(self, message: str, status: int, detail: str) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


def server_message(resp: httpx.Response) -> str:
    """The error text of a response: OpenAI's ``{"error": {"message"}}``, FastAPI's
    ``{"detail"}``, or the body's first line."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:500]
    if isinstance(body, dict):
        err = body.get("error", body.get("detail", body.get("message")))
        if isinstance(err, dict):
            err = err.get("message", err)
        if isinstance(err, list) and err and isinstance(err[0], dict):  # pydantic's list
            err = "; ".join(f"{'.'.join(map(str, e.get('loc', [])))}: {e.get('msg', '')}"
                            for e in err[:3])
        if err is not None:
            return str(err)[:500]
    return json.dumps(body)[:500]


class EngineClient:
    """A pooled httpx client for one engine; thread-safe (one per predictor)."""

    def __init__(self, spec: EngineSpec, transport: httpx.BaseTransport | None = None) -> None:
        self.spec = spec
        self.base = spec.url
        self.root = spec.url[: -len("/v1")] if spec.url.endswith("/v1") else spec.url
        self._key = spec.api_key()
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        self.http = httpx.Client(
            headers=headers, transport=transport, follow_redirects=False,
            timeout=httpx.Timeout(spec.timeout, connect=5.0),
            limits=httpx.Limits(max_connections=spec.concurrency + 4,
                                max_keepalive_connections=spec.concurrency + 4))
        self.requests = 0
        self._count = threading.Lock()

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------ messages
    def clean(self, text: str) -> str:
        """Server text made fit for a one-line message: the key masked, controls visible."""
        if self._key:
            text = text.replace(self._key, "***")
        return one_line(text, 300)

    def url(self, path: str, *, root: bool = False) -> str:
        return (self.root if root else self.base) + path

    def _refused(self, resp: httpx.Response, path: str) -> ModelError:
        detail = self.clean(server_message(resp))
        where = self.spec.named()
        status = resp.status_code
        if status in (401, 403):
            hint = (f"check ${self.spec.api_key_env}" if self.spec.api_key_env else
                    "it needs an API key: name its environment variable in an engine "
                    "profile's api_key_env")
            return EngineHTTPError(f"{where} refused the request (HTTP {status}: {detail}); "
                                   f"{hint}", status, detail)
        if status == 404 and path in ("/models", "/completions"):
            low = detail.lower()
            if "model" in low and ("exist" in low or "not found" in low):
                return EngineHTTPError(f"{where}: {detail}", status, detail)
            return EngineHTTPError(
                f"{where} does not answer the OpenAI API (HTTP 404 on {self.url(path)}); "
                "give the engine's /v1 URL, e.g. http://127.0.0.1:8000/v1", status, detail)
        if ("context" in detail.lower() and ("length" in detail.lower()
                                             or "exceed" in detail.lower())):
            return EngineHTTPError(f"{where}: the context is too long for the model's window "
                                   f"({detail})", status, detail)
        return EngineHTTPError(f"{where} refused the request (HTTP {status}: {detail})",
                               status, detail)

    def _unreachable(self, exc: Exception) -> ModelError:
        kind = type(exc).__name__
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return ModelError(f"cannot reach {self.spec.named()}: {self.clean(str(exc)) or kind}"
                              "; is the engine running?")
        if isinstance(exc, httpx.TimeoutException):
            return ModelError(f"{self.spec.named()} did not answer within "
                              f"{self.spec.timeout:g} s ({kind})")
        return ModelError(f"lost the connection to {self.spec.named()} "
                          f"({kind}: {self.clean(str(exc))})")

    # ------------------------------------------------------------ requests
    def _wait(self, attempt: int, resp: httpx.Response | None) -> None:
        delay = BACKOFF * 2**attempt * (0.75 + 0.5 * random.random())
        if resp is not None:
            after = resp.headers.get("retry-after", "")
            if after.replace(".", "", 1).isdigit() and float(after) < 10:
                delay = float(after)
        time.sleep(delay)

    def _send(self, method: str, path: str, body: Any, root: bool, stream: bool
              ) -> httpx.Response:
        """Send with bounded retries on refused connections, 429 and 5xx; returns an ok
        response (open when ``stream``), or raises one ModelError line."""
        url = self.url(path, root=root)
        for attempt in range(RETRIES + 1):
            with self._count:
                self.requests += 1
            try:
                req = self.http.build_request(method, url, json=body)
                resp = self.http.send(req, stream=stream)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as exc:
                if attempt < CONNECT_RETRIES:
                    self._wait(attempt, None)
                    continue
                raise self._unreachable(exc) from None
            except httpx.HTTPError as exc:
                raise self._unreachable(exc) from None
            if resp.is_success:
                return resp
            if stream:
                resp.read()
            resp.close()
            if resp.status_code in RETRY_STATUS and attempt < RETRIES:
                self._wait(attempt, resp)
                continue
            raise self._refused(resp, path)
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, path: str, *, root: bool = False) -> Any:
        return self._json(self._send("GET", path, None, root, False), path)

    def post(self, path: str, body: dict[str, Any], *, root: bool = False) -> Any:
        return self._json(self._send("POST", path, body, root, False), path)

    def _json(self, resp: httpx.Response, path: str) -> Any:
        try:
            return resp.json()
        except ValueError:
            raise ModelError(f"{self.spec.named()} answered {path} with something that is "
                             "not JSON; is it an OpenAI-compatible engine?") from None

    @contextmanager
    def stream(self, path: str, body: dict[str, Any],
               opened: Callable[[httpx.Response | None], None] | None = None,
               ) -> Iterator[Iterator[dict[str, Any]]]:
        """POST ``body`` with ``stream: true`` and yield its server-sent events as dicts.
        ``opened(response)`` is called once the response is open (so another thread can close
        it to cancel: reading then raises :class:`Cancelled`) and ``opened(None)`` at the end."""
        resp = self._send("POST", path, body, False, True)
        if opened is not None:
            opened(resp)
        try:
            yield self._events(resp, path)
        finally:
            if opened is not None:
                opened(None)
            resp.close()

    def _events(self, resp: httpx.Response, path: str) -> Iterator[dict[str, Any]]:
        try:
            for line in resp.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    event = json.loads(data)
                except ValueError:
                    raise ModelError(f"{self.spec.named()} sent a stream event that is not "
                                     f"JSON: {self.clean(data)}") from None
                if isinstance(event, dict) and "error" in event:
                    err = event["error"]
                    msg = err.get("message", err) if isinstance(err, dict) else err
                    raise ModelError(f"{self.spec.named()} failed: {self.clean(str(msg))}")
                yield event
        except httpx.StreamClosed:
            raise Cancelled() from None
        except httpx.HTTPError as exc:
            if resp.is_closed:
                raise Cancelled() from None
            raise self._unreachable(exc) from None
