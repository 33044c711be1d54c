"""The text classifier's tensor side: shapes, padding never counts, each pooling pools what it says, it learns,
class weights weigh, configs are checked, and an LM's weights can start its encoder."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from nlp_rnn.model_configs import POOLINGS
from nlp_rnn.models.classifier import ClassifierConfig, ClfBatch, TextClassifier, load_encoder_from_lm
from nlp_rnn.models.lm import CharLM, LMConfig

CELLS = ("rnn", "lstm", "gru")
ALL = list(itertools.product(CELLS, POOLINGS, (False, True)))


def tiny(cell="lstm", pooling="max", bidirectional=True, num_classes=3, layers=2, dropout=0.0, **kw) -> TextClassifier:
    torch.manual_seed(0)
    config = ClassifierConfig(vocab_size=20, num_classes=num_classes, cell=cell, embed=8, hidden=12, layers=layers,
                              bidirectional=bidirectional, pooling=pooling, dropout=dropout, **kw)
    return TextClassifier(config).eval()


def padded(seqs, total=None, filler=0):
    """Right-padded (B, T) ids and (B,) lengths; `filler` goes after each length."""
    T = total or max(map(len, seqs))
    ids = torch.full((len(seqs), T), filler, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
    return ids, torch.tensor([len(s) for s in seqs])


SEQS = [[3, 4, 5, 6, 7, 8], [9, 2], [11], [5, 5, 12, 13]]


@pytest.mark.parametrize("cell,pooling,bidirectional", ALL)
def test_logits_and_probabilities_have_one_row_per_sequence(cell, pooling, bidirectional):
    model = tiny(cell, pooling, bidirectional)
    ids, lengths = padded(SEQS)
    assert model(ids, lengths).shape == (4, 3)
    proba = model.predict_proba(ids, lengths)
    assert proba.shape == (4, 3) and bool((proba >= 0).all())
    torch.testing.assert_close(proba.sum(-1), torch.ones(4))
    pooled, _ = model.features(ids, lengths)
    assert pooled.shape == (4, 12 * (2 if bidirectional else 1))


@pytest.mark.parametrize("cell,pooling,bidirectional", ALL)
def test_padding_never_changes_the_logits(cell, pooling, bidirectional):
    model = tiny(cell, pooling, bidirectional)
    short = model(*padded(SEQS))
    # longer padding, and real token ids after each length instead of 0: neither may leak into the result
    long_zeros = model(*padded(SEQS, total=11))
    long_garbage = model(*padded(SEQS, total=11, filler=7))
    alone = torch.cat([model(*padded([s])) for s in SEQS])
    for other in (long_zeros, long_garbage, alone):
        torch.testing.assert_close(other, short, rtol=1e-5, atol=1e-5)


def outputs_alone(model: TextClassifier, seq: list[int]) -> torch.Tensor:
    """The encoder's outputs (T, D) for one unpadded sequence, straight through the recurrent layer."""
    out, _ = model.rnn(model.embedding(torch.tensor([seq])))
    return out[0]


@pytest.mark.parametrize("pooling,bidirectional", list(itertools.product(("mean", "max"), (False, True))))
def test_mean_and_max_pool_over_real_tokens_only(pooling, bidirectional):
    model = tiny("gru", pooling, bidirectional)
    pooled, _ = model.features(*padded(SEQS, total=9))
    for i, seq in enumerate(SEQS):
        out = outputs_alone(model, seq)
        expected = out.mean(0) if pooling == "mean" else out.amax(0)
        torch.testing.assert_close(pooled[i], expected, rtol=1e-5, atol=1e-6)
    # tanh outputs are often all negative in some unit: the padding's zeros would win an unmasked max
    if pooling == "max":
        assert bool((pooled < 0).any())


@pytest.mark.parametrize("cell,bidirectional", list(itertools.product(CELLS, (False, True))))
def test_last_pooling_is_each_directions_final_state(cell, bidirectional):
    model = tiny(cell, "last", bidirectional)
    pooled, _ = model.features(*padded(SEQS, total=9))
    H = model.config.hidden
    for i, seq in enumerate(SEQS):
        out = outputs_alone(model, seq)
        # forward direction: after the last token; backward direction: after reading back to the first
        expected = torch.cat([out[-1, :H], out[0, H:]]) if bidirectional else out[-1]
        torch.testing.assert_close(pooled[i], expected, rtol=1e-5, atol=1e-6)


