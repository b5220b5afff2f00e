"""Key-to-repaint latency in a real terminal: a loomtui app running in a tmux pane.

    tmux -L lat new-session -d -s b -x 140 -y 40 "loomtui open SESSION --model bard"
    python scripts/key_latency.py lat b rest|autosave|model [ROUNDS] [KEYS]

It attaches a tmux control-mode client (no polling, no process per sample, so the measuring
adds almost nothing) and times each key from being sent to the first output carrying the
info bar's " · depth " text (the info bar is redrawn on every selection, and only then).
The keys are l j j k k h (start on a node with children and siblings), or KEYS (``hhhlll`` at
the end of a chain). Modes:

* ``rest``: the keys alone;
* ``autosave``: a bookmark toggle (a change: autosave starts 0.3 s later), then the keys, while
  the session is written (use a big session: ``loomtui bench`` makes 40,000-node ones);
* ``model``: ``g`` (the root), ``e`` (expand with the session's sampler), then the keys while
  it samples, then esc.

Prints p50, p95 and max in ms, and each key's time. A trivial Textual app measures 5-6 ms here.
"""

from __future__ import annotations

import os
import select
import statistics
import subprocess
import sys
import time

KEYS = "ljjkkh"


def main(argv: list[str]) -> int:
    if len(argv) < 4:
        print(__doc__)
        return 2
    sock, target, mode = argv[1], argv[2], argv[3]
    rounds = int(argv[4]) if len(argv) > 4 else 4
    keys = argv[5] if len(argv) > 5 else KEYS
    client = subprocess.Popen(["tmux", "-L", sock, "-C", "attach", "-t", target],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    assert client.stdin is not None and client.stdout is not None
    fd = client.stdout.fileno()
    pending = b""

    def lines(timeout: float) -> list[bytes]:
        nonlocal pending
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return []
        pending += os.read(fd, 1 << 20)
        *done, pending = pending.split(b"\n")
        return done

    def drain(quiet: float = 0.2) -> None:
        while lines(quiet):
            pass

    def send(key: str) -> None:
        client.stdin.write(f"send-keys -t {target} {key}\n".encode())  # type: ignore[union-attr]

    def timed(key: str) -> float:
        drain(0)
        t0 = time.perf_counter()
        send(key)
        seen = b""  # tmux may split one repaint, even the word, over %output lines
        while time.perf_counter() - t0 < 5:
            for line in lines(0.5):
                if line.startswith(b"%output ") and line.count(b" ") >= 2:
                    seen += line.split(b" ", 2)[2]
                    if b"depth" in seen:
                        return (time.perf_counter() - t0) * 1000
        return 5000.0

    drain()
    out: list[float] = []
    for _ in range(rounds):
        if mode == "model":
            send("g")
            time.sleep(0.3)
            send("e")
            time.sleep(0.3)
        elif mode == "autosave":
            send("b")
            time.sleep(0.35)
        for key in keys * (1 if mode == "autosave" else 2):
            out.append(timed(key))
            time.sleep(0.05)
        if mode == "model":
            send("Escape")
            time.sleep(1.0)
        drain()
    client.stdin.write(b"detach\n")
    p95 = statistics.quantiles(out, n=20)[18]
    print(f"{mode}: n={len(out)} p50 {statistics.median(out):.1f} ms  p95 {p95:.1f} ms  "
          f"max {max(out):.1f} ms")
    print(" ".join(f"{k}{v:.0f}" for k, v in zip(keys * len(out), out, strict=False)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
