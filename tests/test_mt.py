"""The translator memorizes pairs with and without attention; search and scoring behave as documented."""
from __future__ import annotations

import json

import pytest
import torch
from sacrebleu.metrics import BLEU, CHRF, TER
from typer.testing import CliRunner

from nlp_rnn.checkpoint import load_checkpoint
from nlp_rnn.cli import app
from nlp_rnn.data import collate, encode_pairs
from nlp_rnn.search import beam_search, greedy, translate_all

from helpers import PAIRS, train_tiny_mt, write_pairs_tsv

runner = CliRunner()


@pytest.fixture(scope="module")
def mt_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("mt") / "run"
    train_tiny_mt(run, "luong", steps=250)
    return run


@pytest.fixture(scope="module")
def half_trained(tmp_path_factory):
    """A model that has learned something but not everything, so search choices matter."""
    run = tmp_path_factory.mktemp("mt_half") / "run"
    train_tiny_mt(run, "bahdanau", steps=40)
    return load_checkpoint(run)


def _translate(loaded, beam):
    return [t.text for t in translate_all(loaded.model, loaded.tokenizers["src_tokenizer"],
                                          loaded.tokenizers["tgt_tokenizer"], [s for s, _ in PAIRS], beam=beam)]


@pytest.mark.parametrize("attention", ["none", "bahdanau", "luong"])
def test_memorized_pairs_translate_back_exactly(tmp_path, attention):
    train_tiny_mt(tmp_path / "run", attention, steps=250)
    loaded = load_checkpoint(tmp_path / "run")
    refs = [t for _, t in PAIRS]
    assert _translate(loaded, beam=1) == refs
    assert _translate(loaded, beam=4) == refs


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_other_cells_train_a_translator(tmp_path, cell):
    # the tanh RNN learns more slowly; at 250 steps one seed in the full suite stopped at BLEU 34
    summary = train_tiny_mt(tmp_path / "run", "luong", cell=cell, steps=250 if cell == "gru" else 500)
    assert summary["final"]["val_bleu"] > 80


def _batch(loaded):
    src, tgt = encode_pairs(PAIRS, loaded.tokenizers["src_tokenizer"], loaded.tokenizers["tgt_tokenizer"])
    return collate(src, tgt, list(range(len(PAIRS))))


def test_beam_of_one_is_greedy(half_trained):
    b = _batch(half_trained)
    g = greedy(half_trained.model, b.src, b.src_len)
    beam = beam_search(half_trained.model, b.src, b.src_len, beam=1, length_penalty=0.0)
    assert [h.ids for h in g] == [hs[0].ids for hs in beam]
    assert [h.score for h in g] == pytest.approx([hs[0].score for hs in beam], abs=1e-4)


def test_larger_beam_never_scores_below_greedy(half_trained):
    b = _batch(half_trained)
    g = greedy(half_trained.model, b.src, b.src_len)
    for k in (2, 5, 8):
        beam = beam_search(half_trained.model, b.src, b.src_len, beam=k, length_penalty=0.0)
        for gh, bh in zip(g, beam):
            assert bh[0].score >= gh.score - 1e-4


def test_beam_scores_are_model_log_probabilities(half_trained):
    """The score beam search reports equals the teacher-forced log-probability of its output."""
    b = _batch(half_trained)
    hyps = beam_search(half_trained.model, b.src, b.src_len, beam=3, length_penalty=0.0)
    model = half_trained.model
    for row, hs in enumerate(hyps):
        ids = hs[0].ids
        tgt_in = torch.tensor([[2] + ids])
        logits = model(b.src[row:row + 1, : int(b.src_len[row])], b.src_len[row:row + 1], tgt_in)
        logp = torch.log_softmax(logits[0], -1)
        expected = sum(logp[t, tok].item() for t, tok in enumerate(ids + [3]))
        assert hs[0].score == pytest.approx(expected, abs=1e-3)


