"""Corpus readers: every file layout `train lm`, `train mt` and `corpus check` accept, what they drop and why,
and that any malformed input ends in a CorpusError naming the file (and line), never another exception."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlp_rnn.corpora import (open_parallel, open_text, pairs_from_dataset, read_aligned, read_pairs, read_text,
                             split_pairs)
from nlp_rnn.errors import CorpusError, UsageError

FUZZ = settings(max_examples=100, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

EN = ["The cat sleeps.", "We eat bread.", "Where is the station?", "I like green tea.", "It rains today."]
ES = ["El gato duerme.", "Comemos pan.", "¿Dónde está la estación?", "Me gusta el té verde.", "Hoy llueve."]


def write(path, content: str | bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def lines(*rows: str) -> str:
    return "".join(r + "\n" for r in rows)


# ---------------------------------------------------------------------------------------------- plain text

def test_txt_file_is_read_as_is_with_blank_lines_kept(tmp_path):
    f = write(tmp_path / "story.txt", "Once upon a time.\n\nThe end.\n")
    c = read_text([f])
    assert c.text == "Once upon a time.\n\nThe end.\n"
    assert c.stats.files == [str(f)]
    assert (c.stats.read, c.stats.kept, c.stats.blank_kept, c.stats.dropped) == (3, 2, 1, {})


def test_txt_crlf_bom_and_decomposed_accents_are_normalized(tmp_path):
    f = write(tmp_path / "win.txt", b"\xef\xbb\xbfcafe\xcc\x81\r\nni\xc3\xb1o\r\n")
    assert read_text([f]).text == "café\nniño\n"


def test_txt_without_final_newline_gets_one(tmp_path):
    assert read_text([write(tmp_path / "a.txt", "no newline")]).text == "no newline\n"


def test_several_files_are_joined_in_the_order_given(tmp_path):
    a, b = write(tmp_path / "a.txt", "alpha\n"), write(tmp_path / "b.txt", "beta\n")
    assert read_text([b, a]).text == "beta\nalpha\n"


def test_directory_reads_its_text_files_sorted_and_recursively(tmp_path):
    d = tmp_path / "corpus"
    write(d / "b.txt", "second\n")
    write(d / "a.txt", "first\n")
    write(d / "sub" / "c.txt", "third\n")
    write(d / "image.png", b"\x89PNG\x00\x00")
    write(d / "notes.md", "# not a corpus suffix\n")
    c = read_text([d])
    assert c.text == "first\nsecond\nthird\n"
    assert [os.path.basename(f) for f in c.stats.files] == ["a.txt", "b.txt", "c.txt"]


def test_directory_without_text_files_is_an_error(tmp_path):
    write(tmp_path / "empty" / "picture.jpg", b"\xff\xd8")
    with pytest.raises(CorpusError, match="holds no text files") as e:
        read_text([tmp_path / "empty"])
    assert e.value.path == tmp_path / "empty"


def test_glob_expands_to_matching_files_sorted(tmp_path):
    write(tmp_path / "part-2.txt", "two\n")
    write(tmp_path / "part-1.txt", "one\n")
    write(tmp_path / "other.txt", "never\n")
    assert read_text([str(tmp_path / "part-*.txt")]).text == "one\ntwo\n"


def test_recursive_glob(tmp_path):
    write(tmp_path / "x" / "y" / "deep.txt", "deep\n")
    assert read_text([str(tmp_path / "**" / "*.txt")]).text == "deep\n"


def test_glob_without_matches_names_the_pattern(tmp_path):
    pattern = str(tmp_path / "nothing-*.txt")
    with pytest.raises(CorpusError, match="no file matches this pattern") as e:
        read_text([pattern])
    assert pattern in str(e.value)


def test_existing_file_with_brackets_in_its_name_is_read_literally(tmp_path):
    f = write(tmp_path / "notes[v1].txt", "bracketed name\n")
    assert read_text([str(f)]).text == "bracketed name\n"


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CorpusError, match="no such file") as e:
        read_text([tmp_path / "missing.txt"])
    assert str(tmp_path / "missing.txt") in str(e.value)


def test_no_specs_at_all_is_a_usage_error():
    with pytest.raises(UsageError):
        read_text([])


@pytest.mark.parametrize("content", ["", "\n\n\n", "   \n\t\n"])
def test_empty_or_blank_corpus_is_an_error(tmp_path, content):
    f = write(tmp_path / "blank.txt", content)
    with pytest.raises(CorpusError, match="corpus is empty") as e:
        read_text([f])
    assert str(f) in str(e.value)


def test_binary_file_is_rejected_with_its_line(tmp_path):
    f = write(tmp_path / "model.txt", b"header\nmore\n\x00\x01\x02binary")
    with pytest.raises(CorpusError, match="binary file") as e:
        read_text([f])
    assert (e.value.path, e.value.line) == (f, 3)
    assert str(e.value).startswith(f"{f}:3: ")


def test_invalid_utf8_names_file_line_and_byte(tmp_path):
    f = write(tmp_path / "latin1.txt", "fine\nstill fine\n".encode() + "caf\xe9\n".encode("latin-1"))
    with pytest.raises(CorpusError) as e:
        read_text([f])
    assert e.value.line == 3
    assert str(e.value).startswith(f"{f}:3: invalid UTF-8 (byte 0xe9)")
    assert "--encoding-errors replace" in str(e.value)


def test_encoding_errors_replace_and_ignore(tmp_path):
    f = write(tmp_path / "latin1.txt", "caf\xe9 ol\xe9\n".encode("latin-1"))
    assert read_text([f], encoding_errors="replace").text == "caf\ufffd ol\ufffd\n"
    assert read_text([f], encoding_errors="ignore").text == "caf ol\n"


def test_unknown_encoding_errors_value_is_a_usage_error_on_bad_bytes(tmp_path):
    f = write(tmp_path / "latin1.txt", "caf\xe9\n".encode("latin-1"))
    with pytest.raises(UsageError, match="--encoding-errors must be strict, replace or ignore"):
        read_text([f], encoding_errors="bogus")


def test_unknown_encoding_errors_value_is_a_usage_error_on_clean_files(tmp_path):
    f = write(tmp_path / "clean.txt", "clean\n")
    with pytest.raises(UsageError, match="--encoding-errors"):
        read_text([f], encoding_errors="bogus")


# ---------------------------------------------------------------------------------------------- jsonl text

def test_jsonl_text_field_with_blank_records_dropped_and_counted(tmp_path):
    f = write(tmp_path / "docs.jsonl", lines(json.dumps({"text": "first doc", "id": 1}), "",
                                              json.dumps({"text": "   "}), json.dumps({"text": "second doc"})))
    c = read_text([f])
    assert c.text == "first doc\nsecond doc\n"
    assert (c.stats.read, c.stats.kept, c.stats.dropped) == (3, 2, {"blank": 1})


def test_jsonl_custom_text_field(tmp_path):
    f = write(tmp_path / "docs.jsonl", lines(json.dumps({"body": "uno"}), json.dumps({"body": "dos"})))
    assert read_text([f], text_field="body").text == "uno\ndos\n"


def test_jsonl_missing_field_names_line_and_suggests_flag(tmp_path):
    f = write(tmp_path / "docs.jsonl", lines(json.dumps({"text": "ok"}), json.dumps({"content": "no text key"})))
    with pytest.raises(CorpusError, match="--text-field") as e:
        read_text([f])
    assert (e.value.path, e.value.line) == (f, 2)


@pytest.mark.parametrize("bad, problem", [
    ("{oops", "invalid JSON"),
    ('["a", "list"]', "expected a JSON object"),
    ('"just a string"', "expected a JSON object"),
    ('{"text": 42}', "no string field 'text'"),
])
def test_jsonl_bad_records_name_their_line(tmp_path, bad, problem):
    f = write(tmp_path / "docs.jsonl", lines(json.dumps({"text": "ok"}), "", bad))
    with pytest.raises(CorpusError, match=problem) as e:
        read_text([f])
    assert e.value.line == 3


@pytest.mark.parametrize("line", ["[" * 100_000, '{"text": ' + "9" * 5000 + "}"], ids=["deep-nesting", "huge-int"])
def test_jsonl_pathological_json_is_a_corpus_error(tmp_path, line):
    f = write(tmp_path / "evil.jsonl", line + "\n")
    with pytest.raises(CorpusError) as e:
        read_text([f])
    assert e.value.line == 1


# ---------------------------------------------------------------------------------------------- aligned pairs

def test_aligned_files_pair_line_by_line(tmp_path):
    src, tgt = write(tmp_path / "train.en", lines(*EN)), write(tmp_path / "train.es", lines(*ES))
    c = read_aligned(src, tgt)
    assert c.pairs == list(zip(EN, ES))
    assert c.stats.files == [str(src), str(tgt)]
    assert (c.stats.read, c.stats.kept, c.stats.dropped) == (5, 5, {})


@pytest.mark.parametrize("extra_on", ["src", "tgt", "both"])
def test_aligned_files_ending_with_one_extra_blank_line_multi30k_style(tmp_path, extra_on):
    src = write(tmp_path / "train.de", lines(*EN) + ("\n" if extra_on in ("src", "both") else ""))
    tgt = write(tmp_path / "train.en", lines(*ES) + ("\n" if extra_on in ("tgt", "both") else ""))
    c = read_aligned(src, tgt)
    assert c.pairs == list(zip(EN, ES))


def test_aligned_files_of_different_lengths_name_both_counts(tmp_path):
    src, tgt = write(tmp_path / "a.en", lines(*EN)), write(tmp_path / "a.es", lines(*ES[:3]))
    with pytest.raises(CorpusError) as e:
        read_aligned(src, tgt)
    msg = str(e.value)
    assert "differ in length" in msg
    assert f"{src} has 5 lines" in msg and f"{tgt} has 3" in msg


def test_aligned_blank_pairs_are_dropped_and_counted(tmp_path):
    src = write(tmp_path / "a.en", lines("hello", "", "bye", "orphan"))
    tgt = write(tmp_path / "a.es", lines("hola", "nada", "adiós", "  "))
    c = read_aligned(src, tgt)
    assert c.pairs == [("hello", "hola"), ("bye", "adiós")]
    assert (c.stats.read, c.stats.kept, c.stats.dropped) == (4, 2, {"blank": 2})


def test_aligned_missing_side_is_named(tmp_path):
    src = write(tmp_path / "a.en", lines(*EN))
    with pytest.raises(CorpusError, match="no such file") as e:
        read_aligned(src, tmp_path / "a.es")
    assert e.value.path == tmp_path / "a.es"


# ---------------------------------------------------------------------------------------------- TSV / CSV / JSONL pairs

def test_tsv_pairs(tmp_path):
    f = write(tmp_path / "pairs.tsv", lines(*(f"{e}\t{s}" for e, s in zip(EN, ES))))
    assert read_pairs(f).pairs == list(zip(EN, ES))


def test_tatoeba_anki_export_with_attribution_column(tmp_path):
    f = write(tmp_path / "spa.txt", lines(
        "Go.\tVe.\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM) & #4986655 (cueyayotl)",
        "Run!\t¡Corre!\tCC-BY 2.0 (France) Attribution: tatoeba.org #906328 (papabear) & #1685404 (Elenitigormiti)",
        "Who?\t¿Quién?\tCC-BY 2.0 (France) Attribution: tatoeba.org #2083030 (CK) & #2093434 (Shishir)"))
    c = read_pairs(f)
    assert c.pairs == [("Go.", "Ve."), ("Run!", "¡Corre!"), ("Who?", "¿Quién?")]
    reversed_ = read_pairs(f, src_col=1, tgt_col=0)
    assert reversed_.pairs == [(b, a) for a, b in c.pairs]


def test_tsv_blank_lines_are_dropped_and_counted(tmp_path):
    f = write(tmp_path / "pairs.tsv", lines("hi\thola", "", "   ", "\t", "bye\t  ", "yes\tsí"))
    c = read_pairs(f)
    assert c.pairs == [("hi", "hola"), ("yes", "sí")]
    assert (c.stats.read, c.stats.kept, c.stats.dropped) == (6, 2, {"blank": 4})


def test_tsv_line_with_a_missing_column_names_file_and_line(tmp_path):
    f = write(tmp_path / "pairs.tsv", lines("hi\thola", "bye\tadiós", "no tab here"))
    with pytest.raises(CorpusError, match="expected at least 2 tab-separated columns, found 1") as e:
        read_pairs(f)
    assert (e.value.path, e.value.line) == (f, 3)


def test_tsv_column_beyond_the_row_is_reported(tmp_path):
    f = write(tmp_path / "pairs.tsv", lines("a\tb\tc"))
    with pytest.raises(CorpusError, match="at least 4"):
        read_pairs(f, src_col=0, tgt_col=3)


def test_csv_pairs_with_quoted_commas_and_quotes(tmp_path):
    f = write(tmp_path / "pairs.csv", lines('"Yes, please.","Sí, por favor."',
                                            'plain,simple',
                                            '"She said ""hi""","Dijo ""hola"""'))
    assert read_pairs(f).pairs == [("Yes, please.", "Sí, por favor."), ("plain", "simple"),
                                   ('She said "hi"', 'Dijo "hola"')]


