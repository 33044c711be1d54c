"""Commands that use a trained model: generate, complete, translate, eval lm|mt."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import typer

from ..errors import UsageError
from .common import (DEVICE, JSON, SEED, THREADS, err_console, info, metrics_table, out_console, print_json, setup, state,
                     styled, warn)

eval_app = typer.Typer(no_args_is_help=True, help="Evaluate a language model (lm) or a translator (mt).")

MODEL_OPT = typer.Option(None, "--model", "-m", help="Checkpoint or run directory (default: the shipped model).")
LANG = typer.Option("en", "--lang", help="Language of the shipped LM to use without -m: en or es.")
QUANTIZE = typer.Option("none", "--quantize",
                        help="int8: dynamic int8 quantization of the recurrent and linear layers (CPU inference).")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace -o if it exists (never an input file).")
PRECISION = typer.Option("fp32", "--precision",
                         help="fp32, or bf16 autocast (measured 2-3x slower than fp32 for CPU search; see BENCHMARKS.md).")


def _load(model_dir: Optional[Path], kind: str, dev, lang: str = "en", quantize: str = "none"):
    from ..checkpoint import load_checkpoint
    from ..defaults import default_lm

    path = model_dir if model_dir is not None else default_lm(lang)
    return load_checkpoint(path, kind=kind, device=dev, quantize=quantize)


def generate(
    prompt: str = typer.Option("", "--prompt", "-p", help="Text to continue."),
    model: Optional[Path] = MODEL_OPT,
    lang: str = LANG,
    length: int = typer.Option(300, "--length", "-l", help="Characters to generate."),
    temperature: float = typer.Option(0.8, "--temperature", "-t"),
    top_k: Optional[int] = typer.Option(None, "--top-k"),
    top_p: Optional[float] = typer.Option(None, "--top-p"),
    n: int = typer.Option(1, "-n", help="Number of samples."),
    as_json: bool = JSON,
    seed: Optional[int] = SEED,
    threads: Optional[int] = THREADS,
    device: str = DEVICE,
    quantize: str = QUANTIZE,
):
    """Generate text with a character language model, streaming it as it is produced."""
    from ..sampling import check_sampling, generate as gen, unknown_chars

    check_sampling(temperature, top_k, top_p)
    if n < 1:
        raise UsageError(f"-n must be at least 1, not {n}")
    dev = setup(threads, device)
    loaded = _load(model, "lm", dev, lang, quantize)
    unk = unknown_chars(loaded.tokenizer, prompt)
    if unk:
        warn(f"prompt characters outside the model's vocabulary are read as <unk>: {''.join(unk)!r}")
    samples, chars, start = [], 0, time.perf_counter()
    for i in range(n):
        s = None if seed is None else seed + i
        pieces = []
        if not as_json:
            out_console.file.write(prompt)
        for piece in gen(loaded.model, loaded.tokenizer, prompt, length, temperature, top_k, top_p, s):
            pieces.append(piece)
            if not as_json:
                out_console.file.write(piece)
                out_console.file.flush()
        if not as_json:
            out_console.file.write("\n" if i == n - 1 else "\n\n")
        samples.append(prompt + "".join(pieces))
        chars += length
    seconds = time.perf_counter() - start
    if as_json:
        print_json({"samples": samples, "chars": chars, "seconds": round(seconds, 3),
                    "chars_per_s": round(chars / max(seconds, 1e-9), 1)})


def complete(
    text: str = typer.Argument(..., help="What has been typed so far."),
    model: Optional[Path] = MODEL_OPT,
    lang: str = LANG,
    k: int = typer.Option(3, "--k", help="Suggestions of each kind."),
    beam: int = typer.Option(8, "--beam", help="Beam width of the character search."),
    as_json: bool = JSON,
    threads: Optional[int] = THREADS,
    device: str = DEVICE,
    quantize: str = QUANTIZE,
):
    """Suggest completions of the word being typed and the words likely to follow."""
    from ..sampling import Autocompleter

    dev = setup(threads, device)
    loaded = _load(model, "lm", dev, lang, quantize)
    ac = Autocompleter(loaded.model, loaded.tokenizer, k=k, beam=beam)
    ac.update(text)
    result = ac.suggest()
    if as_json:
        print_json(result)
        return
    for title, key in (("completions", "completions"), ("next words", "next_words")):
        out_console.print(styled(f"{title}:", "bold", ", ".join(f"{s['text']} ({s['prob']:.1%})" for s in result[key])))


def translate(
    sentence: Optional[str] = typer.Argument(None, help="A sentence (default: read stdin, or -i FILE)."),
    model: Optional[Path] = MODEL_OPT,
    src_lang: Optional[str] = typer.Option(None, "--src", help="Source language of the shipped models (en, es)."),
    tgt_lang: Optional[str] = typer.Option(None, "--tgt", help="Target language of the shipped models."),
    input_file: Optional[Path] = typer.Option(None, "--input", "-i", help="Translate this file, line by line."),
    output_file: Optional[Path] = typer.Option(None, "--output", "-o", help="Write translations here (atomically)."),
    overwrite: bool = OVERWRITE,
    beam: int = typer.Option(5, "--beam", "-b", help="Beam size (1: greedy)."),
    length_penalty: float = typer.Option(0.6, "--length-penalty"),
    max_len_ratio: float = typer.Option(2.0, "--max-len-ratio", help="Output length cap relative to the source."),
    n_best: int = typer.Option(1, "--n-best", help="Print the N best translations of each line."),
    batch_size: int = typer.Option(32, "--batch-size"),
    precision: str = PRECISION,
    as_json: bool = JSON,
    threads: Optional[int] = THREADS,
    device: str = DEVICE,
    quantize: str = QUANTIZE,
):
    """Translate a sentence, standard input or a file; output lines match input lines one for one."""
    from ..atomic import atomic_file, check_output_file
    from ..checkpoint import load_checkpoint
    from ..defaults import default_mt, pick_direction
    from ..search import translate as run

    if sentence is not None and input_file is not None:
        raise UsageError("give a sentence or -i FILE, not both")
    if beam < 1:
        raise UsageError(f"--beam must be at least 1, not {beam}")
    if not 1 <= n_best <= beam:
        raise UsageError(f"--n-best must be between 1 and --beam ({beam}), not {n_best}")
    if input_file is not None:
        from ..corpora import read_file_text

        lines = read_file_text(input_file).split("\n")
        if lines and lines[-1] == "":
            lines.pop()
    elif sentence is not None:
        lines = [sentence]
    else:
        if sys.stdin.isatty():
            info("reading sentences from standard input (Ctrl-D to end)")
        lines = sys.stdin.read().split("\n")
        if lines and lines[-1] == "":
            lines.pop()
    if output_file is not None:
        check_output_file(output_file, [input_file], overwrite)
    dev = setup(threads, device)
    if model is None:
        src_lang, tgt_lang = pick_direction(" ".join(lines[:20]), src_lang, tgt_lang)
        model = default_mt(src_lang, tgt_lang)
    loaded = load_checkpoint(model, kind="mt", device=dev, quantize=quantize)
    results: list = [None] * len(lines)
    show = input_file is not None and not state.quiet and len(lines) > 1
    start = time.perf_counter()
    from rich.progress import Progress

    progress = Progress(console=err_console, transient=True, disable=not show)
    with progress:
        task = progress.add_task("translating", total=len(lines))
        for i, tr in run(loaded.model, loaded.tokenizers["src_tokenizer"], loaded.tokenizers["tgt_tokenizer"], lines,
                         beam=beam, batch_size=batch_size, length_penalty=length_penalty, max_len_ratio=max_len_ratio,
                         n_best=n_best, device=dev, precision=precision):
            results[i] = tr
            progress.advance(task)
    seconds = time.perf_counter() - start
    for i, tr in enumerate(results):
        if tr.truncated:
            warn(f"{input_file or 'input'}:{i + 1}: very long line, its source was cut to the first 250 tokens")
    if as_json:
        payload = {"translations": [{"source": s, "translation": t.text, "score": round(t.score, 4),
                                     **({"n_best": [{"text": a, "score": round(b, 4)} for a, b in t.alternatives]}
                                        if n_best > 1 else {})} for s, t in zip(lines, results)],
                   "sentences": len(lines), "seconds": round(seconds, 3)}
        text = None
    else:
        if n_best > 1:
            text = "".join(f"{i} ||| {a} ||| {b:.4f}\n" for i, t in enumerate(results) for a, b in t.alternatives)
        else:
            text = "".join(t.text + "\n" for t in results)
    if output_file is not None:
        with atomic_file(output_file) as f:
            if as_json:
                import json

                f.write(json.dumps(payload, ensure_ascii=False) + "\n")
            else:
                f.write(text)
        info(f"{len(lines)} lines translated in {seconds:.1f}s → {output_file}")
    elif as_json:
        print_json(payload)
    else:
        out_console.file.write(text)
        out_console.file.flush()


@eval_app.command("lm")
def eval_lm(
    file: Path = typer.Argument(..., help="Text to score."),
    model: Optional[Path] = MODEL_OPT,
    lang: str = LANG,
    as_json: bool = JSON,
    threads: Optional[int] = THREADS,
    device: str = DEVICE,
    quantize: str = QUANTIZE,
):
    """Cross-entropy of a text under a language model: nats/char, bits/char, perplexity."""
    from ..corpora import read_file_text
    from ..evaluate import lm_metrics

    text = read_file_text(file)
    dev = setup(threads, device)
    loaded = _load(model, "lm", dev, lang, quantize)
    start = time.perf_counter()
    m = lm_metrics(loaded.model, loaded.tokenizer, text)
    m["seconds"] = round(time.perf_counter() - start, 3)
    if m["unk_chars"]:
        warn(f"{m['unk_chars']} characters of {file} are outside the model's vocabulary (scored as <unk>)")
    if as_json:
        print_json(m)
    else:
        out_console.print(metrics_table(f"{file}", m))


@eval_app.command("mt")
def eval_mt(
    model: Optional[Path] = MODEL_OPT,
    src: Path = typer.Option(..., "--src", help="Source sentences, one per line."),
    ref: Path = typer.Option(..., "--ref", help="Reference translations, aligned with --src."),
    beam: int = typer.Option(5, "--beam", "-b"),
    length_penalty: float = typer.Option(0.6, "--length-penalty"),
    max_len_ratio: float = typer.Option(2.0, "--max-len-ratio"),
    batch_size: int = typer.Option(32, "--batch-size"),
    output_file: Optional[Path] = typer.Option(None, "-o", "--output", help="Also write the hypotheses here."),
    overwrite: bool = OVERWRITE,
    precision: str = PRECISION,
    as_json: bool = JSON,
    threads: Optional[int] = THREADS,
    device: str = DEVICE,
    quantize: str = QUANTIZE,
):
    """Translate --src and score against --ref with sacrebleu: BLEU, chrF, TER and their signatures."""
    from ..atomic import atomic_write_text, check_output_file
    from ..checkpoint import load_checkpoint
    from ..corpora import read_aligned
    from ..evaluate import mt_scores
    from ..search import translate_all

    if model is None:
        raise UsageError("eval mt needs -m DIR")
    corpus = read_aligned(src, ref)  # checks both files and their alignment
    if output_file is not None:
        check_output_file(output_file, [src, ref], overwrite)
    dev = setup(threads, device)
    loaded = load_checkpoint(model, kind="mt", device=dev, quantize=quantize)
    start = time.perf_counter()
    hyps = [t.text for t in translate_all(loaded.model, loaded.tokenizers["src_tokenizer"],
                                          loaded.tokenizers["tgt_tokenizer"], [s for s, _ in corpus.pairs],
                                          beam=beam, batch_size=batch_size, length_penalty=length_penalty,
                                          max_len_ratio=max_len_ratio, device=dev, precision=precision)]
    seconds = time.perf_counter() - start
    scores = mt_scores(hyps, [t for _, t in corpus.pairs])
    scores.update(sentences=len(hyps), seconds=round(seconds, 3), sentences_per_s=round(len(hyps) / max(seconds, 1e-9), 1),
                  beam=beam)
    if corpus.stats.dropped:
        warn(f"{sum(corpus.stats.dropped.values())} blank pairs skipped")
    if output_file is not None:
        atomic_write_text(output_file, "".join(h + "\n" for h in hyps))
    if as_json:
        print_json(scores)
    else:
        sigs = scores.pop("signatures")
        out_console.print(metrics_table(f"{src} → {ref}", scores))
        for name, sig in sigs.items():
            out_console.print(f"{name}: {sig}")


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
    app.command("complete")(complete)
    app.command("translate")(translate)
    app.add_typer(eval_app, name="eval")