def test_n_best_lists_distinct_hypotheses_best_first(half_trained):
    b = _batch(half_trained)
    for hs in beam_search(half_trained.model, b.src, b.src_len, beam=4, n_best=3):
        assert len(hs) == 3
        assert len({tuple(h.ids) for h in hs}) == 3
        assert hs[0].norm_score >= hs[1].norm_score >= hs[2].norm_score


def test_translate_file_keeps_lines_and_order(mt_dir, tmp_path):
    inp = tmp_path / "in.txt"
    inp.write_text("the dog runs\n\ngood morning\nthe cat sleeps\n\n", encoding="utf-8")
    out = tmp_path / "out.txt"
    result = runner.invoke(app, ["translate", "-m", str(mt_dir), "-i", str(inp), "-o", str(out), "--beam", "3"])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").split("\n") == ["el perro corre", "", "buenos días", "el gato duerme", "", ""]


def test_translate_sentence_and_stdin(mt_dir):
    result = runner.invoke(app, ["translate", "-m", str(mt_dir), "we eat bread"])
    assert result.exit_code == 0 and result.stdout == "comemos pan\n"
    result = runner.invoke(app, ["translate", "-m", str(mt_dir), "--beam", "1"], input="good morning\nthe sun is hot\n")
    assert result.stdout == "buenos días\nel sol está caliente\n"


def test_translate_survives_unknown_characters_and_long_lines(mt_dir):
    result = runner.invoke(app, ["translate", "-m", str(mt_dir), "--json"],
                           input="ΩΩ 😀 ☃\n" + "the dog runs " * 200 + "\n")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["sentences"] == 2 and len(out["translations"]) == 2
    assert "cut to the first 250 tokens" in result.stderr
    # output length is bounded by --max-len-ratio of the (cut) source
    assert len(out["translations"][1]["translation"]) <= 2 * 250 + 5


