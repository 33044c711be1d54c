"""How the command line fails: every user mistake is one `error:` line on stderr naming the file (and line),
exit code 2 for usage problems and 1 for runtime ones, and never a traceback unless --debug asks for it."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import typer.main
from typer.testing import CliRunner

from nlp_rnn import __version__
from nlp_rnn.cli import app
from nlp_rnn.cli.common import state
from nlp_rnn.errors import CorpusError, NlpRnnError, UsageError

runner = CliRunner()

LM_BUDGET = ["--max-steps", "2", "--hidden", "16", "--embed", "8", "--batch-size", "2", "--bptt", "8",
             "--device", "cpu"]
MT_BUDGET = ["--max-steps", "2", "--hidden", "16", "--embed", "8", "--vocab-size", "60", "--batch-tokens", "64",
             "--device", "cpu"]

EN = ["the cat sleeps on the warm mat", "a small dog runs in the park", "we drink coffee every morning",
      "my sister reads a long book", "the train leaves at nine"]
ES = ["el gato duerme en la alfombra", "un perro pequeño corre en el parque", "bebemos café cada mañana",
      "mi hermana lee un libro largo", "el tren sale a las nueve"]


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_no_traceback(result):
    assert "Traceback" not in result.stdout and "Traceback" not in result.stderr


def assert_one_line_error(result, code: int, *needles):
    """The contract of App.invoke: one `error:` line on stderr, nothing on stdout, the class's exit code."""
    assert_no_traceback(result)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "unexpected" not in lines[0], lines[0]
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
    assert result.exit_code == code, (result.exit_code, result.stderr)


@pytest.fixture(autouse=True)
def _fresh_cli_state(monkeypatch):
    """--debug/--quiet live in module state; every test starts (and leaves) them off."""
    monkeypatch.delenv("NLP_RNN_DEBUG", raising=False)
    monkeypatch.setattr(state, "debug", False)
    monkeypatch.setattr(state, "quiet", False)


@pytest.fixture
def d(tmp_path):
    """Small corpora, good and broken, written fresh for each test."""
    def put(name, content):
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        return p

    lm_text = "".join(s + "\n" for s in (EN + ES) * 12)
    ns = SimpleNamespace(
        tmp=tmp_path,
        out=tmp_path / "run",
        missing=tmp_path / "missing.txt",
        lm=put("lm.txt", lm_text),
        empty=put("empty.txt", ""),
        blank=put("blank.txt", "\n  \n\n"),
        binary=put("weights.txt", b"looks like text\n\x00\x00\x01\x02"),
        latin1=put("latin1.txt", b"first line\nsecond line\ncaf\xe9 con leche\n" + lm_text.encode()),
        src=put("train.en", "".join(s + "\n" for s in EN * 6)),
        tgt=put("train.es", "".join(s + "\n" for s in ES * 6) + "\n"),  # Multi30k style: one extra blank line
        short=put("short.es", "".join(s + "\n" for s in ES[:3])),
        src_latin1=put("latin1.en", "".join(s + "\n" for s in EN[:2]).encode() + b"na\xefve\n"
                       + "".join(s + "\n" for s in (EN * 6)[3:]).encode()),
        tsv=put("pairs.tsv", "".join(f"{e}\t{s}\tCC-BY 2.0 (France)\n" for e, s in zip(EN * 6, ES * 6))),
        bad_tsv=put("broken.tsv", f"{EN[0]}\t{ES[0]}\n{EN[1]}\t{ES[1]}\n{EN[2]} {ES[2]}\n"),
        long_tsv=put("long.tsv", "".join(f"{e}\t{s}\n" for e, s in zip(EN, ES))),
        dir=tmp_path / "a-directory",
    )
    ns.dir.mkdir()
    put("a-directory/inside.txt", "text\n")
    return ns


# ---------------------------------------------------------------------------------------------- corpus problems

