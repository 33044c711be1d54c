"""Tokenizers: characters and sentencepiece subwords behind one interface.

Property tests (hypothesis) check exact round trips over the training alphabet and that no input, however
odd, makes encode or decode raise. Sentencepiece is trained once per module on a small invented corpus.
"""
from __future__ import annotations

import json
import os
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlp_rnn.errors import TokenizerError
from nlp_rnn.tokenizers import (BOS, EOS, PAD, SPECIALS, SPM_FILE, TOKENIZER_FILE, UNK, CharTokenizer,
                                SentencePieceTokenizer, load_tokenizer, train_tokenizer)

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "My grandmother bakes bread every Sunday morning.",
    "Where is the train station, please?",
    "I can't believe it's already Tuesday!",
    "They walked 12 kilometres along the river in 3 hours.",
    "Could you pass me the salt and the pepper?",
    "Our neighbours adopted two cats last winter.",
    "She said: \"Never give up\" (and she meant it).",
    "El niño comió una manzana roja en el jardín.",
    "¿Dónde está la biblioteca municipal?",
    "¡Qué sorpresa verte aquí después de tantos años!",
    "Mi abuela hace pan todos los domingos por la mañana.",
    "Los pingüinos no vuelan, pero nadan muy rápido.",
    "Tengo que comprar leche, huevos y azúcar.",
    "La película empezó a las 9 y terminó tarde.",
    "Él cantó una canción sobre el mar y la luna.",
] * 6

ALPHABET = sorted(set("".join(SENTENCES)))

# Text a user might throw at a tokenizer: emoji (with modifiers and flags), combining marks, controls,
# zero-width characters, the sentencepiece meta symbol, plus anything else Unicode has (surrogates excluded).
ODD_CHARS = list("😀👍🏽🇪🇸👩‍💻\u0301\u0300\u0327\x00\x07\x1b\t\r\n\x0b\x0c\u200b\u200d\ufeff\u2581\u2028\ufffd"
                 "Жの字\U0010ffff")
ANY_TEXT = st.text(alphabet=st.one_of(st.characters(exclude_categories=("Cs",)), st.sampled_from(ODD_CHARS)),
                   max_size=60)
ALPHABET_TEXT = st.text(alphabet=st.sampled_from(ALPHABET), max_size=80)
ANY_IDS = st.lists(st.integers(min_value=-5, max_value=10**9), max_size=40)

PROPS = settings(max_examples=100, deadline=None, database=None)
FEW = settings(max_examples=30, deadline=None, database=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture])


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


# ---------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def trained() -> dict:
    """Each kind trained once for the whole module."""
    return {"char": CharTokenizer.build(SENTENCES),
            "unigram": SentencePieceTokenizer.train(SENTENCES, vocab_size=200, model_type="unigram"),
            "bpe": SentencePieceTokenizer.train(SENTENCES, vocab_size=200, model_type="bpe")}


@pytest.fixture(scope="module")
def char_tok(trained) -> CharTokenizer:
    return trained["char"]


@pytest.fixture(scope="module", params=["unigram", "bpe"])
def spm_tok(request, trained) -> SentencePieceTokenizer:
    return trained[request.param]


@pytest.fixture(scope="module", params=["char", "unigram", "bpe"])
def any_tok(request, trained):
    return trained[request.param]


# ---------------------------------------------------------------------------------------------- shared contract

def test_special_ids_are_the_same_for_every_kind(any_tok):
    assert (PAD, UNK, BOS, EOS) == (0, 1, 2, 3)
    assert (any_tok.pad, any_tok.unk, any_tok.bos, any_tok.eos) == (0, 1, 2, 3)
    assert [any_tok.id_to_piece(i) for i in range(4)] == SPECIALS == ["<pad>", "<unk>", "<s>", "</s>"]


