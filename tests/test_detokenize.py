"""Linear-time decoding of growing token sequences, on both shipped tokenizers."""

from __future__ import annotations

import random

import pytest

from loomtui.backends import load_predictor
from loomtui.backends.detokenize import REPLACEMENT, IncrementalText, token_starts

MODELS = ["bard", pytest.param("smollm2", marks=pytest.mark.slow)]
TEXT = ("KING. Naïve café — 日本語 🙂🎉 done.\n\tTabbed   spaces, \"quotes\" and 'apostrophes'; "
        "ﬁ ligature, Ω, ∑ x², end")


@pytest.fixture(scope="module", params=MODELS)
def pred(request):
    return load_predictor(request.param)


def check_starts(decode, ids: list[int], starts: list[int], text: str) -> None:
    assert len(starts) == len(ids)
    assert starts == sorted(starts) and all(0 <= s <= len(text) for s in starts)
    for i in range(1, len(ids)):
        prefix = decode(ids[:i])
        if not prefix.endswith(REPLACEMENT) and text.startswith(prefix):
            assert starts[i] == len(prefix), i


def test_incremental_text_is_the_decoded_text(pred):
    ids = pred.tokenize(TEXT)
    inc = IncrementalText(pred.decode)
    streamed = "".join(inc.push(t) for t in ids)
    assert streamed == inc.text == pred.decode(ids) == TEXT
    check_starts(pred.decode, ids, inc.starts, TEXT)
    assert token_starts(pred.decode, ids, TEXT) == inc.starts


def test_random_tokens_split_characters_and_stay_consistent(pred):
    rng = random.Random(0)
    for _ in range(20):
        ids = [rng.randrange(pred.vocab_size) for _ in range(rng.randrange(1, 60))]
        text = pred.decode(ids)
        starts = token_starts(pred.decode, ids, text)
        check_starts(pred.decode, ids, starts, text)
        inc = IncrementalText(pred.decode)
        for t in ids:
            inc.push(t)
        assert text.startswith(inc.text)  # only an incomplete character is held back


def test_a_decoder_that_cleans_up_falls_back_to_exact_prefixes():
    words = ["a", " b", " ,", "c"]

    def decode(ids: list[int]) -> str:  # drops the space before punctuation, like cleanup
        return "".join(words[i] for i in ids).replace(" ,", ",")

    ids = [0, 1, 2, 3]
    assert token_starts(decode, ids, decode(ids)) == [0, 1, 3, 4]