CORPUS_CASES = {
    # corpus check, monolingual and parallel
    "check-missing-file": (lambda d: ["corpus", "check", d.missing], 2, lambda d: [d.missing, "no such file"]),
    "check-pairs-is-a-directory": (lambda d: ["corpus", "check", "--pairs", d.dir], 1,
                                   lambda d: [d.dir, "is a directory"]),
    "check-empty-file": (lambda d: ["corpus", "check", d.empty], 1, lambda d: [d.empty, "corpus is empty"]),
    "check-blank-file": (lambda d: ["corpus", "check", d.blank], 1, lambda d: [d.blank, "corpus is empty"]),
    "check-binary-file": (lambda d: ["corpus", "check", d.binary], 1, lambda d: [f"{d.binary}:2:", "binary file"]),
    "check-invalid-utf8": (lambda d: ["corpus", "check", d.latin1], 1,
                           lambda d: [f"{d.latin1}:3:", "invalid UTF-8", "--encoding-errors replace"]),
    "check-aligned-lengths": (lambda d: ["corpus", "check", "--src", d.src, "--tgt", d.short], 1,
                              lambda d: [f"{d.src} has 30 lines", f"{d.short} has 3"]),
    "check-tsv-missing-column": (lambda d: ["corpus", "check", "--pairs", d.bad_tsv], 1,
                                 lambda d: [f"{d.bad_tsv}:3:", "expected at least 2 tab-separated columns"]),
    "check-all-pairs-too-long": (lambda d: ["corpus", "check", "--pairs", d.long_tsv, "--max-len", "3"], 1,
                                 lambda d: [d.long_tsv, "5 too_long", "--max-len"]),
    # train lm
    "lm-missing-file": (lambda d: ["train", "lm", d.missing, "-o", d.out, *LM_BUDGET], 2,
                        lambda d: [d.missing, "no such file"]),
    "lm-empty-file": (lambda d: ["train", "lm", d.empty, "-o", d.out, *LM_BUDGET], 1,
                      lambda d: [d.empty, "corpus is empty"]),
    "lm-binary-file": (lambda d: ["train", "lm", d.binary, "-o", d.out, *LM_BUDGET], 1,
                       lambda d: [f"{d.binary}:2:", "binary file"]),
    "lm-invalid-utf8": (lambda d: ["train", "lm", d.latin1, "-o", d.out, *LM_BUDGET], 1,
                        lambda d: [f"{d.latin1}:3:", "invalid UTF-8"]),
    "lm-val-invalid-utf8": (lambda d: ["train", "lm", d.lm, "--val", d.latin1, "-o", d.out, *LM_BUDGET], 1,
                            lambda d: [f"{d.latin1}:3:", "invalid UTF-8"]),
    # train mt
    "mt-missing-src": (lambda d: ["train", "mt", "--src", d.missing, "--tgt", d.tgt, "-o", d.out, *MT_BUDGET], 2,
                       lambda d: [d.missing, "no such file"]),
    "mt-pairs-is-a-directory": (lambda d: ["train", "mt", "--pairs", d.dir, "-o", d.out, *MT_BUDGET], 1,
                                lambda d: [d.dir, "is a directory"]),
    "mt-empty-pairs": (lambda d: ["train", "mt", "--pairs", d.empty, "-o", d.out, *MT_BUDGET], 1,
                       lambda d: [d.empty, "no usable sentence pairs"]),
    "mt-binary-pairs": (lambda d: ["train", "mt", "--pairs", d.binary, "-o", d.out, *MT_BUDGET], 1,
                        lambda d: [f"{d.binary}:2:", "binary file"]),
    "mt-invalid-utf8": (lambda d: ["train", "mt", "--src", d.src_latin1, "--tgt", d.tgt, "-o", d.out, *MT_BUDGET], 1,
                        lambda d: [f"{d.src_latin1}:3:", "invalid UTF-8"]),
    "mt-aligned-lengths": (lambda d: ["train", "mt", "--src", d.src, "--tgt", d.short, "-o", d.out, *MT_BUDGET], 1,
                           lambda d: [d.src, d.short, "30 lines", "has 3"]),
    "mt-tsv-missing-column": (lambda d: ["train", "mt", "--pairs", d.bad_tsv, "-o", d.out, *MT_BUDGET], 1,
                              lambda d: [f"{d.bad_tsv}:3:", "columns"]),
    "mt-all-pairs-too-long": (lambda d: ["train", "mt", "--pairs", d.long_tsv, "--max-len", "2", "-o", d.out,
                                         *MT_BUDGET], 1, lambda d: [d.long_tsv, "raise --max-len"]),
    # commands that read a file before they need a model
    "translate-input-missing": (lambda d: ["translate", "-i", d.missing], 2, lambda d: [d.missing, "no such file"]),
    "translate-input-is-a-directory": (lambda d: ["translate", "-i", d.dir], 1, lambda d: [d.dir, "is a directory"]),
    "eval-lm-binary": (lambda d: ["eval", "lm", d.binary], 1, lambda d: [f"{d.binary}:2:", "binary file"]),
    "eval-mt-aligned-lengths": (lambda d: ["eval", "mt", "-m", d.tmp / "model", "--src", d.src, "--ref", d.short], 1,
                                lambda d: [d.src, d.short, "differ in length"]),
}


