"""Every input reader streams in bounded memory and turns whatever is not UTF-8 text into a CorpusError naming
the file and line: devices, NUL bytes anywhere, UTF-16/32, compressed files, invalid UTF-8, over-long lines,
quoted tabs in TSV. Pipes are read once; `corpus check` prints bounded output; `tokenizer train` and
`eval lm` stream. Random bytes fed to every reader give a CorpusError/UsageError or valid output."""
from __future__ import annotations

import contextlib
import gc
import gzip
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from nlp_rnn import corpora, evaluate, tokenizers
from nlp_rnn.cli import app
from nlp_rnn.errors import CorpusError, UsageError

FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
runner = CliRunner()


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def put(path, content: bytes | str):
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


@contextlib.contextmanager
def small_blocks(block: int, max_line: int | None = None):
    """Read in blocks of `block` bytes (and cap lines at `max_line`), so that lines span many reads."""
    saved = corpora.BLOCK_BYTES, corpora.MAX_LINE_BYTES
    corpora.BLOCK_BYTES = block
    corpora.MAX_LINE_BYTES = max_line or saved[1]
    try:
        yield
    finally:
        corpora.BLOCK_BYTES, corpora.MAX_LINE_BYTES = saved


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


# Readers that take one text file, each as a callable of its path.
ONE_FILE_READERS = {
    "iter_lines": lambda p: list(corpora.iter_lines(p)),
    "iter_text_chunks": lambda p: "".join(corpora.iter_text_chunks(p)),
    "read_file_text": lambda p: corpora.read_file_text(p),
    "read_text": lambda p: corpora.read_text([p]),
    "text_source": lambda p: "".join(corpora.open_text_source([str(p)]).chunks()),
    "read_pairs_tsv": lambda p: corpora.read_pairs(p),
    "read_aligned": lambda p: corpora.read_aligned(p, p),
    "summarize_text": lambda p: corpora.summarize_text([str(p)]),
    "summarize_parallel": lambda p: corpora.summarize_parallel(pairs=str(p)),
    "tokenizer_lines": lambda p: list(corpora.iter_text_lines([p])),
}


# ---------------------------------------------------------------------------------------------- the line reader

def test_lines_are_numbered_decoded_and_normalized(tmp_path):
    f = put(tmp_path / "a.txt", b"\xef\xbb\xbfcafe\xcc\x81\r\n\r\nni\xc3\xb1o")
    assert list(corpora.iter_lines(f)) == [(1, "café"), (2, ""), (3, "niño")]
    assert list(corpora.iter_lines(f, keepends=True)) == [(1, "café\n"), (2, "\n"), (3, "niño")]


def test_a_binary_stream_is_read_like_a_file_and_named_in_errors():
    assert list(corpora.iter_lines(io.BytesIO(b"uno\r\ndos"), name="<stdin>")) == [(1, "uno"), (2, "dos")]
    with pytest.raises(CorpusError) as e:
        list(corpora.iter_lines(io.BytesIO(b"uno\ndos\nbad \xff\n"), name="<stdin>"))
    assert (e.value.path, e.value.line) == ("<stdin>", 3)


@pytest.mark.parametrize("reader", list(ONE_FILE_READERS))
def test_a_nul_byte_far_past_the_start_is_refused_with_its_line(tmp_path, reader):
    """Today's readers looked for NUL bytes in the first 64 KB only."""
    rows = "".join(f"sentence {i}\tfrase {i}\n" for i in range(20_000))  # about 450 KB
    f = put(tmp_path / "pairs.tsv", rows.encode() + b"late\tbinary \x00 here\n")
    with pytest.raises(CorpusError, match="binary file") as e:
        ONE_FILE_READERS[reader](f)
    assert (str(e.value.path), e.value.line) == (str(f), 20_001)