def test_csv_missing_column_names_file_and_line(tmp_path):
    f = write(tmp_path / "pairs.csv", lines("a,b", "only one"))
    with pytest.raises(CorpusError, match="comma-separated") as e:
        read_pairs(f)
    assert e.value.line == 2


@pytest.mark.parametrize("content", ["one\rtwo,uno\n", "x" * 200_000 + ",y\n"], ids=["stray-CR", "huge-field"])
def test_csv_the_csv_module_rejects_is_a_corpus_error(tmp_path, content):
    f = write(tmp_path / "pairs.csv", content)
    with pytest.raises(CorpusError) as e:
        read_pairs(f)
    assert e.value.path == f


def test_jsonl_pairs_with_two_named_fields(tmp_path):
    f = write(tmp_path / "pairs.jsonl", lines(*(json.dumps({"en": e, "es": s, "id": i})
                                                for i, (e, s) in enumerate(zip(EN, ES)))))
    assert open_parallel(pairs=str(f), src_field="en", tgt_field="es").pairs == list(zip(EN, ES))
    assert open_parallel(pairs=str(f), src_field="es", tgt_field="en").pairs == list(zip(ES, EN))


def test_jsonl_pairs_default_to_src_and_tgt_fields(tmp_path):
    f = write(tmp_path / "pairs.jsonl", lines(json.dumps({"src": "hi", "tgt": "hola"})))
    assert open_parallel(pairs=str(f)).pairs == [("hi", "hola")]


