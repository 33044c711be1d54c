"""Commands that use a trained model: generate, complete, translate. Each parses flags, asks the service, renders."""
from __future__ import annotations

import contextlib
import itertools
import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..limits import check, describe
from .common import (Beam, Device, EncodingErrors, InferBatch, Json, Lang, LengthPenalty, MaxLenRatio, Model,
                     Overwrite, Quantize, SearchPrecision, Seed, Threads, UseShortlist, examples, info, out_console,
                     print_json, input_lines, setup, state, styled, warn, write_out)

CHUNK_LINES = 1000  # lines of -i/stdin translated (and written) at a time: memory stays bounded


def service_for(model: Optional[Path], kind: str, threads, device, quantize: str = "none", seed=None):
    """The service over `-m DIR` (for `kind`), or over the shipped models."""
    from ..service import Service

    dev = setup(threads, device, seed)
    given = [model] if model is not None else []
    return Service(**{kind: given}, shipped=model is None, device=dev, quantize=quantize)


def generate(
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="Text to continue.")] = "",
    model: Model = None,
    lang: Lang = None,
    length: Annotated[int, typer.Option("--length", "-l", help="Characters to generate." + describe("length"))] = 300,
    temperature: Annotated[float, typer.Option(
        "--temperature", "-t", help="Below 1: safer text; above 1: more surprising." + describe("temperature"))] = 0.8,
    top_k: Annotated[Optional[int], typer.Option(
        "--top-k", help="Sample only among the K most likely characters." + describe("top_k"))] = None,
    top_p: Annotated[Optional[float], typer.Option(
        "--top-p", help="Sample only among the most likely characters that hold P of the probability."
        + describe("top_p"))] = None,
    samples: Annotated[int, typer.Option(
        "--samples", help="How many independent texts to generate." + describe("samples"))] = 1,
    as_json: Json = False,
    seed: Seed = None,
    threads: Threads = None,
    device: Device = "auto",
    quantize: Quantize = "none",
):
    """Generate text with a character language model, streaming it as it is produced."""

    check("samples", samples)
    service = service_for(model, "lm", threads, device, quantize)
    texts, chars, start = [], 0, time.perf_counter()
    for i in range(samples):
        gen = service.generate(prompt, lang, length, temperature, top_k, top_p, None if seed is None else seed + i)
        if i == 0 and gen.unknown_chars:
            warn(f"prompt characters outside the model's vocabulary are read as <unk>: {''.join(gen.unknown_chars)!r}")
        if not as_json:
            write_out(prompt)
        pieces = []
        for piece in gen.pieces:
            pieces.append(piece)
            if not as_json:
                write_out(piece)
        if not as_json:
            write_out("\n" if i == samples - 1 else "\n\n")
        texts.append(prompt + "".join(pieces))
        chars += length
    seconds = time.perf_counter() - start
    if as_json:
        print_json({"samples": texts, "lang": gen.lang, "chars": chars, "seconds": round(seconds, 3),
                    "chars_per_s": round(chars / max(seconds, 1e-9), 1)})


def complete(
    text: Annotated[str, typer.Argument(help="What has been typed so far.")],
    model: Model = None,
    lang: Lang = None,
    k: Annotated[int, typer.Option("--k", help="Suggestions of each kind." + describe("k"))] = 3,
    beam: Annotated[int, typer.Option("--beam", help="Beam width of the character search." + describe("complete_beam"))] = 8,
    as_json: Json = False,
    threads: Threads = None,
    device: Device = "auto",
    quantize: Quantize = "none",
):
    """Suggest completions of the word being typed and the words likely to follow."""
    service = service_for(model, "lm", threads, device, quantize)
    result = service.complete(text, lang, k=k, beam=beam)
    if as_json:
        print_json(result)
        return
    for title, key in (("completions", "completions"), ("next words", "next_words")):
        out_console.print(styled(f"{title}:", "bold", ", ".join(f"{s['text']} ({s['prob']:.1%})" for s in result[key])
                                 or "(none)"))