@pytest.mark.parametrize("reader", list(ONE_FILE_READERS))
def test_devices_are_refused_before_reading(reader):
    """A character device is never a corpus: /dev/zero or /dev/urandom would otherwise fill memory."""
    with pytest.raises(CorpusError, match="is a device, not a file") as e:
        ONE_FILE_READERS[reader]("/dev/null")
    assert str(e.value.path) == "/dev/null"


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_endless_devices_are_refused_by_every_entry(device, tmp_path):
    for call in (lambda: corpora.check_input_file(device), lambda: corpora.iter_lines(device),
                 lambda: corpora.read_pairs(device), lambda: corpora.open_text_source([device]),
                 lambda: corpora.summarize_text([device])):
        with pytest.raises(CorpusError, match="is a device"):
            call()
    result = cli("tokenizer", "train", device, "-o", tmp_path / "tok", "--type", "char")
    assert result.exit_code == 1 and "is a device, not a file" in result.stderr


@pytest.mark.parametrize("suffix", [".tsv", ".jsonl", ".csv"])
def test_a_line_over_the_limit_is_an_error_naming_it(tmp_path, suffix):
    huge = "x" * (corpora.MAX_LINE_BYTES + 10)
    first = {".tsv": "a\tb", ".jsonl": json.dumps({"src": "a", "tgt": "b"}), ".csv": "a,b"}[suffix]
    second = {".tsv": f"{huge}\tb", ".jsonl": json.dumps({"src": huge, "tgt": "b"}), ".csv": f"{huge},b"}[suffix]
    f = put(tmp_path / f"pairs{suffix}", f"{first}\n{second}\n{first}\n")
    with pytest.raises(CorpusError, match="longer than 4 MiB") as e:
        corpora.read_pairs(f, *(("src", "tgt") if suffix == ".jsonl" else ()))
    assert (e.value.path, e.value.line) == (f, 2)


def test_a_character_stream_takes_lines_of_any_length(tmp_path):
    """A language model's text (text8 is one 100 MB line) is read in pieces, exactly, with no line limit."""
    line = ("Ünïcödé e\u0301 café 😀 " * 300)[:5000]
    f = put(tmp_path / "one-line.txt", line + "\nshort\n")
    with small_blocks(64, max_line=256):
        assert "".join(corpora.iter_text_chunks(f)) == nfc(line) + "\nshort\n"
        assert "".join(corpora.open_text_source([str(f)]).chunks()) == nfc(line) + "\nshort\n"
        report = corpora.summarize_text([str(f)])
        with pytest.raises(CorpusError, match="longer than"):
            list(corpora.iter_lines(f))
    assert report["line_length_chars"]["p100"] == len(nfc(line))
    assert (report["read"], report["kept"]) == (2, 2)


# ---------------------------------------------------------------------------------------------- what a file is

@pytest.mark.parametrize("encoding, name", [("utf-16", "UTF-16"), ("utf-16-be", "UTF-16"), ("utf-32", "UTF-32"),
                                            ("utf-32-be", "UTF-32")])
def test_utf16_and_utf32_are_named_with_the_conversion_to_run(tmp_path, encoding, name):
    data = "hola\tmundo\n".encode(encoding)
    if not data.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")):
        data = ("\ufeff" + "hola\tmundo\n").encode(encoding)
    f = put(tmp_path / "windows.tsv", data)
    for reader in (lambda: corpora.read_pairs(f), lambda: corpora.read_text([f]), lambda: list(corpora.iter_lines(f))):
        with pytest.raises(CorpusError) as e:
            reader()
        message = str(e.value)
        assert f"is {name} text" in message and "binary" not in message
        assert f"iconv -f {name} -t UTF-8 {f} > {tmp_path / 'windows.utf8.tsv'}" in message


def test_utf16_without_a_byte_order_mark_is_named_too(tmp_path):
    f = put(tmp_path / "no-bom.txt", "hello world\nsecond line\n".encode("utf-16-le"))
    with pytest.raises(CorpusError, match="UTF-16") as e:
        corpora.read_text([f])
    assert "iconv" in str(e.value)


def test_a_compressed_file_says_how_to_read_it(tmp_path):
    f = put(tmp_path / "corpus.txt.gz", gzip.compress(b"some text\n" * 100))
    with pytest.raises(CorpusError, match="gzip-compressed") as e:
        corpora.read_text([f])
    assert f"<(zcat {f})" in str(e.value)