def test_jsonl_pairs_missing_field_lists_the_fields_present(tmp_path):
    f = write(tmp_path / "pairs.jsonl", lines(json.dumps({"en": "hi", "es": "hola"}), json.dumps({"en": "bye"})))
    with pytest.raises(CorpusError, match="--src-field/--tgt-field") as e:
        open_parallel(pairs=str(f), src_field="en", tgt_field="es")
    assert e.value.line == 2 and "fields: en" in str(e.value)


def test_jsonl_pairs_non_string_field(tmp_path):
    f = write(tmp_path / "pairs.jsonl", lines(json.dumps({"src": "hi", "tgt": ["hola"]})))
    with pytest.raises(CorpusError, match="must be strings") as e:
        read_pairs(f, "src", "tgt")
    assert e.value.line == 1


def test_pairs_given_a_directory_says_so(tmp_path):
    with pytest.raises(CorpusError, match="is a directory") as e:
        open_parallel(pairs=str(tmp_path))
    assert e.value.path == tmp_path


# ---------------------------------------------------------------------------------------------- --max-len

def test_max_len_drops_long_pairs_by_words_and_counts_them(tmp_path):
    f = write(tmp_path / "p.tsv", lines("one two\tuno dos", "one two three\tuno", "a\tuno dos tres", "x\ty"))
    c = open_parallel(pairs=str(f), max_len=2)
    assert c.pairs == [("one two", "uno dos"), ("x", "y")]
    assert (c.stats.read, c.stats.kept, c.stats.dropped) == (4, 2, {"too_long": 2})