def test_attention_weights_cover_real_tokens_and_start_as_mean_pooling():
    model = tiny("lstm", "attention")
    ids, lengths = padded(SEQS, total=8)
    weights = model.attention_weights(ids, lengths)
    assert weights.shape == (4, 8)
    torch.testing.assert_close(weights.sum(-1), torch.ones(4))
    mask = torch.arange(8)[None] < lengths[:, None]
    assert bool((weights[~mask] == 0).all())
    mean_model = tiny("lstm", "mean")
    mean_model.load_state_dict(model.state_dict(), strict=False)  # same encoder, no attention layers
    torch.testing.assert_close(model.features(ids, lengths)[0], mean_model.features(ids, lengths)[0])
    with pytest.raises(ValueError, match="pooling 'attention'"):
        mean_model.attention_weights(ids, lengths)


def contains_five(n: int, generator: torch.Generator):
    """Sequences of 3-12 tokens from 1-9; label 1 when token 5 occurs (about half of them), else 0."""
    seqs, labels = [], []
    for _ in range(n):
        length = int(torch.randint(3, 13, (1,), generator=generator))
        seq = [int(t) for t in torch.randint(1, 9, (length,), generator=generator)]
        seq = [9 if t == 5 else t for t in seq]
        label = int(torch.rand(1, generator=generator) < 0.5)
        if label:
            seq[int(torch.randint(0, length, (1,), generator=generator))] = 5
        seqs.append(seq)
        labels.append(label)
    ids, lengths = padded(seqs)
    return ClfBatch(ids, lengths, torch.tensor(labels))


@pytest.mark.parametrize("cell,pooling", [("lstm", "last"), ("gru", "max"), ("rnn", "mean"), ("lstm", "attention")])
def test_a_tiny_model_learns_to_separate_two_classes(cell, pooling):
    torch.manual_seed(0)
    model = TextClassifier(ClassifierConfig(vocab_size=10, num_classes=2, cell=cell, embed=8, hidden=16,
                                            bidirectional=True, pooling=pooling, dropout=0.1))
    steps = 150
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1 - step / steps)
    g = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(steps):
        loss, state = model.loss(contains_five(32, g))
        assert state is None
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        schedule.step()
        losses.append(loss.item())
    model.eval()
    test = contains_five(300, torch.Generator().manual_seed(2))
    predicted = model.predict_proba(test.ids, test.lengths).argmax(-1)
    assert sum(losses[-10:]) < sum(losses[:10]) / 5
    assert bool((predicted == test.labels).all()), f"accuracy {float((predicted == test.labels).float().mean()):.3f}"


def test_class_weights_weigh_each_example_by_its_class():
    model = tiny(num_classes=3)
    ids, lengths = padded(SEQS)
    labels = torch.tensor([0, 2, 2, 1])
    logits = model(ids, lengths)
    per_example = F.cross_entropy(logits, labels, reduction="none")
    plain, _ = model.loss(ClfBatch(ids, lengths, labels))
    torch.testing.assert_close(plain, per_example.mean())
    w = torch.tensor([1.0, 4.0, 0.5])
    weighted, _ = model.loss(ClfBatch(ids, lengths, labels, w))
    torch.testing.assert_close(weighted, (w[labels] * per_example).sum() / w[labels].sum())
    # only the ratios matter: equal weights are no weights, and scaling them all changes nothing
    torch.testing.assert_close(model.loss(ClfBatch(ids, lengths, labels, torch.full((3,), 7.0)))[0], plain)
    torch.testing.assert_close(model.loss(ClfBatch(ids, lengths, labels, 10 * w))[0], weighted)
    # weighting up the class the model finds hardest raises the loss
    hardest = int(labels[per_example.argmax()])
    up = torch.ones(3)
    up[hardest] = 5.0
    assert model.loss(ClfBatch(ids, lengths, labels, up))[0].item() > plain.item()