def test_training_sentences_round_trip_without_unknowns(any_tok):
    for sentence in set(SENTENCES):
        ids = any_tok.encode(sentence)
        assert UNK not in ids, sentence
        assert any_tok.decode(ids) == sentence


def test_decode_skips_pad_bos_eos_around_a_sentence(any_tok):
    sentence = "¿Dónde está the quick fox?"
    ids = any_tok.encode(sentence)
    assert any_tok.decode([BOS, *ids, EOS, PAD, PAD]) == sentence


def test_empty_string_encodes_to_nothing_and_back(any_tok):
    assert any_tok.encode("") == []
    assert any_tok.decode([]) == ""


@PROPS
@given(text=ALPHABET_TEXT)
def test_round_trip_is_exact_over_the_training_alphabet(any_tok, text):
    ids = any_tok.encode(text)
    assert UNK not in ids
    assert any_tok.decode(ids) == nfc(text)


@PROPS
@given(text=ANY_TEXT)
def test_encode_and_decode_accept_any_unicode(any_tok, text):
    ids = any_tok.encode(text)
    assert all(isinstance(i, int) and 0 <= i < any_tok.vocab_size for i in ids)
    assert not {PAD, BOS, EOS} & set(ids), "encode never emits pad, bos or eos"
    assert isinstance(any_tok.decode(ids), str)


@PROPS
@given(ids=ANY_IDS)
def test_decode_accepts_any_ids_including_out_of_range(any_tok, ids):
    assert isinstance(any_tok.decode(ids), str)


@pytest.mark.parametrize("unknown", ["Ж", "😀", "の", "\x07"])
def test_unknown_characters_map_to_unk(any_tok, unknown):
    assert unknown not in ALPHABET
    ids = any_tok.encode(f"fox {unknown} zorro")
    assert UNK in ids
    assert any_tok.decode(ids).startswith("fox ") and any_tok.decode(ids).endswith(" zorro")


def test_equivalent_unicode_spellings_encode_the_same(any_tok):
    composed, decomposed = "jardín", "jardi\u0301n"
    assert any_tok.encode(decomposed) == any_tok.encode(composed)
    assert UNK not in any_tok.encode(decomposed)


def test_save_then_load_gives_identical_encodings(any_tok, tmp_path):
    any_tok.save(tmp_path)
    assert (tmp_path / TOKENIZER_FILE).is_file()
    loaded = load_tokenizer(tmp_path)
    assert type(loaded) is type(any_tok)
    assert loaded.kind == any_tok.kind and loaded.vocab_size == any_tok.vocab_size
    probes = sorted(set(SENTENCES)) + ["", "  spaced  out  ", "Ж unknown 😀", "jardi\u0301n"]
    for text in probes:
        assert loaded.encode(text) == any_tok.encode(text), text
        assert loaded.decode(any_tok.encode(text)) == any_tok.decode(any_tok.encode(text))


# ---------------------------------------------------------------------------------------------- characters

def test_char_vocabulary_is_specials_then_sorted_characters(char_tok):
    assert char_tok.chars == ALPHABET
    assert char_tok.vocab_size == len(SPECIALS) + len(ALPHABET)
    assert char_tok.encode(ALPHABET[0]) == [len(SPECIALS)]


def test_char_encode_is_one_id_per_normalized_character(char_tok):
    text = "jardi\u0301n Ж"
    assert len(char_tok.encode(text)) == len(nfc(text)) == 8


def test_char_unknown_decodes_as_replacement_character(char_tok):
    assert char_tok.decode(char_tok.encode("aЖb")) == "a\ufffdb"


def test_char_min_freq_turns_rare_characters_into_unk():
    tok = CharTokenizer.build(["aaab", "aab"], min_freq=2)
    assert tok.chars == ["a", "b"]
    tok = CharTokenizer.build(["aaab"], min_freq=2)
    assert tok.chars == ["a"]
    assert tok.encode("ab") == [4, UNK]


