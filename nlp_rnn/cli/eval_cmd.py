"""`nlp-rnn eval lm|mt|complete`: score a model on held-out text and report the figures (table or --json)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError
from ..limits import check, describe
from ..model_configs import DYNAMIC_LR
from .common import (Beam, Device, EncodingErrors, InferBatch, Json, Lang, LengthPenalty, MaxLenRatio, Model,
                     Overwrite, Quantize, SearchPrecision, Threads, UseShortlist, examples, metrics_table, out_console,
                     print_json, warn)
from .models_cmd import service_for

eval_app = typer.Typer(no_args_is_help=True, help="Evaluate a language model (lm), a translator (mt) or "
                                                  "autocomplete (complete).")


def _show(title: str, figures: dict, as_json: bool) -> None:
    if as_json:
        print_json(figures)
    else:
        out_console.print(metrics_table(title, figures))


@eval_app.command("lm", epilog=examples("nlp-rnn eval lm corpora/prose-es/test.txt --lang es",
                                        "nlp-rnn eval lm -m runs/shakespeare val.txt --json",
                                        "nlp-rnn eval lm -m runs/shakespeare val.txt --dynamic"))
def eval_lm(
    file: Annotated[Path, typer.Argument(help="Text to score (read as a stream: any size).")],
    model: Model = None,
    lang: Annotated[str, typer.Option("--lang", help="Language of the shipped LM to use without -m: en or es.")] = "en",
    encoding_errors: EncodingErrors = "strict",
    as_json: Json = False,
    threads: Threads = None,
    device: Device = "auto",
    quantize: Quantize = "none",
    dynamic: Annotated[bool, typer.Option(
        "--dynamic", help="Also report dynamic evaluation (Krause et al. 2018): the model takes an SGD step after "
                          "each 128 characters it has scored, adapting to the text as it reads it. Reported beside "
                          "the static score, never instead of it.")] = False,
    dynamic_lr: Annotated[float, typer.Option(
        "--dynamic-lr", help="Step size of --dynamic." + describe("lr"))] = DYNAMIC_LR,
):
    """Cross-entropy of a text under a language model: nats/char, bits/char, perplexity."""
    from ..corpora import check_input_file, iter_text_chunks

    check("lr", dynamic_lr, "--dynamic-lr")
    if dynamic and quantize != "none":
        raise UsageError("--dynamic adapts the model's weights, which --quantize int8 cannot: drop one of them")
    check_input_file(file, encoding_errors)
    service = service_for(model, "lm", threads, device, quantize)
    lang_ = None if model is not None else lang
    start = time.perf_counter()
    m = service.score(iter_text_chunks(file, encoding_errors), lang_)
    if dynamic:  # a second pass over the file, on a copy of the model
        d = service.score(iter_text_chunks(file, encoding_errors), lang_, dynamic_lr=dynamic_lr)
        m.update(dynamic_nats_per_char=d["nats_per_char"], dynamic_bits_per_char=d["bits_per_char"],
                 dynamic_lr=dynamic_lr)
    m["seconds"] = round(time.perf_counter() - start, 3)
    if m["unk_chars"]:
        warn(f"{m['unk_chars']} characters of {file} are outside the model's vocabulary (scored as <unk>)")
    _show(str(file), m, as_json)


@eval_app.command("mt", epilog=examples("nlp-rnn eval mt --src test.en --ref test.es",
                                        "nlp-rnn eval mt -m runs/de-en --src val.de --ref val.en --json"))
def eval_mt(
    src: Annotated[Path, typer.Option("--src", help="Source sentences, one per line.")],
    ref: Annotated[Path, typer.Option("--ref", help="Reference translations, aligned with --src.")],
    model: Model = None,
    src_lang: Annotated[Optional[str], typer.Option(
        "--src-lang", help="Without -m: the shipped translator from this language (en or es; default: guessed).")] = None,
    tgt_lang: Annotated[Optional[str], typer.Option(
        "--tgt-lang", help="Without -m: the shipped translator into this language.")] = None,
    beam: Beam = 5,
    length_penalty: LengthPenalty = 0.6,
    max_len_ratio: MaxLenRatio = 2.0,
    batch_size: InferBatch = 32,
    output_file: Annotated[Optional[Path], typer.Option("-o", "--output", help="Also write the hypotheses here.")] = None,
    overwrite: Overwrite = False,
    precision: SearchPrecision = "fp32",
    shortlist: UseShortlist = True,
    encoding_errors: EncodingErrors = "strict",
    as_json: Json = False,
    threads: Threads = None,
    device: Device = "auto",
    quantize: Quantize = "none",
):
    """Translate --src and score against --ref with sacrebleu: BLEU, chrF, TER and their signatures."""
    from ..atomic import atomic_write_text, check_output_file
    from ..corpora import read_aligned
    from ..evaluate import mt_scores
    from ..service import check_translation

    check_translation(beam, 1, length_penalty, max_len_ratio, batch_size)
    corpus = read_aligned(src, ref, encoding_errors=encoding_errors)  # checks both files and their alignment
    if output_file is not None:
        check_output_file(output_file, [src, ref], overwrite)
    service = service_for(model, "mt", threads, device, quantize)
    sources = [s for s, _ in corpus.pairs]
    if model is None and not (src_lang or tgt_lang):  # one direction for the whole file: its majority language
        src_lang = max(("en", "es"), key=lambda lang: sum(service.guess_language(s) == lang for s in sources[:50]))
    start = time.perf_counter()
    done = service.translate(sources, src_lang, tgt_lang, beam=beam, length_penalty=length_penalty,
                             max_len_ratio=max_len_ratio, batch_size=batch_size, precision=precision,
                             shortlist=shortlist)
    seconds = time.perf_counter() - start
    hyps = [t.text for t in done]
    scores = mt_scores(hyps, [t for _, t in corpus.pairs])
    scores.update(direction=done[0].direction, sentences=len(hyps), seconds=round(seconds, 3),
                  sentences_per_s=round(len(hyps) / max(seconds, 1e-9), 1), beam=beam)
    if corpus.stats.dropped:
        warn(f"{sum(corpus.stats.dropped.values())} blank pairs skipped")
    if output_file is not None:
        atomic_write_text(output_file, "".join(h + "\n" for h in hyps))
    if as_json:
        print_json(scores)
        return
    sigs = scores.pop("signatures")
    out_console.print(metrics_table(f"{src} → {ref}", scores))
    for name, sig in sigs.items():
        out_console.print(f"{name}: {sig}")


@eval_app.command("complete", epilog=examples("nlp-rnn eval complete held-out.en.txt --lang en --top 3",
                                              "nlp-rnn eval complete -m runs/lm typed.txt --json"))
def eval_complete(
    file: Annotated[Path, typer.Argument(help="Text to type, one line at a time.")],
    model: Model = None,
    lang: Lang = None,
    top: Annotated[int, typer.Option("--top", help="Suggestions shown per keystroke." + describe("top"))] = 3,
    max_lines: Annotated[Optional[int], typer.Option("--max-lines", help="Type only the first N lines.")] = None,
    as_json: Json = False,
    threads: Threads = None,
    device: Device = "auto",
    quantize: Quantize = "none",
):
    """Simulate a person typing FILE with autocomplete: keystroke savings, suggestion accuracy, latency.

    Before each keystroke the top suggestions are shown (completions inside a word, next words at a word's
    start); when the intended word is among them it is accepted with one keystroke (which also adds the
    following space, if the text has one there); otherwise the next character is typed. Savings rate =
    1 - keystrokes / characters."""
    from ..corpora import check_input_file
    from ..keystrokes import measure_file
    from ..limits import check

    check("top", top)
    check_input_file(file)
    service = service_for(model, "lm", threads, device, quantize)
    if lang is None and model is None:
        from ..keystrokes import read_lines

        first = next((line for line in read_lines(file) if line.strip()), "")
        lang = service.guess_language(first) or "en"
    lm = service.lm(lang if model is None else None)
    report = measure_file(lm.model, lm.tokenizer, file, top=top, max_lines=max_lines).to_dict()
    _show(f"{file}: typing with the top {top} suggestions", report, as_json)


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
