"""The search step (`FastDecoder`) computes what `Seq2Seq.step` computes, so greedy and beam search give the same
translations through either; bf16 and int8 snapshots stay close to fp32."""
from __future__ import annotations

import pytest
import torch

from nlp_rnn.data import collate
from nlp_rnn.models import Seq2Seq, Seq2SeqConfig
from nlp_rnn.models.fast_decode import FastDecoder
from nlp_rnn.search import beam_search, greedy

V = 31
SRC = [[5, 6, 7, 8, 9, 10], [9, 10], [11, 12, 13], [4, 4, 4, 4, 20, 21, 22]]
VARIANTS = [(cell, attention, True) for cell in ("rnn", "lstm", "gru") for attention in ("none", "bahdanau", "luong")]
VARIANTS += [(cell, "luong", False) for cell in ("rnn", "lstm", "gru")]


def _model(cell="lstm", attention="luong", input_feed=True, layers=2, hidden=24) -> Seq2Seq:
    torch.manual_seed(0)
    return Seq2Seq(Seq2SeqConfig(src_vocab=V, tgt_vocab=V, cell=cell, attention=attention, input_feed=input_feed,
                                 hidden=hidden, embed=12, layers=layers)).eval()


def _steps(step, model, b, n=6):
    """Log-probabilities of n steps that follow the reference's greedy choices."""
    with torch.no_grad():
        mem, state = model.encode(b.src, b.src_len)
        ref_state, y, out = state, torch.full((b.src.size(0),), 2), []
        for _ in range(n):
            ref, ref_state, _ = model.step(y, ref_state, mem)
            logp, state, _ = step(y, state, mem)
            out.append((ref, logp))
            y = ref.argmax(-1)
    return out


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell,attention,input_feed", VARIANTS)
def test_fast_step_matches_the_model_step(cell, attention, input_feed, layers):
    model = _model(cell, attention, input_feed, layers)
    b = collate(SRC, None, range(len(SRC)))
    for ref, logp in _steps(FastDecoder(model).step, model, b):
        assert torch.allclose(logp, ref, atol=1e-5)


@pytest.mark.parametrize("cell,attention,input_feed", VARIANTS)
def test_search_through_the_fast_step_finds_the_same_translations(cell, attention, input_feed):
    model = _model(cell, attention, input_feed)
    b = collate(SRC, None, range(len(SRC)))
    fast = FastDecoder(model)
    assert [h.ids for h in greedy(model, b.src, b.src_len, fast_decoder=fast)] == \
        [h.ids for h in greedy(model, b.src, b.src_len, fast_decoder=model)]
    got = beam_search(model, b.src, b.src_len, beam=4, n_best=2, fast_decoder=fast)
    ref = beam_search(model, b.src, b.src_len, beam=4, n_best=2, fast_decoder=model)
    assert [[h.ids for h in hs] for hs in got] == [[h.ids for h in hs] for hs in ref]
    for hs, rs in zip(got, ref):
        assert [h.score for h in hs] == pytest.approx([h.score for h in rs], abs=1e-4)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bf16_fast_step_stays_close_to_fp32(cell):
    model = _model(cell, "luong")
    b = collate(SRC, None, range(len(SRC)))
    for ref, logp in _steps(FastDecoder(model, torch.bfloat16).step, model, b):
        assert logp.dtype == torch.float32
        assert (logp.exp() - ref.exp()).abs().max() < 0.02


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_int8_fast_step_uses_int8_products_and_stays_close(cell):
    model = _model(cell, "luong", hidden=256)  # large enough that the recurrent matrices pass the int8 size rule
    fast = FastDecoder(model.quantized())
    assert fast.x[1].q is not None and fast.generator.q is None  # a small output layer stays in float
    b = collate(SRC, None, range(len(SRC)))
    for ref, logp in _steps(fast.step, model, b):
        assert (logp.exp() - ref.exp()).abs().max() < 0.02


def test_a_float_model_gets_float_products():
    fast = FastDecoder(_model(hidden=128))
    assert all(p is None or p.q is None for p in fast.x + fast.h)