def test_char_build_with_nothing_frequent_enough_fails():
    with pytest.raises(TokenizerError, match="often enough"):
        CharTokenizer.build(["abc"], min_freq=5)
    with pytest.raises(TokenizerError):
        CharTokenizer.build([])


@pytest.mark.parametrize("chars", [["a", "a"], ["ab"], [""]])
def test_char_vocabulary_must_be_distinct_single_characters(chars):
    with pytest.raises(TokenizerError, match="distinct single characters"):
        CharTokenizer(chars)


@FEW
@given(text=st.text(min_size=1, max_size=200))
def test_char_tokenizer_built_from_any_text_round_trips_it(text):
    tok = CharTokenizer.build([text])
    assert tok.decode(tok.encode(text)) == nfc(text)


@FEW
@given(text=st.text(min_size=1, max_size=50))
def test_char_tokenizer_save_load_round_trips_any_vocabulary(tmp_path, text):
    tok = CharTokenizer.build([text])
    tok.save(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert loaded.chars == tok.chars
    assert loaded.encode(text) == tok.encode(text)


# ---------------------------------------------------------------------------------------------- sentencepiece

def test_spm_model_type_is_honoured(spm_tok):
    assert spm_tok.kind == "sentencepiece"
    assert len(SPECIALS) + 2 <= spm_tok.vocab_size <= 200


def test_spm_pieces_are_subwords_not_just_characters(spm_tok):
    ids = spm_tok.encode("the quick brown fox")
    assert len(ids) < len("the quick brown fox"), [spm_tok.id_to_piece(i) for i in ids]


@pytest.mark.parametrize("text", [" ", "   ", " leading", "trailing ", "two  spaces"])
def test_spm_keeps_whitespace_exactly(spm_tok, text):
    assert spm_tok.decode(spm_tok.encode(text)) == text


def test_train_tokenizer_dispatches_on_kind():
    assert isinstance(train_tokenizer(SENTENCES, "char"), CharTokenizer)
    tok = train_tokenizer(SENTENCES, "bpe", vocab_size=120)
    assert isinstance(tok, SentencePieceTokenizer)
    assert tok.decode(tok.encode(SENTENCES[0])) == SENTENCES[0]


def test_spm_rejects_unknown_model_type():
    with pytest.raises(TokenizerError, match="unigram or bpe"):
        SentencePieceTokenizer.train(SENTENCES, vocab_size=100, model_type="wordpiece")


@pytest.mark.parametrize("texts", [[], ["", "   ", "\t"]])
def test_spm_refuses_an_empty_corpus(texts):
    with pytest.raises(TokenizerError, match="empty corpus"):
        SentencePieceTokenizer.train(texts, vocab_size=100)


@pytest.mark.parametrize("kind", ["unigram", "bpe"])
def test_too_small_vocabulary_names_the_minimum(kind):
    with pytest.raises(TokenizerError) as e:
        SentencePieceTokenizer.train(SENTENCES, vocab_size=5, model_type=kind)
    assert "vocabulary size 5 is too small" in str(e.value)
    assert "at least 6" in str(e.value)


def test_bpe_vocabulary_smaller_than_the_alphabet_suggests_a_size():
    need = len(ALPHABET) + len(SPECIALS)
    with pytest.raises(TokenizerError) as e:
        SentencePieceTokenizer.train(SENTENCES, vocab_size=20, model_type="bpe")
    assert f"{len(ALPHABET)} characters" in str(e.value)
    assert f"--vocab-size {need} or more" in str(e.value)


def test_unigram_vocabulary_smaller_than_the_alphabet_suggests_a_size():
    need = len(ALPHABET) + len(SPECIALS)
    with pytest.raises(TokenizerError) as e:
        SentencePieceTokenizer.train(SENTENCES, vocab_size=20, model_type="unigram")
    assert "INTERNAL" not in str(e.value) and ".cc(" not in str(e.value)
    assert f"--vocab-size {need} or more" in str(e.value)


def test_spm_rejects_bytes_that_are_not_a_model():
    with pytest.raises(TokenizerError, match="not a valid sentencepiece model"):
        SentencePieceTokenizer(b"definitely not a protobuf")


# ---------------------------------------------------------------------------------------------- loading

@pytest.fixture
def saved_spm(tmp_path):
    """A valid spm.model living *outside* the tokenizer directory, and an empty tokenizer directory."""
    outside = tmp_path / "outside"
    outside.mkdir()
    SentencePieceTokenizer.train(SENTENCES, vocab_size=100).save(outside)
    tok_dir = tmp_path / "tok"
    tok_dir.mkdir()
    return outside / SPM_FILE, tok_dir


def _describe(tok_dir, **meta):
    (tok_dir / TOKENIZER_FILE).write_text(json.dumps(meta), encoding="utf-8")


@pytest.mark.parametrize("name", ["../outside/spm.model", "ABSOLUTE", "", ".", "sub/../../outside/spm.model"])
def test_load_refuses_a_model_path_outside_the_directory(saved_spm, name):
    model, tok_dir = saved_spm
    _describe(tok_dir, kind="sentencepiece", model=str(model) if name == "ABSOLUTE" else name)
    with pytest.raises(TokenizerError, match="points outside"):
        load_tokenizer(tok_dir)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_load_refuses_a_symlinked_model_that_leads_outside(saved_spm):
    model, tok_dir = saved_spm
    (tok_dir / SPM_FILE).symlink_to(model)
    _describe(tok_dir, kind="sentencepiece", model=SPM_FILE)
    with pytest.raises(TokenizerError, match="points outside"):
        load_tokenizer(tok_dir)


def test_load_accepts_a_model_inside_the_directory(saved_spm):
    model, tok_dir = saved_spm
    (tok_dir / "custom.model").write_bytes(model.read_bytes())
    _describe(tok_dir, kind="sentencepiece", model="custom.model")
    assert load_tokenizer(tok_dir).encode("the fox") == SentencePieceTokenizer(model.read_bytes()).encode("the fox")


def test_load_reports_a_missing_model_file(saved_spm):
    _, tok_dir = saved_spm
    _describe(tok_dir, kind="sentencepiece", model="gone.model")
    with pytest.raises(TokenizerError, match="missing sentencepiece model"):
        load_tokenizer(tok_dir)


def test_load_reports_a_corrupt_model_file(saved_spm):
    _, tok_dir = saved_spm
    (tok_dir / SPM_FILE).write_bytes(b"\x00\x01garbage")
    _describe(tok_dir, kind="sentencepiece", model=SPM_FILE)
    with pytest.raises(TokenizerError, match="not a valid sentencepiece model"):
        load_tokenizer(tok_dir)


@pytest.mark.parametrize("model", [None, 5, ["spm.model"]])
def test_load_reports_a_model_field_that_is_not_a_string(saved_spm, model):
    _, tok_dir = saved_spm
    _describe(tok_dir, kind="sentencepiece", model=model)
    with pytest.raises(TokenizerError):
        load_tokenizer(tok_dir)


@pytest.mark.parametrize("content, match", [
    (None, "missing tokenizer file"),
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe\x00", "not UTF-8 text"),
    (b"[1, 2, 3]", "must be an object"),
    (b'{"chars": "abc"}', "kind: missing"),
    (b'{"kind": "wordpiece"}', 'kind: must be one of "char", "sentencepiece", not "wordpiece"'),
    (b'{"kind": "char", "chars": ["a", "b"]}', "chars: must be a string"),
    (b'{"kind": "char", "chars": "abca"}', "distinct single characters"),
])
def test_load_rejects_broken_descriptions(tmp_path, content, match):
    if content is not None:
        (tmp_path / TOKENIZER_FILE).write_bytes(content)
    with pytest.raises(TokenizerError, match=match):
        load_tokenizer(tmp_path)