@pytest.mark.parametrize("case", list(CORPUS_CASES))
def test_corpus_problem_is_one_line_naming_the_file(d, case):
    argv, code, needles = CORPUS_CASES[case]
    result = cli(*argv(d))
    assert_one_line_error(result, code, *needles(d))
    assert not d.out.exists(), "nothing is written when the corpus is rejected"


def test_encoding_errors_replace_lets_corpus_check_read_the_file(d):
    result = cli("corpus", "check", d.latin1, "--encoding-errors", "replace", "--json")
    assert result.exit_code == 0, result.stderr
    assert_no_traceback(result)
    assert str(d.latin1) in result.stdout and '"kind": "text"' in result.stdout


def test_encoding_errors_replace_lets_train_lm_run(d):
    result = cli("--quiet", "train", "lm", d.latin1, "-o", d.out, "--encoding-errors", "replace", *LM_BUDGET)
    assert result.exit_code == 0, result.stderr
    assert_no_traceback(result)
    assert result.stderr == ""
    assert (d.out / "model").exists()
    assert "model written to" in result.stdout


def test_encoding_errors_replace_lets_train_mt_run_on_multi30k_style_files(d):
    result = cli("--quiet", "train", "mt", "--src", d.src_latin1, "--tgt", d.tgt, "-o", d.out,
                 "--encoding-errors", "replace", "--json", *MT_BUDGET)
    assert result.exit_code == 0, result.stderr
    assert_no_traceback(result)
    assert (d.out / "model").exists()
    assert '"steps": 2' in result.stdout


# ---------------------------------------------------------------------------------------------- bad flag values