@pytest.mark.parametrize("where", ["tsv", "csv", "jsonl", "aligned-tgt"])
def test_invalid_utf8_names_file_and_line_in_every_pair_reader(tmp_path, where):
    good = [f"line {i}" for i in range(5000)]
    bad = "caf\xe9".encode("latin-1")
    if where == "aligned-tgt":
        src = put(tmp_path / "a.en", "".join(g + "\n" for g in good) + "x\n")
        tgt = put(tmp_path / "a.es", "".join(g + "\n" for g in good).encode() + bad + b"\n")
        call, f = (lambda: corpora.read_aligned(src, tgt)), tgt
    else:
        sep = {"tsv": "\t", "csv": ","}.get(where)
        row = (lambda s: f"{s}{sep}{s}".encode()) if sep else (lambda s: b'{"src": "' + s.encode() + b'", "tgt": "x"}')
        f = put(tmp_path / f"p.{where}", b"".join(row(g) + b"\n" for g in good) + row("x").replace(b"x", bad, 1) + b"\n")
        call = (lambda: corpora.read_pairs(f, "src", "tgt")) if where == "jsonl" else (lambda: corpora.read_pairs(f))
    with pytest.raises(CorpusError, match=r"invalid UTF-8 \(byte 0xe9\).*--encoding-errors replace") as e:
        call()
    assert (e.value.path, e.value.line) == (f, 5001)


def test_encoding_errors_replace_gives_replacement_characters_in_pairs(tmp_path):
    f = put(tmp_path / "p.tsv", b"caf\xe9\tcaf\xc3\xa9\n")
    assert corpora.read_pairs(f, encoding_errors="replace").pairs == [("caf\ufffd", "café")]


# ---------------------------------------------------------------------------------------------- one line at the edge

def test_decode_line_checks_one_line_of_user_input():
    assert corpora.decode_line(b"cafe\xcc\x81\r\n", "<stdin>", 4) == "café"
    assert corpora.decode_line("an\u0303o\n", "argument", 1) == "año"
    assert corpora.decode_line(b"caf\xe9", "<stdin>", 2, "replace") == "caf\ufffd"
    with pytest.raises(CorpusError) as e:
        corpora.decode_line(b"caf\xe9", "<stdin>", 2)
    assert str(e.value).startswith("<stdin>:2: invalid UTF-8 (byte 0xe9)")
    with pytest.raises(CorpusError, match="NUL") as e:
        corpora.decode_line(b"a\x00b", "<stdin>", 7)
    assert e.value.line == 7
    with pytest.raises(CorpusError, match="longer than"):
        corpora.decode_line(b"x" * (corpora.MAX_LINE_BYTES + 1), "<stdin>", 1)
    with pytest.raises(UsageError, match="--encoding-errors"):
        corpora.decode_line(b"x", "<stdin>", 1, "bogus")


def test_decode_line_rechecks_text_read_with_surrogateescape():
    """`sys.stdin` read with errors='surrogateescape' hands undecodable bytes on as lone surrogates."""
    text = b"caf\xe9".decode("utf-8", "surrogateescape")
    with pytest.raises(CorpusError, match="invalid UTF-8 \\(byte 0xe9\\)"):
        corpora.decode_line(text, "<stdin>", 1)
    assert corpora.decode_line(text, "<stdin>", 1, "replace") == "caf\ufffd"


# ---------------------------------------------------------------------------------------------- pipes

@contextlib.contextmanager
def pipe_of(path, data: bytes):
    """A named pipe that a thread fills once with `data`; whatever is left blocked on it is released after."""
    os.mkfifo(path)

    def write():
        try:
            with open(path, "wb") as f:
                f.write(data)
        except OSError:
            pass

    threading.Thread(target=write, daemon=True).start()
    try:
        yield path
    finally:
        for flags in (os.O_RDONLY | os.O_NONBLOCK, os.O_WRONLY | os.O_NONBLOCK):
            with contextlib.suppress(OSError):
                os.close(os.open(path, flags))


def within(seconds: float, fn):
    """fn(), or a failure if it is still blocked after `seconds` (a second open of a drained pipe never returns)."""
    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as e:  # handed to the test below
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still blocked after {seconds}s"
    if "error" in out:
        raise out["error"]
    return out["value"]


