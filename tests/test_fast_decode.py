"""The search step (`FastDecoder`) computes what `Seq2Seq.step` computes, so greedy and beam search give the same
translations through either; bf16 and int8 snapshots stay close to fp32."""
from __future__ import annotations

import pytest
import torch

from nlp_rnn.data import collate
from nlp_rnn.models import Seq2Seq, Seq2SeqConfig
from nlp_rnn.models.fast_decode import FastDecoder
from nlp_rnn.models.shortlist import Shortlist
from nlp_rnn.search import beam_search, greedy

V = 31
SRC = [[5, 6, 7, 8, 9, 10], [9, 10], [11, 12, 13], [4, 4, 4, 4, 20, 21, 22]]
VARIANTS = [(cell, attention, True) for cell in ("rnn", "lstm", "gru") for attention in ("none", "bahdanau", "luong")]
VARIANTS += [(cell, "luong", False) for cell in ("rnn", "lstm", "gru")]


class _Plain:
    """Search through `Seq2Seq.step` itself, the reference the fast step is checked against."""

    def __init__(self, model):
        self.step = model.step

    def prepare(self, mem):
        return mem


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
        [h.ids for h in greedy(model, b.src, b.src_len, fast_decoder=_Plain(model))]
    got = beam_search(model, b.src, b.src_len, beam=4, n_best=2, fast_decoder=fast)
    ref = beam_search(model, b.src, b.src_len, beam=4, n_best=2, fast_decoder=_Plain(model))
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


# ---------------------------------------------------------------------------------------------- shortlist

def test_shortlist_ranks_the_target_words_that_travel_with_a_source_word():
    # source 5 always comes with target 9; 6 with 10; 7 appears with everything
    src = [[5, 7], [5, 7], [6, 7], [6, 7], [5, 6, 7]]
    tgt = [[9, 11], [9, 12], [10, 11], [10, 12], [9, 10]]
    sl = Shortlist.build(src, tgt, src_vocab=8, tgt_vocab=13, per_source=2, frequent=1)
    assert sl.candidates[5, 0].item() == 9 and sl.candidates[6, 0].item() == 10
    assert (sl.candidates[0] == -1).all()  # never seen: nothing
    batch = sl.for_batch(torch.tensor([[5, 0]]))
    assert 9 in batch.tolist() and 10 not in batch.tolist()
    assert {1, 2, 3} <= set(batch.tolist())  # specials are always in
    assert Shortlist.from_tensors(sl.tensors()).candidates.equal(sl.candidates)


def _everything(vocab: int) -> Shortlist:
    return Shortlist(torch.zeros(V, 0, dtype=torch.int32), torch.arange(vocab, dtype=torch.int32))


def test_search_over_a_full_shortlist_is_search_over_the_vocabulary():
    model = _model("lstm", "luong")
    b = collate(SRC, None, range(len(SRC)))
    fast, full = FastDecoder(model), _everything(V)
    ref = greedy(model, b.src, b.src_len, fast_decoder=fast)
    got = greedy(model, b.src, b.src_len, fast_decoder=fast, shortlist=full)
    assert [h.ids for h in got] == [h.ids for h in ref]
    assert [h.score for h in got] == pytest.approx([h.score for h in ref], abs=1e-4)
    ref = beam_search(model, b.src, b.src_len, beam=3, fast_decoder=fast)
    got = beam_search(model, b.src, b.src_len, beam=3, fast_decoder=fast, shortlist=full)
    assert [[h.ids for h in hs] for hs in got] == [[h.ids for h in hs] for hs in ref]


def test_search_over_a_shortlist_only_produces_its_words():
    model = _model("gru", "bahdanau")
    b = collate(SRC, None, range(len(SRC)))
    allowed = [3, 7, 8, 9, 15]
    shortlist = Shortlist(torch.zeros(V, 0, dtype=torch.int32), torch.tensor(allowed, dtype=torch.int32))
    fast = FastDecoder(model)
    for hyps in ([[h] for h in greedy(model, b.src, b.src_len, max_len_ratio=1.0, fast_decoder=fast,
                                      shortlist=shortlist)],
                 beam_search(model, b.src, b.src_len, beam=3, max_len_ratio=1.0, fast_decoder=fast,
                             shortlist=shortlist)):
        assert all(set(h.ids) <= set(allowed) for hs in hyps for h in hs)


def test_with_a_shortlist_a_sentence_translates_the_same_in_any_batch_as_alone():
    """Each sentence is scored over its own shortlisted words, not the batch's union: its batch-mates change nothing
    (a server batches requests together, and each must be answered as if alone)."""
    model = _model("lstm", "luong")
    per_source = torch.full((V, 3), -1, dtype=torch.int32)
    for s in range(V):  # each source id brings three target ids of its own
        per_source[s] = torch.tensor([(3 * s + k) % (V - 4) + 4 for k in range(3)], dtype=torch.int32)
    shortlist = Shortlist(per_source, torch.tensor([1, 2, 3], dtype=torch.int32))
    fast = FastDecoder(model)
    b = collate(SRC, None, range(len(SRC)))
    batched = beam_search(model, b.src, b.src_len, beam=3, fast_decoder=fast, shortlist=shortlist)
    greedy_batched = greedy(model, b.src, b.src_len, fast_decoder=fast, shortlist=shortlist)
    for i in range(len(SRC)):
        one = collate(SRC, None, [i])
        alone = beam_search(model, one.src, one.src_len, beam=3, fast_decoder=fast, shortlist=shortlist)[0]
        assert [h.ids for h in alone] == [h.ids for h in batched[i]]
        assert [h.score for h in alone] == pytest.approx([h.score for h in batched[i]], abs=1e-4)
        g = greedy(model, one.src, one.src_len, fast_decoder=fast, shortlist=shortlist)[0]
        assert g.ids == greedy_batched[i].ids and g.score == pytest.approx(greedy_batched[i].score, abs=1e-4)