FLAG_CASES = {
    "lm-lr-zero": (lambda d: ["train", "lm", d.lm, "-o", d.out, *LM_BUDGET, "--lr", "0"], 2, ["--lr", "positive"]),
    "mt-lr-zero": (lambda d: ["train", "mt", "--pairs", d.tsv, "-o", d.out, *MT_BUDGET, "--lr", "0"], 2, ["--lr"]),
    "lm-no-budget": (lambda d: ["train", "lm", d.lm, "-o", d.out], 2, ["--max-steps", "--max-time", "--epochs"]),
    "lm-bad-duration": (lambda d: ["train", "lm", d.lm, "-o", d.out, *LM_BUDGET, "--max-time", "5x"], 2,
                        ["--max-time '5x'", "90s"]),
    "mt-bad-duration": (lambda d: ["train", "mt", "--pairs", d.tsv, "-o", d.out, *MT_BUDGET, "--max-time", "5x"], 2,
                        ["--max-time '5x'"]),
    "lm-zero-duration": (lambda d: ["train", "lm", d.lm, "-o", d.out, "--max-time", "0s"], 2, ["--max-time"]),
    "lm-threads-zero": (lambda d: ["train", "lm", d.lm, "-o", d.out, *LM_BUDGET, "--threads", "0"], 2,
                        ["--threads"]),
    "lm-unknown-device": (lambda d: ["train", "lm", d.lm, "-o", d.out, *LM_BUDGET, "--device", "tpu"], 2,
                          ["--device", "'tpu'"]),
    "lm-val-fraction": (lambda d: ["train", "lm", d.lm, "-o", d.out, *LM_BUDGET, "--val-fraction", "1.5"], 2,
                        ["--val-fraction"]),
    "mt-tokenizer-type": (lambda d: ["train", "mt", "--pairs", d.tsv, "-o", d.out, *MT_BUDGET,
                                     "--tokenizer-type", "wordpiece"], 2, ["--tokenizer-type", "'wordpiece'"]),
    "mt-max-len-zero": (lambda d: ["train", "mt", "--pairs", d.tsv, "-o", d.out, *MT_BUDGET, "--max-len", "0"], 2,
                        ["--max-len"]),
    "mt-two-sources": (lambda d: ["train", "mt", "--pairs", d.tsv, "--src", d.src, "--tgt", d.tgt, "-o", d.out,
                                  *MT_BUDGET], 2, ["exactly one of"]),
    "check-max-len-zero": (lambda d: ["corpus", "check", "--pairs", d.tsv, "--max-len", "0"], 2, ["--max-len"]),
    "check-files-and-pairs": (lambda d: ["corpus", "check", d.lm, "--pairs", d.tsv], 2, ["not both"]),
    "check-nothing": (lambda d: ["corpus", "check"], 2, ["no corpus given"]),
    "eval-lm-dynamic-lr-zero": (lambda d: ["eval", "lm", d.lm, "--dynamic", "--dynamic-lr", "0"], 2,
                                ["--dynamic-lr", "positive"]),
    "eval-lm-dynamic-int8": (lambda d: ["eval", "lm", d.lm, "--dynamic", "--quantize", "int8"], 2,
                             ["--dynamic", "--quantize int8"]),
    "generate-temperature-zero": (lambda d: ["generate", "--temperature", "0"], 2, ["--temperature", "positive"]),
    "generate-top-p-above-one": (lambda d: ["generate", "--top-p", "1.5"], 2, ["--top-p", "1.5"]),
    "generate-top-k-zero": (lambda d: ["generate", "--top-k", "0"], 2, ["--top-k"]),
    "generate-samples-zero": (lambda d: ["generate", "--samples", "0"], 2, ["--samples must be", "from 1"]),
    "translate-beam-zero": (lambda d: ["translate", "--beam", "0", "hello"], 2, ["--beam", "from 1 to 64"]),
    "translate-n-best-above-beam": (lambda d: ["translate", "--beam", "2", "--n-best", "3", "hello"], 2,
                                    ["--n-best"]),
    "translate-sentence-and-file": (lambda d: ["translate", "hello", "-i", d.lm], 2, ["not both"]),
    "tokenizer-unknown-type": (lambda d: ["tokenizer", "train", d.lm, "-o", d.out, "--type", "wordpiece"], 2,
                               ["--type"]),
    "tokenizer-coverage": (lambda d: ["tokenizer", "train", d.lm, "-o", d.out, "--character-coverage", "0"], 2,
                           ["--character-coverage"]),
    # a vocabulary that cannot hold the corpus's characters is a TokenizerError (runtime, exit 1)
    "tokenizer-vocab-too-small": (lambda d: ["tokenizer", "train", d.lm, "-o", d.out, "--vocab-size", "3"], 1,
                                  ["vocabulary size 3 is too small"]),
    "tokenizer-bpe-vocab-below-alphabet": (lambda d: ["tokenizer", "train", d.lm, "-o", d.out, "--type", "bpe",
                                                      "--vocab-size", "10"], 1, ["--vocab-size"]),
}


@pytest.mark.parametrize("case", list(FLAG_CASES))
def test_bad_flag_value_is_one_line(d, case):
    argv, code, needles = FLAG_CASES[case]
    assert_one_line_error(cli(*argv(d)), code, *needles)
    assert not d.out.exists()


def test_negative_samples_is_a_usage_error(d):
    assert_one_line_error(cli("corpus", "check", d.lm, "--samples", "-1"), 2, "--samples")


# Checked inside tasks.train_lm/train_mt, i.e. after the corpus is read, "training on N ..." is printed and the
# progress bar is started. With --quiet the error is still one clean line with the usage exit code.
LATE_CASES = {
    "lm-negative-hidden": (lambda d: ["train", "lm", d.lm, "-o", d.out, *LM_BUDGET, "--hidden", "-5"],
                           lambda d: ["hidden must be a positive number, not -5"]),
    "mt-negative-hidden": (lambda d: ["train", "mt", "--pairs", d.tsv, "-o", d.out, *MT_BUDGET, "--hidden", "-4"],
                           lambda d: ["hidden must be a positive number, not -4"]),
    "lm-zero-batch-size": (lambda d: ["train", "lm", d.lm, "-o", d.out, *LM_BUDGET, "--batch-size", "0"],
                           lambda d: ["--batch-size"]),
    "mt-tiny-batch-tokens": (lambda d: ["train", "mt", "--pairs", d.tsv, "-o", d.out, *MT_BUDGET,
                                        "--batch-tokens", "8"], lambda d: ["--batch-tokens"]),
    "lm-output-under-a-file": (lambda d: ["train", "lm", d.lm, "-o", f"{d.lm}/run", *LM_BUDGET],
                               lambda d: ["is a file"]),
}