def test_a_pipe_is_read_once_and_later_passes_read_a_copy(tmp_path, monkeypatch):
    """`train lm` reads its text twice (vocabulary, then ids): the second pass must not wait on the pipe."""
    spool_dir = tmp_path / "tmp"
    spool_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool_dir))
    text = "uno dos tres\n\ncuatro\n" * 5000
    with pipe_of(tmp_path / "corpus", text.encode()) as p:
        source = corpora.open_text_source([str(p)])
        first = within(20, lambda: "".join(source.chunks()))
        assert len(os.listdir(spool_dir)) == 1
        second = within(20, lambda: "".join(source.chunks()))
    assert first == second == text
    del source
    gc.collect()
    assert os.listdir(spool_dir) == [], "the copy goes with the source"


def test_a_pipe_whose_first_reading_stopped_cannot_be_read_again(tmp_path):
    with small_blocks(1024), pipe_of(tmp_path / "corpus", b"some text\n" * 10_000) as p:
        source = corpora.open_text_source([str(p)])
        chunks = source.chunks()
        within(20, lambda: next(chunks))
        chunks.close()
        with pytest.raises(CorpusError, match="can be read once"):
            within(20, lambda: "".join(source.chunks()))


def test_pairs_and_checks_read_a_pipe_in_one_pass(tmp_path):
    rows = "".join(f"hello {i}\thola {i}\n" for i in range(3000)).encode()
    with pipe_of(tmp_path / "pairs", rows) as p:
        assert len(within(20, lambda: corpora.read_pairs(p)).pairs) == 3000
    with pipe_of(tmp_path / "text", rows) as p:
        assert within(20, lambda: corpora.summarize_text([str(p)]))["read"] == 3000


# ---------------------------------------------------------------------------------------------- TSV quoting

@pytest.mark.parametrize("line", ['"hello\tworld"\thola', 'hi\t"hola\tmundo"', '"say ""hi""\tnow"\tdi hola\tCC-BY'])
def test_a_quoted_tsv_field_holding_a_tab_is_refused_with_its_line(tmp_path, line):
    f = put(tmp_path / "pairs.tsv", f"one\tuno\n{line}\ntwo\tdos\n")
    with pytest.raises(CorpusError, match="quoted field holds a tab") as e:
        corpora.read_pairs(f)
    assert (e.value.path, e.value.line) == (f, 2)
    assert "CSV (.csv) or JSONL" in str(e.value)


def test_anki_exports_with_quotes_inside_sentences_still_read_as_they_are(tmp_path):
    """Quotes are plain characters in TSV: only a field wrapped in quotes around a tab is refused."""
    rows = ['"Stop," he said.\t"Para", dijo.\tCC-BY 2.0 (France) Attribution: tatoeba.org #1 (a) & #2 (b)',
            '"Come here."\t"Ven aquí."\tCC-BY 2.0 (France) Attribution: tatoeba.org #3 (c) & #4 (d)',
            '"Yes\t"Sí\tCC-BY 2.0 (France)',
            'She said "hi".\tDijo "hola".\tCC-BY 2.0 (France)']
    f = put(tmp_path / "spa.txt", "".join(r + "\n" for r in rows))
    assert corpora.read_pairs(f).pairs == [tuple(r.split("\t")[:2]) for r in rows]


# ---------------------------------------------------------------------------------------------- corpus check

def test_corpus_check_prints_bounded_samples_of_a_huge_line(tmp_path):
    f = put(tmp_path / "one-line.txt", "word " * 1_000_000 + "\n")  # 5 MB, one line
    result = cli("corpus", "check", f)
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout) < 3000
    assert "… (+4,999,800 chars)" in result.stdout
    result = cli("corpus", "check", f, "--json")
    assert len(result.stdout) < 3000
    report = json.loads(result.stdout)
    assert report["samples"] == ["word " * 40 + "… (+4,999,800 chars)"]
    assert report["line_length_chars"]["p100"] == 5_000_000