def test_eval_mt_matches_sacrebleu_on_the_same_hypotheses(half_trained, tmp_path):
    src = tmp_path / "src.txt"
    ref = tmp_path / "ref.txt"
    hyp = tmp_path / "hyp.txt"
    src.write_text("".join(s + "\n" for s, _ in PAIRS), encoding="utf-8")
    ref.write_text("".join(t + "\n" for _, t in PAIRS), encoding="utf-8")
    result = runner.invoke(app, ["eval", "mt", "-m", str(half_trained.path), "--src", str(src), "--ref", str(ref),
                                 "--beam", "2", "-o", str(hyp), "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    hyps = hyp.read_text(encoding="utf-8").splitlines()
    refs = [[t for _, t in PAIRS]]
    for name, metric in (("bleu", BLEU()), ("chrf", CHRF()), ("ter", TER())):
        assert got[name] == pytest.approx(round(metric.corpus_score(hyps, refs).score, 2))
        assert got["signatures"][name] == str(metric.get_signature())
    assert got["sentences"] == len(PAIRS) and got["seconds"] >= 0


def test_train_mt_cli_from_a_tsv(tmp_path):
    tsv = write_pairs_tsv(tmp_path / "pairs.tsv")
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "mt", "--pairs", str(tsv), "--val-pairs", str(tsv), "-o", str(out),
                                 "--max-steps", "6", "--eval-every", "3", "--hidden", "32", "--embed", "16",
                                 "--layers", "1", "--tokenizer-type", "char", "--src-lang", "en", "--tgt-lang", "es",
                                 "--attention", "none", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["steps"] == 6 and "val_bleu" in summary["final"]
    loaded = load_checkpoint(out)
    assert loaded.meta["src_lang"] == "en" and loaded.meta["tgt_lang"] == "es"
    assert loaded.model.config.attention == "none"


def test_int8_translator_still_translates_memorized_pairs(mt_dir, tmp_path):
    src = tmp_path / "src.txt"
    src.write_text("\n".join(s for s, _ in PAIRS) + "\n", encoding="utf-8")
    res = runner.invoke(app, ["translate", "-m", str(mt_dir), "--input", str(src), "--quantize", "int8"])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines() == [t for _, t in PAIRS]


def test_a_trained_translator_keeps_a_shortlist_that_translate_uses(mt_dir, monkeypatch):
    """`train mt` saves the lexical shortlist of its training pairs; `translate` searches over it by default and
    over the whole vocabulary with --full-vocab, with the same output on the pairs it learned."""
    from nlp_rnn import search

    loaded = load_checkpoint(mt_dir)
    assert loaded.shortlist is not None
    src_tok, tgt_tok = loaded.tokenizers["src_tokenizer"], loaded.tokenizers["tgt_tokenizer"]
    for s, t in PAIRS:  # every target word of a pair is shortlisted for its source
        allowed = set(loaded.shortlist.for_batch(torch.tensor([src_tok.encode(s)])).tolist())
        assert set(tgt_tok.encode(t)) <= allowed
    given = []
    real = search.translate
    monkeypatch.setattr(search, "translate", lambda *a, **k: given.append(k.get("shortlist")) or real(*a, **k))
    outputs = {}
    for flag in ("--shortlist", "--full-vocab"):
        done = runner.invoke(app, ["translate", "-m", str(mt_dir), "--beam", "3", flag],
                             input="".join(s + "\n" for s, _ in PAIRS))
        assert done.exit_code == 0, done.output
        outputs[flag] = done.stdout
    assert given[0] is not None and given[1] is None
    assert outputs["--shortlist"] == outputs["--full-vocab"] == "".join(t + "\n" for _, t in PAIRS)


class _Pieces:
    """A fake subword vocabulary: ids 0-3 specials, then the pieces below."""

    kind = "sentencepiece"

    def __init__(self, pieces):
        self.pieces = ["<pad>", "<unk>", "<s>", "</s>", *pieces]
        self.vocab_size = len(self.pieces)

    def id_to_piece(self, i):
        return self.pieces[i]


def test_repeat_guard_blocks_empty_repeated_and_looping_hypotheses():
    from nlp_rnn.search import RepeatGuard

    tok = _Pieces(["▁Tom", "▁likes", "▁movie", "s", "▁very", "▁and", "▁I", "▁wait", "▁in", "▁the", "▁kitchen", "."])
    T, LIKES, MOVIE, S, VERY, AND, I, WAIT, IN, THE, KITCHEN, DOT = range(4, 16)
    guard = RepeatGuard(tok, tok, [[T, LIKES, MOVIE, S], [VERY, VERY, MOVIE]])
    assert not guard.allows(0, [], 3)                                     # no empty translation
    assert guard.allows(0, [T, LIKES, MOVIE], S)                          # inside a word: nothing to check
    assert not guard.allows(0, [T, LIKES, MOVIE, S, MOVIE, S], 3)        # "movies movies" then the end
    assert not guard.allows(0, [T, LIKES, MOVIE, S, MOVIE, S], AND)
    assert guard.allows(0, [T, LIKES, MOVIE, S], AND)
    assert guard.allows(1, [VERY, VERY], MOVIE)                           # the source repeats "very" itself
    loop = [I, WAIT, IN, THE, KITCHEN, AND, I, WAIT, IN, THE]
    assert guard.allows(0, loop[:-1], THE) and not guard.allows(0, loop, KITCHEN)  # 4 words written again


def test_guarded_search_matches_plain_search_where_no_guard_fires(half_trained):
    st, tt = half_trained.tokenizers["src_tokenizer"], half_trained.tokenizers["tgt_tokenizer"]
    sources = [s for s, _ in PAIRS]
    for beam in (1, 4):
        plain = translate_all(half_trained.model, st, tt, sources, beam=beam)
        guarded = translate_all(half_trained.model, st, tt, sources, beam=beam, guards=True)
        for p, g in zip(plain, guarded):
            words = g.text.split()
            assert g.text.strip() and not any(a == b for a, b in zip(words, words[1:]))
            if p.text.strip() and not any(a == b for a, b in zip(p.text.split(), p.text.split()[1:])):
                assert p.text == g.text