@pytest.mark.parametrize("case", list(LATE_CASES))
def test_model_and_output_flags_are_usage_errors(d, case):
    argv, needles = LATE_CASES[case]
    assert_one_line_error(cli("--quiet", *argv(d)), 2, *needles(d))
    assert not (d.out / "model").exists()


@pytest.mark.parametrize("case", list(LATE_CASES))
def test_model_and_output_flags_fail_before_training_output(d, case):
    argv, needles = LATE_CASES[case]
    assert_one_line_error(cli(*argv(d)), 2, *needles(d))


# ---------------------------------------------------------------------------------------------- output paths

def test_tokenizer_output_in_missing_directory_is_created(d):
    target = d.tmp / "no" / "such" / "tok"
    result = cli("tokenizer", "train", d.lm, "-o", target, "--type", "char")
    assert result.exit_code == 0, result.stderr
    assert (target / "tokenizer.json").is_file()


@pytest.mark.parametrize("command", ["translate", "eval-mt"])
def test_output_under_a_file_is_a_usage_error_everywhere(d, command):
    target = d.lm / "out.txt"
    argv = (["translate", "hello", "-o", target] if command == "translate"
            else ["eval", "mt", "-m", d.tmp / "model", "--src", d.src, "--ref", d.tgt, "-o", target])
    assert_one_line_error(cli(*argv), 2, target)


# ---------------------------------------------------------------------------------------------- help, version, debug

def _command_paths(group=None, prefix=()):
    group = group or typer.main.get_command(app)
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name)
        if hasattr(command, "commands"):
            yield from _command_paths(command, (*prefix, name))


COMMANDS = list(_command_paths())


def test_every_expected_command_is_registered():
    for path in [("train", "lm"), ("train", "mt"), ("generate",), ("complete",), ("translate",), ("eval", "lm"),
                 ("eval", "mt"), ("tokenizer", "train"), ("corpus", "check"), ("info",)]:
        assert path in COMMANDS


def test_top_level_help():
    result = cli("--help")
    assert result.exit_code == 0
    assert "Usage:" in result.stdout and "Recurrent neural networks for text" in result.stdout
    for name in ("train", "translate", "generate", "corpus", "tokenizer"):
        assert name in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize("path", COMMANDS, ids=["-".join(p) for p in COMMANDS])
def test_subcommand_help(path):
    result = cli(*path, "--help")
    assert "Usage:" in result.stdout and " ".join(path) in result.stdout
    assert result.stderr == ""
    assert result.exit_code == 0


@pytest.mark.parametrize("argv", [
    ["train", "lm", "corpus.txt", "-o", "run", "--hidden", "abc"],
    ["train", "lm", "corpus.txt"],
    ["corpus", "check", "--no-such-flag"],
], ids=["not-an-int", "missing-required-option", "unknown-option"])
def test_flag_parsing_errors_are_usage_errors(argv):
    result = cli(*argv)
    assert_no_traceback(result)
    assert "unexpected" not in result.stderr
    assert result.exit_code == 2


def test_version():
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout == f"nlp-rnn {__version__}\n"


def test_without_debug_an_error_is_an_exit_not_an_exception(d):
    result = cli("corpus", "check", d.missing)
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2  # a missing input is a usage error


def test_debug_lets_the_library_error_raise(d):
    result = cli("--debug", "corpus", "check", d.missing)
    assert isinstance(result.exception, CorpusError) and isinstance(result.exception, NlpRnnError)
    assert result.exception.path == d.missing
    assert result.exit_code != 0
    assert "error:" not in result.stderr


def test_debug_raises_usage_errors_too():
    result = cli("--debug", "generate", "--temperature", "0")
    assert isinstance(result.exception, UsageError)


def test_debug_from_the_environment(d, monkeypatch):
    monkeypatch.setenv("NLP_RNN_DEBUG", "1")
    result = cli("corpus", "check", d.missing)
    assert isinstance(result.exception, CorpusError)


def test_debug_does_not_stick_to_the_next_command(d):
    cli("--debug", "corpus", "check", d.missing)
    assert_one_line_error(cli("corpus", "check", d.missing), 2, d.missing)
