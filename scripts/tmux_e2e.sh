#!/usr/bin/env bash
# End-to-end check of the real app in tmux: open a new session, expand, pick a token, undo,
# save, quit, reopen; checks the screen (capture-pane) and the saved file. Exits non-zero on
# any failure. Usage: scripts/tmux_e2e.sh  (needs tmux; uses the bundled model "bard").
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's loomtui
[ -x "$PY" ] || PY=python3
command -v tmux >/dev/null || { echo "tmux_e2e: tmux is not installed (apt-get install -y tmux)"; exit 2; }

WORK="$(mktemp -d)"
SOCK="loomtui-e2e-$$"
SESSION_FILE="$WORK/e2e.json"
T="tmux -L $SOCK"
cleanup() { $T kill-server 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

fail() { echo "tmux_e2e: FAIL: $*"; echo "--- screen ---"; $T capture-pane -p -t e2e 2>/dev/null || true; exit 1; }
screen() { $T capture-pane -p -t e2e; }
# wait_for TEXT [SECONDS]: until TEXT is on screen
wait_for() {
  local deadline=$((SECONDS + ${2:-30}))
  until screen | grep -qF -- "$1"; do
    [ $SECONDS -lt $deadline ] || fail "did not see '$1'"
    sleep 0.2
  done
}
keys() { $T send-keys -t e2e "$@"; }
nodes() { "$PY" -m loomtui.cli tree "$SESSION_FILE" --json | wc -l; }

start() {
  $T new-session -d -s e2e -x 140 -y 40 \
    "cd '$WORK' && '$PY' -m loomtui.cli open '$SESSION_FILE' --model bard --threads 1 $*; sleep 30"
}

echo "tmux_e2e: new session"
start --prompt "'ROMEO: But soft'"
wait_for "bard · ready" 60
wait_for "Next token after 0"
[ -f "$SESSION_FILE" ] || fail "the new session was not autosaved"

echo "tmux_e2e: sampler n=2, expand"
keys s
wait_for "Sampler (saved in the session)"
keys C-u; sleep 0.3; keys 2   # the n field has focus: set it to 2
for _ in $(seq 1 50); do screen | grep -qE "rollouts \(n\) +2 " && break; sleep 0.2; done
screen | grep -qE "rollouts \(n\) +2 " || fail "could not type n=2"
keys C-s
wait_for "sampler: temperature"
keys e
for _ in $(seq 1 100); do [ "$(nodes)" -ge 3 ] && break; sleep 0.2; done
[ "$(nodes)" -eq 3 ] || fail "expected root + 2 sampled children in the saved file, got $(nodes)"

echo "tmux_e2e: pick token 1 (on the first child)"
keys l
sleep 0.5
keys 1
for _ in $(seq 1 100); do [ "$(nodes)" -ge 4 ] && break; sleep 0.2; done
[ "$(nodes)" -eq 4 ] || fail "pick did not add a node (have $(nodes))"
wait_for "picked"

echo "tmux_e2e: undo, save, quit"
keys u
wait_for "undo: pick"
keys C-s
wait_for "saved $SESSION_FILE"
[ "$(nodes)" -eq 3 ] || fail "after undo + save expected 3 nodes, got $(nodes)"
keys q
sleep 1
screen | grep -qF "Unsaved changes" && fail "quit asked about unsaved changes after autosave"

echo "tmux_e2e: check the saved file"
"$PY" - "$SESSION_FILE" <<'PYEOF' || fail "saved file check failed"
import json, subprocess, sys
path = sys.argv[1]
show = json.loads(subprocess.check_output([sys.executable, "-m", "loomtui.cli", "show", path,
                                           "--node", "0", "--json"]))
assert show["context"] == "ROMEO: But soft", show["context"]
assert len(show["children"]) == 2, show["children"]
data = json.load(open(path))
assert data["graph"]["sampler"]["n"] == 2, data["graph"]["sampler"]
kids = [json.loads(line) for line in subprocess.check_output(
    [sys.executable, "-m", "loomtui.cli", "tree", path, "--json"]).splitlines()]
assert sorted(k["origin"] for k in kids) == ["prompt", "sampled", "sampled"], kids
print("tmux_e2e: file ok:", len(kids), "nodes")
PYEOF

echo "tmux_e2e: reopen"
$T kill-server 2>/dev/null || true
# a new server on the same socket while the old one is still going away fails
for _ in $(seq 1 50); do $T has-session 2>/dev/null || break; sleep 0.1; done
sleep 0.5
start
wait_for "bard · ready" 60
wait_for "3 nodes"
wait_for "But soft"

echo "tmux_e2e: more alternatives at the token cursor (+)"
keys l
sleep 0.3
keys "]"
wait_for "+: more alternatives here"
keys +
wait_for "computed on demand"

echo "tmux_e2e: the open dialog lists the session's directory"
keys C-o
wait_for "tab: complete"
wait_for "e2e.json"
keys Escape
sleep 0.3
keys q
echo "tmux_e2e: PASS"