def test_every_pair_too_long_suggests_raising_max_len(tmp_path):
    src = write(tmp_path / "a.en", lines("a b c d", "e f g h", ""))
    tgt = write(tmp_path / "a.es", lines("a b c d", "e f g h", "x"))
    with pytest.raises(CorpusError) as e:
        open_parallel(src=str(src), tgt=str(tgt), max_len=3)
    msg = str(e.value)
    assert "no usable sentence pairs" in msg and "2 too_long" in msg and "1 blank" in msg
    assert "raise --max-len" in msg and str(src) in msg and str(tgt) in msg


@pytest.mark.parametrize("max_len", [0, -3])
def test_max_len_below_one_is_a_usage_error(tmp_path, max_len):
    f = write(tmp_path / "p.tsv", lines("a\tb"))
    with pytest.raises(UsageError, match="--max-len"):
        open_parallel(pairs=str(f), max_len=max_len)


# ---------------------------------------------------------------------------------------------- choosing a source

@pytest.mark.parametrize("kwargs", [{}, {"pairs": "p.tsv", "dataset": "json"},
                                    {"src": "a.en", "tgt": "a.es", "pairs": "p.tsv"}])
def test_open_parallel_needs_exactly_one_source(kwargs):
    with pytest.raises(UsageError, match="exactly one of"):
        open_parallel(**kwargs)


