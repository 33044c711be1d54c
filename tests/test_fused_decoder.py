"""The translator's fast training paths compute what the plain definitions compute: the fused decoder recurrence
(with its hand-written backward) against `Decoder.step` run through the RNN module, the fused output layer and loss
against `F.cross_entropy`; and checkpoints keep the parameter names they had before `Decoder` existed."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

from nlp_rnn.checkpoint import load_checkpoint, save_checkpoint
from nlp_rnn.data import collate
from nlp_rnn.defaults import checkpoints_dir
from nlp_rnn.models import Seq2Seq, Seq2SeqConfig
from nlp_rnn.models.output import dropout_mask, linear_cross_entropy
from nlp_rnn.search import greedy
from nlp_rnn.tokenizers import CharTokenizer

V = 23
SRC = [[5, 6, 7, 8, 9], [9, 10], [11, 12, 13], [4, 4, 4, 4]]
TGT = [[5, 6, 7], [8, 9, 10, 11, 12, 13], [13], [7, 7]]  # unsorted lengths: rows leave the fused loop out of order


def _model(cell="lstm", attention="luong", layers=2, **kw) -> Seq2Seq:
    torch.manual_seed(0)
    kw.setdefault("dropout", 0.0)
    return Seq2Seq(Seq2SeqConfig(src_vocab=V, tgt_vocab=V, cell=cell, attention=attention, hidden=16, embed=8,
                                 layers=layers, label_smoothing=0.1, **kw))


def _reference_loss(model: Seq2Seq, b) -> torch.Tensor:
    """The loss by definition: one `Decoder.step` per target token through the RNN module, full logits."""
    mem, state = model.encode(b.src, b.src_len)
    emb = model.tgt_embedding(b.tgt_in)
    outs = []
    for t in range(emb.size(1)):
        o, state, _ = model.decoder.step(emb[:, t], state, mem)
        outs.append(o)
    logits = model.generator(torch.stack(outs, 1))
    loss = F.cross_entropy(logits.reshape(-1, V), b.tgt_out.reshape(-1), ignore_index=0,
                           label_smoothing=model.config.label_smoothing, reduction="sum")
    return loss / b.n_tokens


def _grads(model, loss) -> dict:
    model.zero_grad()
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("attention", ["none", "bahdanau", "luong"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_training_loss_and_gradients_match_the_step_by_step_definition(cell, attention, layers):
    model = _model(cell, attention, layers).train()
    b = collate(SRC, TGT, range(len(SRC)))
    fused, _ = model.loss(b)
    g_fused = _grads(model, fused)
    ref = _reference_loss(model, b)
    g_ref = _grads(model, ref)
    assert fused.item() == pytest.approx(ref.item(), abs=1e-5)
    for name, g in g_ref.items():
        assert torch.allclose(g_fused[name], g, atol=1e-6, rtol=1e-4), name


@pytest.mark.parametrize("attention", ["bahdanau", "luong"])
def test_teacher_forced_logits_match_the_step_by_step_definition_on_real_tokens(attention):
    model = _model("lstm", attention).eval()
    b = collate(SRC, TGT, range(len(SRC)))
    with torch.no_grad():
        logits = model(b.src, b.src_len, b.tgt_in)
        mem, state = model.encode(b.src, b.src_len)
        emb = model.tgt_embedding(b.tgt_in)
        ref = []
        for t in range(emb.size(1)):
            o, state, _ = model.decoder.step(emb[:, t], state, mem)
            ref.append(model.generator(o))
    real = b.tgt_out != 0
    assert torch.allclose(logits[real], torch.stack(ref, 1)[real], atol=1e-5)


def test_bf16_training_loss_stays_close_to_fp32():
    model = _model("lstm", "luong").train()
    b = collate(SRC, TGT, range(len(SRC)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low, _ = model.loss(b)
    g_low = _grads(model, low)
    full, _ = model.loss(b)
    g_full = _grads(model, full)
    assert low.item() == pytest.approx(full.item(), rel=1e-2)
    w = "decoder.rnn.weight_hh_l0"
    assert F.cosine_similarity(g_low[w].flatten(), g_full[w].flatten(), dim=0) > 0.99


def test_decoder_dropout_applies_in_training_only():
    model = _model("lstm", "luong", dropout=0.5)
    b = collate(SRC, TGT, range(len(SRC)))
    model.eval()
    with torch.no_grad():
        a, _ = model.loss(b)
        assert model.loss(b)[0].item() == a.item()
    model.train()
    torch.manual_seed(1)
    one = model.loss(b)[0].item()
    torch.manual_seed(2)
    assert model.loss(b)[0].item() != one


def test_dropout_mask_keeps_the_expected_share_and_scale():
    torch.manual_seed(0)
    m = dropout_mask((200, 500), 0.3, torch.float32, "cpu")
    kept = m > 0
    assert kept.float().mean().item() == pytest.approx(0.7, abs=0.01)
    assert m.mean().item() == pytest.approx(1.0, abs=0.02)  # inverted dropout keeps the expected value
    assert torch.allclose(m[kept], torch.full_like(m[kept], 1 / 0.7), rtol=1e-3)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_fused_output_loss_matches_cross_entropy(smoothing):
    torch.manual_seed(0)
    x = torch.randn(70, 12, requires_grad=True)
    w = torch.randn(300, 12, requires_grad=True)
    bias = torch.randn(300, requires_grad=True)
    y = torch.randint(0, 300, (70,))
    fused = linear_cross_entropy(x, w, bias, y, smoothing)
    g_fused = torch.autograd.grad(fused, (x, w, bias))
    ref = F.cross_entropy(F.linear(x, w, bias), y, label_smoothing=smoothing, reduction="sum")
    g_ref = torch.autograd.grad(ref, (x, w, bias))
    assert fused.item() == pytest.approx(ref.item(), rel=1e-6)
    for a, b in zip(g_fused, g_ref):
        assert torch.allclose(a, b, atol=1e-5)
    with torch.no_grad():
        assert linear_cross_entropy(x, w, bias, y, smoothing).item() == pytest.approx(ref.item(), rel=1e-6)


# ---------------------------------------------------------------------------------------------- checkpoint names

# The names of a Luong translator's tensors as checkpoints have always stored them.
SAVED_NAMES = ["src_embedding.weight", "tgt_embedding.weight", "encoder.embedding.weight",
               *[f"encoder.rnn.{k}_l{i}{r}" for i in range(2) for r in ("", "_reverse")
                 for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")],
               "bridge.0.weight", "bridge.0.bias", "bridge.1.weight", "bridge.1.bias",
               *[f"decoder.{k}_l{i}" for i in range(2) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")],
               "attention.key.weight", "combine.weight", "generator.weight", "generator.bias"]


def test_state_dict_keeps_the_names_checkpoints_have_always_used():
    assert sorted(_model().state_dict()) == sorted(SAVED_NAMES)


def test_checkpoints_are_written_under_those_names(tmp_path):
    tok = CharTokenizer.build(["abcdefghijklmnopqrstu"])
    model = Seq2Seq(Seq2SeqConfig(src_vocab=tok.vocab_size, tgt_vocab=tok.vocab_size, hidden=16, embed=8)).eval()
    save_checkpoint(tmp_path / "ck", model, {"src_tokenizer": tok, "tgt_tokenizer": tok})
    with safe_open(tmp_path / "ck" / "model.safetensors", "pt") as f:
        assert set(f.keys()) <= set(SAVED_NAMES)
    loaded = load_checkpoint(tmp_path / "ck").model
    b = collate(SRC, None, range(len(SRC)))
    assert [h.ids for h in greedy(loaded, b.src, b.src_len)] == [h.ids for h in greedy(model, b.src, b.src_len)]


def test_a_shipped_checkpoint_written_before_decoder_existed_loads_every_tensor():
    path = checkpoints_dir() / "mt-en-es"
    model = load_checkpoint(path).model
    state = model.state_dict()
    with safe_open(path / "model.safetensors", "pt") as f:
        for name in f.keys():
            assert torch.equal(state[name], f.get_tensor(name)), name
    assert torch.equal(model.decoder.rnn.weight_ih_l0, state["decoder.weight_ih_l0"])


def test_load_state_dict_takes_module_names_too():
    model, other = _model(), _model()
    with torch.no_grad():
        other.decoder.combine.weight.add_(1)
    result = model.load_state_dict(dict(other.named_parameters()), strict=False)  # decoder.rnn.*, decoder.combine.*
    assert result.missing_keys == ["encoder.embedding.weight"] and not result.unexpected_keys  # tied: listed once
    assert torch.equal(model.decoder.combine.weight, other.decoder.combine.weight)