def test_corpus_check_pairs_samples_are_shortened_too(tmp_path):
    f = put(tmp_path / "p.tsv", "a b\tc d\n" + "x" * 100_000 + "\ty\n")
    report = json.loads(cli("corpus", "check", "--pairs", f, "--json", "--samples", "5").stdout)
    assert sorted(report["samples"]) == [["a b", "c d"], ["x" * 200 + "… (+99,800 chars)", "y"]]


def test_corpus_check_lists_a_bounded_number_of_files(tmp_path):
    d = tmp_path / "many"
    d.mkdir()
    for i in range(130):
        put(d / f"{i:03}.txt", f"text {i}\n")
    report = json.loads(cli("corpus", "check", d, "--json").stdout)
    assert report["file_count"] == 130 and len(report["files"]) == 100 and report["read"] == 130
    text = " ".join(cli("corpus", "check", d).stdout.split())  # the table title wraps
    assert "and 127 more files" in text and "100.txt" not in text


def test_corpus_check_escapes_control_characters_in_printed_samples(tmp_path):
    f = put(tmp_path / "ansi.txt", "red \x1b[31mtext\x1b[0m [bold]x[/bold]\n")
    result = cli("corpus", "check", f)
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stdout and "\\x1b[31mtext" in result.stdout and "[bold]x[/bold]" in result.stdout
    assert json.loads(cli("corpus", "check", f, "--json").stdout)["samples"] == ["red \x1b[31mtext\x1b[0m [bold]x[/bold]"]


def test_corpus_check_samples_are_capped(tmp_path):
    f = put(tmp_path / "a.txt", "text\n")
    result = cli("corpus", "check", f, "--samples", "101")
    assert result.exit_code == 2 and "--samples must be between 0 and 100" in result.stderr