def test_src_without_tgt_is_a_usage_error():
    with pytest.raises(UsageError, match="go together"):
        open_parallel(src="a.en")


def test_open_text_needs_files_or_dataset_not_both():
    with pytest.raises(UsageError, match="no corpus given"):
        open_text()
    with pytest.raises(UsageError, match="not both"):
        open_text(files=["a.txt"], dataset="text")


# ---------------------------------------------------------------------------------------------- local `datasets` builders

@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """Keep `datasets`' Arrow cache inside the test's tmp_path."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    return tmp_path


def test_dataset_text_builder_over_local_files(hf_cache):
    f = write(hf_cache / "data" / "lines.txt", lines("first line", "", "second line", "   "))
    c = open_text(dataset="text", data_files=[str(f)])
    assert c.text == "first line\nsecond line\n"
    assert (c.stats.read, c.stats.kept, c.stats.dropped) == (4, 2, {"blank": 2})
    assert c.stats.files == ["dataset text"]


def test_dataset_json_builder_with_custom_text_field(hf_cache):
    f = write(hf_cache / "data" / "docs.jsonl", lines(json.dumps({"body": "uno"}), json.dumps({"body": "dos"})))
    assert open_text(dataset="json", data_files=[str(f)], text_field="body").text == "uno\ndos\n"
    with pytest.raises(CorpusError, match="--text-field") as e:
        open_text(dataset="json", data_files=[str(f)])
    assert e.value.line == 1


def test_dataset_json_builder_pairs_with_named_fields(hf_cache):
    f = write(hf_cache / "data" / "pairs.jsonl",
              lines(*(json.dumps({"en": e, "es": s}) for e, s in zip(EN, ES)), json.dumps({"en": "", "es": "x"})))
    c = open_parallel(dataset="json", data_files=[str(f)], src_field="en", tgt_field="es")
    assert c.pairs == list(zip(EN, ES))
    assert c.stats.dropped == {"blank": 1}
    with pytest.raises(CorpusError, match="--src-field/--tgt-field"):
        open_parallel(dataset="json", data_files=[str(f)], src_field="de", tgt_field="es")


def test_dataset_missing_data_file_is_named(hf_cache):
    missing = hf_cache / "nope.txt"
    with pytest.raises(CorpusError, match="no such file") as e:
        open_text(dataset="text", data_files=[str(missing)])
    assert str(missing) in str(e.value)


def test_dataset_builder_that_cannot_parse_the_files(hf_cache):
    f = write(hf_cache / "data" / "not.jsonl", "this is not json\n")
    with pytest.raises(CorpusError, match="datasets could not read these files with the 'json' builder") as e:
        open_text(dataset="json", data_files=[str(f)])
    assert str(f) in str(e.value)


def test_hub_translation_layout_rows():
    rows = [{"translation": {"de": "Hallo", "en": "Hello"}}, {"translation": {"de": "Tschüss", "en": "Bye"}}]
    c = pairs_from_dataset(rows, "de", "en", "dataset wmt")
    assert c.pairs == [("Hallo", "Hello"), ("Tschüss", "Bye")]


def test_unreachable_hub_dataset_fails_fast_offline(tmp_path):
    """With the hub switched off the error says so and points at local files; it must not hang."""
    code = textwrap.dedent("""
        from nlp_rnn.corpora import open_text
        from nlp_rnn.errors import CorpusError
        try:
            open_text(dataset="someone/does-not-exist")
        except CorpusError as e:
            print("CorpusError:", e)
        else:
            print("no error")
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    out = proc.stdout.strip()
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.startswith("CorpusError: dataset 'someone/does-not-exist'"), out
    assert "Hugging Face hub" in out and "HF_HUB_OFFLINE=1" in out
    assert "local files" in out and "--pairs" in out
    assert "\n" not in out


