"""Keystroke savings: exact counts with scripted suggesters, then the real Autocompleter on a tiny LM."""
from __future__ import annotations

import pytest

from nlp_rnn.checkpoint import load_checkpoint
from nlp_rnn.errors import CorpusError, UsageError
from nlp_rnn.keystrokes import autocompleter_suggester, measure_file, read_lines, simulate
from nlp_rnn.sampling import Autocompleter, is_word_char

from helpers import train_tiny_lm


def oracle(*lines: str):
    """Suggests exactly the word the user is typing (or about to type) in whichever line starts with the text."""
    def suggest(text: str) -> list[str]:
        line = next(s for s in lines if s.startswith(text))
        start, end = len(text), len(text)
        while start > 0 and is_word_char(line[start - 1]):
            start -= 1
        while end < len(line) and is_word_char(line[end]):
            end += 1
        return [line[start:end]] if end > start else []
    return suggest


def recording(suggest):
    """The same suggester, also keeping every text it was asked about."""
    asked = []

    def wrapped(text: str) -> list[str]:
        asked.append(text)
        return suggest(text)
    return wrapped, asked


def test_oracle_saves_what_a_hand_count_says():
    # "the cat sat": accept "the " (1 key), "cat " (1), "sat" (1) -> 3 keystrokes for 11 characters
    suggest, asked = recording(oracle("the cat sat"))
    r = simulate(["the cat sat"], suggest)
    assert (r.characters, r.keystrokes, r.accepted) == (11, 3, 3)
    assert r.ksr == pytest.approx(1 - 3 / 11)
    assert (r.completion_words, r.completion_top1, r.completion_topk) == (3, 1.0, 1.0)
    assert (r.next_word_positions, r.next_word_top1) == (2, 1.0)  # "cat" and "sat" follow a space; "the" does not
    # asked before each keystroke, plus one untimed ask after each accepted word's first character
    assert asked == ["", "t", "the ", "the c", "the cat ", "the cat s"]


def test_a_suggester_that_never_helps_saves_nothing():
    lines = ["the cat sat", "¿Dónde está?"]
    suggest, asked = recording(lambda text: [])
    r = simulate(lines, suggest)
    assert r.keystrokes == r.characters == 11 + 12
    assert r.ksr == 0.0 and r.accepted == 0
    assert r.completion_topk == r.next_word_topk == 0.0
    assert len(asked) == r.keystrokes  # one ask per keystroke
    assert r.latency_p95_ms >= r.latency_p50_ms >= 0 and r.cpu_p95_ms >= r.cpu_p50_ms >= 0


def test_wrong_words_and_wrong_case_are_never_accepted():
    r = simulate(["Dónde"], lambda text: ["dónde", "Donde", "Dónd", "Dóndes"])
    assert r.keystrokes == 5 and r.completion_topk == 0.0


def test_only_the_top_k_count():
    line = "one two"
    def third(text: str) -> list[str]:  # the right word, always third
        return ["x", "y"] + oracle(line)(text) + ["z"]
    r3 = simulate([line], third, top=3)
    r2 = simulate([line], third, top=2)
    assert (r3.keystrokes, r3.completion_top1, r3.completion_topk, r3.next_word_topk) == (2, 0.0, 1.0, 1.0)
    assert (r2.keystrokes, r2.completion_topk, r2.next_word_topk) == (7, 0.0, 0.0)


def test_punctuation_gets_no_automatic_space():
    # "Hi" (1 key) "," (1) " " (1) "Tom" (1) "." (1): 5 keystrokes for 8 characters
    r = simulate(["Hi, Tom."], oracle("Hi, Tom."))
    assert (r.characters, r.keystrokes, r.accepted) == (8, 5, 2)
    assert r.next_word_positions == 1  # "Tom"


def test_accented_words_and_inverted_marks():
    # "¿" (1) "Dónde " (1) "está" (1) "?" (1)
    line = "¿Dónde está?"
    r = simulate([line], oracle(line))
    assert (r.characters, r.keystrokes, r.accepted) == (12, 4, 2)
    assert r.next_word_positions == 1 and r.next_word_top1 == 1.0  # "está"; "Dónde" follows "¿", not a space