def translate(
    sentence: Annotated[Optional[str], typer.Argument(help="A sentence (default: read stdin, or -i FILE).")] = None,
    model: Model = None,
    src_lang: Annotated[Optional[str], typer.Option(
        "--src", help="Source language of the shipped translators, en or es (default: guessed per line).")] = None,
    tgt_lang: Annotated[Optional[str], typer.Option(
        "--tgt", help="Target language of the shipped translators (default: the other one).")] = None,
    input_file: Annotated[Optional[Path], typer.Option(
        "--input", "-i", help="Translate this file, line by line.")] = None,
    output_file: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Write translations here (created atomically: all lines or nothing).")] = None,
    overwrite: Overwrite = False,
    beam: Beam = 5,
    length_penalty: LengthPenalty = 0.6,
    max_len_ratio: MaxLenRatio = 2.0,
    n_best: Annotated[int, typer.Option("--n-best", help="Print the N best translations of each line, with scores."
                                        + describe("n_best"))] = 1,
    batch_size: InferBatch = 32,
    precision: SearchPrecision = "fp32",
    shortlist: UseShortlist = True,
    min_confidence: Annotated[float, typer.Option(
        "--min-confidence", help="Warn (on stderr, with its line number) about every translation whose confidence "
                                 "is below this, 0-1 (0: never).")] = 0.0,
    encoding_errors: EncodingErrors = "strict",
    as_json: Json = False,
    threads: Threads = None,
    device: Device = "auto",
    quantize: Quantize = "none",
):
    """Translate a sentence, standard input or a file; output lines match input lines one for one.

    Without -m or --src, each line's language is guessed by the shipped language models (the one that finds
    the line more likely wins); a line that cannot be told takes the direction of the line before it."""
    from ..atomic import atomic_file
    from ..service import check_translation

    check_translation(beam, n_best, length_penalty, max_len_ratio, batch_size)
    check("confidence", min_confidence, "--min-confidence")
    lines = input_lines(sentence, "a sentence", input_file, output_file, overwrite, encoding_errors)
    service = service_for(model, "mt", threads, device, quantize)
    options = dict(beam=beam, n_best=n_best, length_penalty=length_penalty, max_len_ratio=max_len_ratio,
                   batch_size=batch_size, precision=precision, shortlist=shortlist)
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(atomic_file(output_file)) if output_file is not None else None
        count, results = _translate_chunks(service, lines, src_lang, tgt_lang, options, str(input_file or "input"),
                                           as_json, out, progress=input_file is not None,
                                           min_confidence=min_confidence)
        if as_json:
            payload = {"translations": [_translation_json(t, n_best) for t in results], "sentences": count,
                       "seconds": round(time.perf_counter() - start, 3)}
            if out is not None:
                out.write(json.dumps(payload, ensure_ascii=False) + "\n")
            else:
                print_json(payload)
    if output_file is not None:
        info(f"{count} lines translated in {time.perf_counter() - start:.1f}s → {output_file}")


def _translate_chunks(service, lines, src_lang, tgt_lang, options: dict, where: str, as_json: bool, out,
                      progress: bool, min_confidence: float = 0.0) -> tuple[int, list]:
    """Translate CHUNK_LINES lines at a time, writing each chunk's output before reading the next."""
    from ..search import MAX_SRC_TOKENS

    count, results = 0, []
    while chunk := list(itertools.islice(lines, CHUNK_LINES)):
        done = service.translate(chunk, src_lang, tgt_lang, **options)
        for j, tr in enumerate(done):
            if tr.truncated:
                warn(f"{where}:{count + j + 1}: very long line, its source was cut to the first {MAX_SRC_TOKENS} "
                     "tokens")
            if tr.missing:
                warn(f"{where}:{count + j + 1}: the translation lost {', '.join(tr.missing)}; put back at its end")
            if min_confidence and tr.confidence is not None and tr.confidence < min_confidence:
                warn(f"{where}:{count + j + 1}: low confidence {tr.confidence:.2f}: {tr.text}")
        if as_json:
            results.extend(done)
        else:
            (out.write if out is not None else write_out)(_render_translations(done, options["n_best"], count))
        count += len(chunk)
        if progress and not state.quiet and count >= CHUNK_LINES:
            info(f"{count:,} lines translated")
    return count, results


def _render_translations(done, n_best: int, first: int) -> str:
    if n_best > 1:
        return "".join(f"{first + i} ||| {a} ||| {b:.4f}\n" for i, t in enumerate(done) for a, b in t.alternatives)
    return "".join(t.text + "\n" for t in done)


def _translation_json(t, n_best: int) -> dict:
    out = {"source": t.source, "translation": t.text, "score": round(t.score, 4), "direction": t.direction,
           "confidence": t.confidence}
    if t.missing:
        out["missing_spans"] = t.missing
    if n_best > 1:
        out["n_best"] = [{"text": a, "score": round(b, 4)} for a, b in t.alternatives]
    return out


def register(app: typer.Typer) -> None:
    app.command("generate", epilog=examples(
        'nlp-rnn generate --prompt "Había una vez" --length 400 --seed 1',
        'nlp-rnn generate -m runs/shakespeare --prompt "ROMEO:" --temperature 0.6 --samples 3'))(generate)
    app.command("complete", epilog=examples(
        'nlp-rnn complete "The network learns from exam"',
        'nlp-rnn complete "Mañana por la mañ" --k 5 --json'))(complete)
    app.command("translate", epilog=examples(
        'nlp-rnn translate "Where is the train station?"',
        'printf "Hola\\nGood morning\\n" | nlp-rnn translate',
        'nlp-rnn translate -m runs/de-en -i test.de -o test.en --beam 5'))(translate)