def test_batch_counts_real_tokens_and_keeps_lengths_on_the_cpu():
    ids, lengths = padded(SEQS)
    batch = ClfBatch(ids, lengths, torch.tensor([0, 1, 0, 1]), torch.ones(2)).to("cpu")
    assert batch.n_tokens == sum(map(len, SEQS))
    assert batch.lengths.device.type == "cpu" and batch.weights is not None


def test_lengths_outside_the_padded_batch_are_refused():
    model = tiny()
    ids, _ = padded(SEQS)
    with pytest.raises(ValueError, match="every length"):
        model(ids, torch.tensor([6, 2, 0, 4]))
    with pytest.raises(ValueError, match="every length"):
        model(ids, torch.tensor([7, 2, 1, 4]))


def test_config_round_trips_through_a_dict():
    config = ClassifierConfig(vocab_size=300, num_classes=5, cell="gru", pooling="attention", bidirectional=False)
    assert ClassifierConfig(**config.to_dict()) == config
    assert TextClassifier(ClassifierConfig(**config.to_dict())).head.out_features == 5


@pytest.mark.parametrize("field,value,message", [
    ("cell", "transformer", "cell must be one of rnn, lstm, gru"),
    ("pooling", "sum", "pooling must be one of last, mean, max, attention"),
    ("num_classes", 1, "num_classes must be a whole number from 2"),
    ("vocab_size", 0, "vocab_size must be a whole number from 1"),
    ("vocab_size", 10 ** 9, "vocab_size must be a whole number from 1 to 2,097,152"),
    ("hidden", 100_000, "hidden must be a whole number from 1 to 8,192"),
    ("embed", 64.5, "embed must be a whole number"),
    ("layers", 0, "layers must be a whole number from 1 to 16"),
    ("layers", True, "layers must be a whole number"),
    ("bidirectional", "yes", "bidirectional must be true or false"),
    ("dropout", 1.0, r"dropout must be in \[0, 1\)"),
    ("dropout", -0.1, r"dropout must be in \[0, 1\)"),
])
def test_bad_configs_are_refused_with_a_clear_message(field, value, message):
    config = ClassifierConfig(vocab_size=100)
    setattr(config, field, value)
    with pytest.raises(ValueError, match=message):
        TextClassifier(config)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_the_encoder_can_start_from_a_character_lm(bidirectional):
    torch.manual_seed(3)
    lm = CharLM(LMConfig(vocab_size=20, cell="gru", embed=8, hidden=12, layers=2))
    model = tiny("gru", "last", bidirectional, layers=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    copied = load_encoder_from_lm(model, lm.state_dict())
    first = ["rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0"]
    # a bidirectional second layer reads both directions, so only the first layer has the LM's shapes
    second = [] if bidirectional else [n.replace("l0", "l1") for n in first]
    assert copied == ["embedding.weight"] + first + second
    after, lm_state = model.state_dict(), lm.state_dict()
    for name in after:
        expected = lm_state[name] if name in copied else before[name]
        assert torch.equal(after[name], expected), name
    if not bidirectional:  # the whole encoder now reads text exactly as the LM does
        x = torch.tensor([[3, 4, 5, 6]])
        torch.testing.assert_close(outputs_alone(model, [3, 4, 5, 6]), lm.rnn(lm.embedding(x))[0][0])


def test_an_lm_of_another_cell_or_vocabulary_is_refused():
    model = tiny("gru", "last", layers=1)
    with pytest.raises(ValueError, match="cell and hidden size"):
        load_encoder_from_lm(model, CharLM(LMConfig(vocab_size=20, cell="lstm", embed=8, hidden=12)).state_dict())
    with pytest.raises(ValueError, match="tokenizer and embed"):
        load_encoder_from_lm(model, CharLM(LMConfig(vocab_size=30, cell="gru", embed=8, hidden=12)).state_dict())


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_int8_copy_gives_nearly_the_same_probabilities(cell):
    model = tiny(cell, "attention")
    ids, lengths = padded(SEQS)
    torch.testing.assert_close(model.quantized().predict_proba(ids, lengths), model.predict_proba(ids, lengths),
                               rtol=0, atol=0.02)