def test_apostrophes_stay_inside_words():
    line = "don't go"
    r = simulate([line], oracle(line))
    assert (r.keystrokes, r.completion_words) == (2, 2)  # "don't " and "go"


def test_an_accept_must_save_a_character():
    # after "g", "o" at the line end inserts one character for one key: typed, not accepted
    only_go = lambda text: ["go"] if text == "g" else []
    assert simulate(["go"], only_go).accepted == 0
    assert simulate(["go"], only_go).keystrokes == 2
    # before a space the same suggestion inserts "o " and saves one
    r = simulate(["go on"], only_go)
    assert (r.accepted, r.keystrokes) == (1, 4)


def test_empty_lines_are_skipped_and_max_lines_counts_the_rest():
    suggest = oracle("ab cd", "ef")
    r = simulate(["", "ab cd", "", "ef", ""], suggest)
    assert (r.lines, r.characters) == (2, 7)
    r1 = simulate(iter(["", "ab cd", "ef"]), suggest, max_lines=1)
    assert (r1.lines, r1.characters) == (1, 5)
    empty = simulate(["", ""], suggest)
    assert (empty.lines, empty.ksr, empty.latency_p50_ms) == (0, 0.0, 0.0)


def test_bad_options_are_usage_errors():
    with pytest.raises(UsageError, match="--top"):
        simulate(["a"], oracle("a"), top=0)
    with pytest.raises(UsageError, match="--max-lines"):
        simulate(["a"], oracle("a"), max_lines=0)


def test_read_lines_streams_without_line_breaks(tmp_path):
    f = tmp_path / "t.txt"
    f.write_bytes("one\r\ntwo\n\nDónde".encode())
    assert list(read_lines(f)) == ["one", "two", "", "Dónde"]
    with pytest.raises(CorpusError, match="no such file"):
        list(read_lines(tmp_path / "missing.txt"))


# ----------------------------------------------------------------------------------------- a real tiny model

@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    run = tmp_path_factory.mktemp("lm")
    train_tiny_lm(run, cell="gru", steps=150)
    return load_checkpoint(run, kind="lm")


def test_a_model_that_memorized_the_text_saves_keystrokes(lm, tmp_path):
    f = tmp_path / "held.txt"
    f.write_text("the quick brown fox jumps over the lazy dog.\n\nthe lazy dog jumps\n", encoding="utf-8")
    r = measure_file(lm.model, lm.tokenizer, f, top=3)
    assert (r.lines, r.characters) == (2, 44 + 18)
    assert r.ksr > 0.3 and r.accepted > 0
    assert r.completion_topk >= r.completion_top1 > 0 and r.next_word_topk >= r.next_word_top1
    assert 0 < r.latency_p50_ms <= r.latency_p95_ms and 0 < r.cpu_p50_ms <= r.cpu_p95_ms
    # the file path and a direct simulation over the same Autocompleter agree on every count
    direct = simulate(["the quick brown fox jumps over the lazy dog.", "the lazy dog jumps"],
                      autocompleter_suggester(Autocompleter(lm.model, lm.tokenizer, k=3)), top=3)
    counts = lambda x: {k: v for k, v in x.to_dict().items() if not k.startswith(("latency", "cpu"))}
    assert counts(direct) == counts(r)


def test_measure_file_refuses_a_file_without_text(lm, tmp_path):
    f = tmp_path / "blank.txt"
    f.write_text("\n\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="no non-empty lines"):
        measure_file(lm.model, lm.tokenizer, f)
    with pytest.raises(UsageError, match="--top"):
        measure_file(lm.model, lm.tokenizer, f, top=0)


def test_latency_percentiles_are_nearest_rank():
    from nlp_rnn.keystrokes import _percentile_ms

    seconds = [i / 1000 for i in range(1, 21)]  # 1..20 ms
    assert _percentile_ms(seconds, 50) == pytest.approx(10)
    assert _percentile_ms(seconds, 95) == pytest.approx(19)
    assert _percentile_ms(seconds[:1], 95) == pytest.approx(1)