# ---------------------------------------------------------------------------------------------- splits

PAIRS = [(f"source {i}", f"target {i}") for i in range(100)]


def test_split_pairs_is_seeded_and_deterministic():
    assert split_pairs(PAIRS, 0.1, seed=7) == split_pairs(PAIRS, 0.1, seed=7)
    assert split_pairs(PAIRS, 0.1, seed=7)[1] != split_pairs(PAIRS, 0.1, seed=8)[1]


def test_split_pairs_is_disjoint_complete_and_order_preserving():
    train, val = split_pairs(PAIRS, 0.2, seed=1)
    assert len(val) == 20 and len(train) == 80
    assert not set(train) & set(val)
    assert sorted(train + val) == sorted(PAIRS)
    assert train == sorted(train, key=PAIRS.index) and val == sorted(val, key=PAIRS.index)


def test_split_pairs_holds_out_at_least_one():
    train, val = split_pairs(PAIRS[:5], 0.01, seed=0)
    assert len(val) == 1 and len(train) == 4


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5])
def test_split_pairs_fraction_must_be_between_0_and_1(fraction):
    with pytest.raises(UsageError, match="--val-fraction"):
        split_pairs(PAIRS, fraction, seed=0)


def test_split_pairs_too_few_pairs_suggests_a_validation_set():
    with pytest.raises(CorpusError, match="--val-src/--val-tgt"):
        split_pairs(PAIRS[:1], 0.5, seed=0)


# ---------------------------------------------------------------------------------------------- fuzz

@FUZZ
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".txt", ".jsonl"]))
def test_random_bytes_give_text_or_a_corpus_error(tmp_path, data, suffix):
    f = write(tmp_path / f"fuzz{suffix}", data)
    try:
        c = read_text([f])
    except CorpusError as e:
        assert str(f) in str(e)
    else:
        assert c.text.strip() and c.text.endswith("\n")
        assert c.stats.files == [str(f)]


@FUZZ
@given(rows=st.lists(st.text(max_size=30), max_size=12), suffix=st.sampled_from([".tsv", ".txt"]))
def test_random_unicode_tsv_lines_give_pairs_or_a_corpus_error(tmp_path, rows, suffix):
    f = write(tmp_path / f"fuzz{suffix}", "\n".join(rows))
    try:
        c = read_pairs(f)
    except CorpusError as e:
        assert str(f) in str(e)
    else:
        assert c.pairs and all(s and t and "\t" not in s + t for s, t in c.pairs)
        assert c.pairs == [(s.strip(), t.strip()) for s, t in c.pairs]
        assert c.stats.read == c.stats.kept + sum(c.stats.dropped.values())
        assert c.stats.kept == len(c.pairs)


@FUZZ
@given(src=st.lists(st.text(max_size=20), max_size=8), tgt=st.lists(st.text(max_size=20), max_size=8))
def test_random_aligned_files_give_pairs_or_a_corpus_error(tmp_path, src, tgt):
    a = write(tmp_path / "fuzz.src", "\n".join(src))
    b = write(tmp_path / "fuzz.tgt", "\n".join(tgt))
    try:
        c = read_aligned(a, b, max_len=5)
    except CorpusError:
        pass
    else:
        assert c.stats.read == c.stats.kept + sum(c.stats.dropped.values())
        assert all(len(s.split()) <= 5 and len(t.split()) <= 5 for s, t in c.pairs)