@settings(max_examples=60, deadline=None, database=None)
@given(lengths=st.lists(st.integers(0, 200_000), min_size=1, max_size=300))
def test_length_histogram_percentiles_are_exact_below_1024_and_within_1_percent_above(lengths):
    h = corpora.LengthHistogram()
    for n in lengths[: len(lengths) // 2]:
        h.add(n)
    h.add_many(lengths[len(lengths) // 2:])
    exact, approx = corpora.percentiles(lengths), h.percentiles()
    assert approx["p100"] == exact["p100"] == max(lengths)
    for p, value in exact.items():
        assert (approx[p] == value) if value < 1024 else (value * 0.99 <= approx[p] <= value)


def test_length_histogram_stays_small_for_many_distinct_lengths():
    h = corpora.LengthHistogram()
    h.add_many(list(range(1, 200_000)))
    assert len(h.counts) < 6000


def test_reservoir_keeps_stream_order_and_samples_uniformly():
    counts = [0] * 10
    for seed in range(3000):
        r = corpora.Reservoir(3, seed)
        r.offer_many(list(range(6)))
        for i in range(6, 10):
            if r.wants():
                r.put(i)
            else:
                r.skip()
        sample = r.sample()
        assert len(sample) == 3 and sample == sorted(sample)
        for i in sample:
            counts[i] += 1
    assert all(abs(c / 3000 - 0.3) < 0.04 for c in counts), counts
    assert corpora.Reservoir(0).sample() == [] and corpora.Reservoir(5, 1).sample() == []


# ---------------------------------------------------------------------------------------------- tokenizer training

def test_sample_lines_keeps_everything_that_fits_in_order():
    lines = ["uno", "  ", "cafe\u0301", "", "tres"]
    assert tokenizers.sample_lines(lines) == ["uno", "café", "tres"]


def test_sample_lines_draws_a_bounded_uniform_sample_from_a_stream():
    stream = (f"line {i:06}" for i in range(200_000))
    sample = tokenizers.sample_lines(stream, max_lines=500, max_chars=10_000)
    assert len(sample) == 500  # 500 lines of 11 characters fit in 10,000
    assert sample == sorted(sample) and len(set(sample)) == len(sample)
    numbers = [int(s.split()[1]) for s in sample]
    assert min(numbers) < 20_000 and max(numbers) > 180_000  # drawn from the whole stream, not its head
    again = tokenizers.sample_lines((f"line {i:06}" for i in range(200_000)), max_lines=500, max_chars=10_000)
    assert again == sample


def test_tokenizer_train_streams_lines_and_cuts_very_long_ones(tmp_path):
    f = put(tmp_path / "corpus.txt", "\r\n".join(["la casa roja", "", "el perro corre"] * 40) + "\r\n"
            + "palabra " * 3000 + "\n")
    seen = list(corpora.iter_text_lines([f]))
    assert max(map(len, seen)) <= 4096 and "".join(seen).count("palabra") == 3000
    assert all(line.strip() and "\r" not in line for line in seen)
    result = cli("tokenizer", "train", f, "-o", tmp_path / "tok", "--type", "unigram", "--vocab-size", "60", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["lines"] == len(seen) == 80 + 6
    assert report["sample"] == "la casa roja"


# ---------------------------------------------------------------------------------------------- eval lm streaming

@pytest.fixture(scope="module")
def tiny_lm():
    import torch

    from nlp_rnn.models import CharLM, LMConfig

    torch.manual_seed(0)
    tok = tokenizers.CharTokenizer.build(["abcdefghij klmnopqrstuvwxyz.\n"])
    model = CharLM(LMConfig(vocab_size=tok.vocab_size, cell="lstm", hidden=16, embed=8, dropout=0.0).validate())
    return model, tok


def _split(text: str, sizes: list[int]) -> list[str]:
    out, i = [], 0
    for n in sizes:
        out.append(text[i:i + n])
        i += n
    return out + [text[i:]]


@pytest.mark.parametrize("sizes", [[1] * 40, [255, 1, 256, 257], [700], [0, 3, 0, 500], [513, 513]])
def test_lm_metrics_over_chunks_equals_the_whole_text(tiny_lm, sizes):
    model, tok = tiny_lm
    rng = random.Random(1)
    text = "".join(rng.choice("abc de fgh.\nZ") for _ in range(1500))  # Z is unknown
    whole = evaluate.lm_metrics(model, tok, text)
    chunked = evaluate.lm_metrics(model, tok, iter(_split(text, sizes)))
    assert chunked["chars"] == whole["chars"] == 1499 and chunked["unk_chars"] == whole["unk_chars"] > 0
    assert chunked["nats_per_char"] == pytest.approx(whole["nats_per_char"], rel=1e-6)


def test_lm_metrics_scores_chunks_as_they_come(tiny_lm):
    """Scoring starts before the last chunk is read: the text is never held whole."""
    model, tok = tiny_lm
    calls = []
    real_forward = model.forward

    def counting_forward(*a, **k):
        calls.append(1)
        return real_forward(*a, **k)

    seen_before_last = []

    def chunks():
        for _ in range(6):
            seen_before_last.append(len(calls))
            yield "abc def ghi. " * 80

    model.forward = counting_forward
    try:
        m = evaluate.lm_metrics(model, tok, chunks())
    finally:
        del model.forward
    assert m["chars"] == 6 * 13 * 80 - 1
    assert seen_before_last[-1] > 0, "nothing was scored before the last chunk"


def test_lm_metrics_of_a_file_in_chunks_equals_reading_it_whole(tiny_lm, tmp_path):
    model, tok = tiny_lm
    f = put(tmp_path / "t.txt", "abc def\r\nghi.\n" * 300)
    whole = evaluate.lm_metrics(model, tok, corpora.read_file_text(f))
    with small_blocks(100):
        streamed = evaluate.lm_metrics(model, tok, corpora.iter_text_chunks(f))
    assert streamed["chars"] == whole["chars"]
    assert streamed["nats_per_char"] == pytest.approx(whole["nats_per_char"], rel=1e-6)


# ---------------------------------------------------------------------------------------------- random bytes

PIECES = [b"a", b"word ", b"\n", b"\r\n", b"\r", b"\t", b",", b'"', b"{", b"}", b'"src": ', "é".encode(),
          "e\u0301".encode(), "😀".encode(), b"\xff", b"\xe2\x82", b"\x00", b"\xef\xbb\xbf", b"\xff\xfe", b"\x1f\x8b"]
BYTES = st.one_of(st.binary(max_size=200), st.lists(st.sampled_from(PIECES), max_size=80).map(b"".join))


def expected_lines(data: bytes) -> list[str] | None:
    """What the reader must return for `data`, or None where it must raise a CorpusError."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff", b"\x1f\x8b", b"PK\x03\x04")):
        return None
    if b"\x00" in data:  # a NUL byte anywhere, after a UTF-8 BOM too
        return None
    if data[:3] == b"BZh" and data[4:10] == b"1AY&SY":
        return None
    try:
        text = nfc(data.decode("utf-8").replace("\r\n", "\n"))
    except UnicodeDecodeError:
        return None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


@FUZZ
@given(data=BYTES, block=st.integers(1, 40))
def test_random_bytes_through_the_line_reader_match_a_reference(tmp_path, data, block):
    f = put(tmp_path / "fuzz.txt", data)
    want = expected_lines(data)
    with small_blocks(block):
        try:
            got = [text for _, text in corpora.iter_lines(f)]
        except CorpusError as e:
            assert want is None, (data, e)
            assert e.path == f
            return
        assert got == want
        chunks = "".join(corpora.iter_text_chunks(f))
        assert chunks == "\n".join(got) + ("\n" if got and data.endswith(b"\n") else "")


@FUZZ
@given(data=BYTES, block=st.integers(1, 40), suffix=st.sampled_from([".tsv", ".csv", ".jsonl"]),
       max_len=st.sampled_from([None, 2]))
def test_random_bytes_to_pair_files_give_pairs_or_a_corpus_error(tmp_path, data, block, suffix, max_len):
    f = put(tmp_path / f"fuzz{suffix}", data)
    with small_blocks(block):
        try:
            c = corpora.read_pairs(f, *(("src", "tgt") if suffix == ".jsonl" else ()), max_len=max_len)
        except CorpusError as e:
            assert str(f) in str(e)
            return
    assert c.pairs and all(s and t and s == nfc(s.strip()) and t == nfc(t.strip()) for s, t in c.pairs)
    assert c.stats.read == c.stats.kept + sum(c.stats.dropped.values()) and c.stats.kept == len(c.pairs)
    if suffix == ".tsv":
        assert all("\t" not in s + t for s, t in c.pairs)
    if max_len:
        assert all(len(s.split()) <= max_len and len(t.split()) <= max_len for s, t in c.pairs)


@FUZZ
@given(a=BYTES, b=BYTES, block=st.integers(1, 40))
def test_random_bytes_to_aligned_files_give_pairs_or_a_corpus_error(tmp_path, a, b, block):
    src, tgt = put(tmp_path / "fuzz.src", a), put(tmp_path / "fuzz.tgt", b)
    la, lb = expected_lines(a), expected_lines(b)
    if la is None or lb is None:
        want = None
    else:  # lines past the shorter file must be blank; then blank pairs are dropped
        extra = la[len(lb):] + lb[len(la):]
        pairs = [(nfc(x.strip()), nfc(y.strip())) for x, y in zip(la, lb)]
        want = [(x, y) for x, y in pairs if x and y] if not any(e.strip() for e in extra) else None
    with small_blocks(block):
        try:
            c = corpora.read_aligned(src, tgt)
        except CorpusError:
            assert not want
            return
    assert c.pairs == want


@FUZZ
@given(data=BYTES, block=st.integers(1, 40), suffix=st.sampled_from([".txt", ".jsonl"]))
def test_random_bytes_to_text_readers_agree_with_each_other(tmp_path, data, block, suffix):
    """read_text, the streamed source, the check and the tokenizer lines see the same text, or all refuse."""
    f = put(tmp_path / f"fuzz{suffix}", data)
    outcomes = []
    with small_blocks(block, max_line=64):
        for reader in (lambda: corpora.read_text([f]), lambda: corpora.summarize_text([str(f)], samples=1000),
                       lambda: "".join(corpora.open_text_source([str(f)]).chunks()),
                       lambda: list(corpora.iter_text_lines([f], max_chars=10))):
            try:
                outcomes.append(reader())
            except (CorpusError, UsageError) as e:
                outcomes.append(e)
    corpus, report, streamed, lines = outcomes
    if isinstance(corpus, Exception):
        assert isinstance(report, CorpusError) and isinstance(lines, CorpusError)
        return
    expected = corpora.describe_text(corpus, samples=1000)
    assert {k: report[k] for k in ("read", "kept", "dropped")} == {k: expected[k] for k in ("read", "kept", "dropped")}
    assert report["line_length_chars"] == expected["line_length_chars"]
    assert sorted(report["samples"]) == sorted(expected["samples"])
    assert streamed.split() == corpus.text.split()
    assert "".join("".join(lines).split()) == "".join(corpus.text.split())


# ---------------------------------------------------------------------------------------------- bounded memory

MEMORY_LIMIT_MB = 25  # growth of peak RSS allowed between a 2 MB and a 100 MB input

MEMORY_SCRIPT = r"""
import json, sys
from nlp_rnn import corpora, tokenizers

small, big, small_jsonl, big_jsonl = sys.argv[1:5]

def no_pairs(fn):
    try:
        fn()
    except corpora.CorpusError as e:
        assert "no usable sentence pairs" in str(e), e
    else:
        raise AssertionError("every pair is longer than --max-len 3")

READERS = {
    "iter_lines": lambda f, j: sum(1 for _ in corpora.iter_lines(f)),
    "text_source": lambda f, j: sum(len(c) for c in corpora.open_text_source([f]).chunks()),
    "read_pairs_tsv": lambda f, j: no_pairs(lambda: corpora.read_pairs(f, max_len=3)),
    "read_pairs_jsonl": lambda f, j: no_pairs(lambda: corpora.read_pairs(j, "src", "tgt", max_len=3)),
    "read_aligned": lambda f, j: no_pairs(lambda: corpora.read_aligned(f, f, max_len=3)),
    "summarize_text": lambda f, j: corpora.summarize_text([f]),
    "summarize_parallel": lambda f, j: corpora.summarize_parallel(pairs=f),
    "tokenizer_sample": lambda f, j: tokenizers.sample_lines(corpora.iter_text_lines([f]), 1000, 200_000),
}

def peak():
    # VmHWM, not ru_maxrss: ru_maxrss starts at the parent's size, which would hide growth below it
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024

for read in READERS.values():
    read(small, small_jsonl)
base = peak()
growth = {}
for name, read in READERS.items():
    read(big, big_jsonl)
    growth[name] = peak() - base
print(json.dumps({"growth_mb": growth, "torch_imported": "torch" in sys.modules}))
"""


def _write_corpus(path, mb: int, jsonl: bool) -> None:
    src, tgt = "the café word " * 50, "la palabra del café " * 40
    line = (json.dumps({"src": src, "tgt": tgt}, ensure_ascii=False) if jsonl else f"{src}\t{tgt}") + "\n"
    block = (line * (2_000_000 // len(line) + 1)).encode()
    with open(path, "wb") as f:
        for _ in range(max(1, mb * 1_000_000 // len(block))):
            f.write(block)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the peak RSS from /proc")
def test_no_reader_peak_memory_grows_with_input_size(tmp_path):
    """Every streaming reader runs on a 2 MB and a 100 MB file (four times the limit) in one fresh process;
    its peak RSS may grow by at most MEMORY_LIMIT_MB. The process must not need torch to read corpora."""
    files = [tmp_path / n for n in ("small.tsv", "big.tsv", "small.jsonl", "big.jsonl")]
    try:
        for path, mb in zip(files, (2, 4 * MEMORY_LIMIT_MB, 2, 4 * MEMORY_LIMIT_MB)):
            _write_corpus(path, mb, path.suffix == ".jsonl")
        proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, *map(str, files)], capture_output=True,
                              text=True, timeout=300)
    finally:
        for path in files:
            path.unlink(missing_ok=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert not result["torch_imported"]
    over = {name: round(mb) for name, mb in result["growth_mb"].items() if mb > MEMORY_LIMIT_MB}
    assert not over, f"peak RSS grew with the input (MB): {over}"
