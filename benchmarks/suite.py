"""Speed benchmarks. Each prints one JSON object (with `peak_rss_mb`).

    gemm          matrix-multiply GFLOP/s at the models' shapes, fp32 and bf16 (the ceiling)
    lm-train      the LM on tiny-shakespeare: chars/s, achieved GFLOP/s, loss
    lm-generate   sampling at batch 1: chars/s
    autocomplete  typing a paragraph: per-keystroke latency with suggestions, p50/p95 ms
    mt-train      the translator on Multi30k de→en: sentences/s, source/target tokens/s, GFLOP/s
    mt-translate  a translator at batch 32 (greedy and beam-5 sentences/s) and batch-1 latency, over its shortlist
                  when it has one, with its search step built once as the service does; on Multi30k val for a
                  de→en model, else on --src/--ref; the JSON says model, pair, shortlist, precision, output lengths

Data comes from ../shared/data (beside the checkout) unless --data says otherwise. `--arch peer` uses the
architecture of the peer being compared (the plain char-LSTM, or OpenNMT-py's biLSTM) for like-for-like ratios.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

from nlp_rnn import runtime
from nlp_rnn.data import LMStream, bucket_batches, collate, encode_pairs, encode_text
from nlp_rnn.models import CharLM, LMConfig, Seq2Seq, Seq2SeqConfig
from nlp_rnn.models.rnn import detach_state
from nlp_rnn.tokenizers import CharTokenizer, train_tokenizer

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"

LM_ARCH = {"default": dict(cell="gru", embed=64, hidden=512, layers=1, dropout=0.1),
           "peer": dict(cell="lstm", embed=128, hidden=512, layers=2, dropout=0.2)}
LM_BATCH = {"default": (64, 128), "peer": (64, 128)}  # (streams, bptt)
MT_ARCH = {"default": dict(cell="lstm", embed=256, hidden=256, layers=2, bidirectional=True, attention="luong",
                           input_feed=True, dropout=0.3),
           "peer": dict(cell="lstm", embed=256, hidden=256, layers=2, bidirectional=True, attention="luong",
                        input_feed=True, dropout=0.3)}


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def rnn_flops(cell: str, inp: int, hidden: int) -> int:
    """Forward multiply-adds ×2 of one recurrent step for one sequence."""
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[cell]
    return 2 * gates * hidden * (inp + hidden)


def lm_forward_flops(cfg: LMConfig) -> int:
    f = rnn_flops(cfg.cell, cfg.embed, cfg.hidden) + (cfg.layers - 1) * rnn_flops(cfg.cell, cfg.hidden, cfg.hidden)
    return f + 2 * cfg.hidden * cfg.vocab_size


def bench_gemm(args) -> dict:
    out = {}
    shapes = [(64, 576, 2048), (64, 512, 2048), (1024, 256, 8000), (8192, 512, 68)]
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        best = []
        for m, k, n in shapes:
            a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
            for _ in range(3):
                a @ b
            reps, start = 0, time.perf_counter()
            while time.perf_counter() - start < max(0.5, args.seconds / 8):
                a @ b
                reps += 1
            best.append(2 * m * k * n * reps / (time.perf_counter() - start) / 1e9)
        out[f"{name}_gflops"] = round(max(best), 1)
        out[f"{name}_gflops_by_shape"] = {f"{m}x{k}x{n}": round(g, 1) for (m, k, n), g in zip(shapes, best)}
    return out


def bench_int8_matvec(args) -> dict:
    """One row times a weight matrix, fp32 vs int8 (the batch-1 step of generation): µs per product."""
    from nlp_rnn.models.stepper import _int8_linear

    out = {}
    for i, o in [(512, 1536), (512, 2048), (384, 1152), (512, 69)]:
        w, b, x = torch.randn(i, o) * 0.05, torch.randn(o), torch.randn(1, i)
        q = _int8_linear(w, b)
        for name, f in (("fp32", lambda: torch.addmm(b, x, w)), ("int8", lambda: q(x))):
            for _ in range(200):
                f()
            n, start = 5000, time.perf_counter()
            for _ in range(n):
                f()
            out[f"{i}x{o}_{name}_us"] = round((time.perf_counter() - start) / n * 1e6, 1)
    return out


def _shakespeare() -> str:
    return (DATA / "tinyshakespeare" / "train.txt").read_text(encoding="utf-8")


def bench_lm_train(args) -> dict:
    text = _shakespeare()
    tok = CharTokenizer.build([text])
    cfg = LMConfig(vocab_size=tok.vocab_size, **LM_ARCH[args.arch])
    torch.manual_seed(0)
    dev = torch.device(args.device)
    model = CharLM(cfg).to(dev)
    B, T = LM_BATCH[args.arch]
    B = args.streams or B
    stream = LMStream(encode_text(text, tok), B, T)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    state, chars, losses, i = None, 0, [], 0
    def step(i, state):
        b = stream.window(i % len(stream)).to(dev)
        with runtime.autocast(dev, args.precision):
            loss, state = model.loss(b, state)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item(), detach_state(state), b.n_tokens
    for _ in range(3):  # warm-up
        _, state, _ = step(i, state)
        i += 1
    start = time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        loss, state, n = step(i, state)
        losses.append(loss)
        chars += n
        i += 1
    sec = time.perf_counter() - start
    cps = chars / sec
    return {"arch": args.arch, "precision": args.precision, "device": args.device, "streams": B,
            "params": sum(p.numel() for p in model.parameters()), "chars_per_s": round(cps, 1), "gflops": round(3 * lm_forward_flops(cfg) * cps / 1e9, 1),
            "loss_nats": round(statistics.mean(losses[-10:]), 4), "steps": len(losses)}


def _lm_model(args):
    if args.model:
        from nlp_rnn.checkpoint import load_checkpoint

        loaded = load_checkpoint(args.model, kind="lm", quantize=args.quantize)
        return loaded.model, loaded.tokenizer
    text = _shakespeare()
    tok = CharTokenizer.build([text])
    torch.manual_seed(0)
    model = CharLM(LMConfig(vocab_size=tok.vocab_size, **LM_ARCH[args.arch])).eval()
    return (model.quantized() if args.quantize == "int8" else model), tok


def bench_lm_generate(args) -> dict:
    from nlp_rnn.sampling import generate

    model, tok = _lm_model(args)
    n = 0
    for _ in generate(model, tok, "ROMEO:", 50, temperature=0.8, seed=0):
        pass
    start = time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        for _ in generate(model, tok, "ROMEO:", 500, temperature=0.8, seed=n):
            n += 1
    return {"arch": args.arch, "model": args.model or f"random {args.arch} LM", "quantize": args.quantize,
            "precision": "fp32", "batch": 1, "chars_per_s": round(n / (time.perf_counter() - start), 1), "chars": n}


PARAGRAPH = ("Now is the winter of our discontent made glorious summer by this sun of York; and all the clouds "
             "that lour'd upon our house in the deep bosom of the ocean buried. Now are our brows bound with "
             "victorious wreaths; our bruised arms hung up for monuments.")


def bench_autocomplete(args) -> dict:
    from nlp_rnn.sampling import Autocompleter

    model, tok = _lm_model(args)
    ac = Autocompleter(model, tok, k=3, beam=8)
    times, with_next = [], []
    for rep in range(max(1, int(args.seconds // 5))):
        ac.update("")
        for i in range(1, len(PARAGRAPH) + 1):
            start = time.perf_counter()
            ac.update(PARAGRAPH[:i])
            ac.suggest(next_words=False)
            times.append(time.perf_counter() - start)
        ac.update("")
        for i in range(1, len(PARAGRAPH) + 1, 3):
            start = time.perf_counter()
            ac.update(PARAGRAPH[:i])
            ac.suggest(next_words=True)
            with_next.append(time.perf_counter() - start)
    q = lambda xs, p: round(1000 * sorted(xs)[int(p * (len(xs) - 1))], 3)  # noqa: E731
    return {"arch": args.arch, "quantize": args.quantize, "keystrokes": len(times),
            "p50_ms": q(times, 0.5), "p95_ms": q(times, 0.95),
            "with_next_words_p50_ms": q(with_next, 0.5), "with_next_words_p95_ms": q(with_next, 0.95)}


def _multi30k(split: str):
    de = (DATA / "multi30k" / f"{split}.de").read_text(encoding="utf-8").split("\n")
    en = (DATA / "multi30k" / f"{split}.en").read_text(encoding="utf-8").split("\n")
    return [(a.strip(), b.strip()) for a, b in zip(de, en) if a.strip() and b.strip()]


def bench_mt_train(args) -> dict:
    pairs = _multi30k("train")
    src_tok = train_tokenizer([s for s, _ in pairs], "unigram", 8000)
    tgt_tok = train_tokenizer([t for _, t in pairs], "unigram", 8000)
    cfg = Seq2SeqConfig(src_vocab=src_tok.vocab_size, tgt_vocab=tgt_tok.vocab_size, **MT_ARCH[args.arch])
    torch.manual_seed(0)
    dev = torch.device(args.device)
    model = Seq2Seq(cfg).to(dev)
    src, tgt = encode_pairs(pairs, src_tok, tgt_tok)
    batches = bucket_batches([len(s) for s in src], [len(t) for t in tgt], args.batch_tokens, seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sents = stoks = ttoks = 0
    i = 0
    start = None
    while True:
        b = collate(src, tgt, batches[i % len(batches)]).to(dev)
        with runtime.autocast(dev, args.precision):
            loss, _ = model.loss(b)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        i += 1
        if i == 3:
            start = time.perf_counter()
        elif i > 3:
            sents += b.src.size(0)
            stoks += int(b.src_len.sum())
            ttoks += b.n_tokens
            if time.perf_counter() - start >= args.seconds:
                break
    sec = time.perf_counter() - start
    H, E = cfg.hidden, cfg.embed
    enc = 2 * (rnn_flops(cfg.cell, E, H // 2) + (cfg.layers - 1) * rnn_flops(cfg.cell, H, H // 2))
    dec = (rnn_flops(cfg.cell, E + H, H) + (cfg.layers - 1) * rnn_flops(cfg.cell, H, H) + 2 * 2 * H * H
           + 2 * H * cfg.tgt_vocab)
    flops = 3 * (enc * stoks + dec * ttoks + 2 * H * H * stoks)  # + attention keys; scores are small
    return {"arch": args.arch, "precision": args.precision, "params": sum(p.numel() for p in model.parameters()),
            "sentences_per_s": round(sents / sec, 1), "src_tokens_per_s": round(stoks / sec, 1),
            "tgt_tokens_per_s": round(ttoks / sec, 1), "gflops": round(flops / sec / 1e9, 1),
            "loss": round(loss.item(), 3), "batch_tokens": args.batch_tokens, "device": args.device}


def bench_mt_translate(args) -> dict:
    from nlp_rnn.checkpoint import load_checkpoint
    from nlp_rnn.evaluate import mt_scores
    from nlp_rnn.search import translate_all

    from nlp_rnn.models.fast_decode import FastDecoder
    from nlp_rnn.runtime import resolve_precision

    if not args.model:
        sys.exit("mt-translate needs --model DIR (a trained translator)")
    loaded = load_checkpoint(args.model, kind="mt", device=args.device, quantize=args.quantize)
    src_lang, tgt_lang = loaded.meta.get("src_lang"), loaded.meta.get("tgt_lang")
    if args.src:  # the model's own kind of input: a file of sources (and references)
        src = [line.strip() for line in Path(args.src).read_text(encoding="utf-8").splitlines() if line.strip()]
        refs = ([line.strip() for line in Path(args.ref).read_text(encoding="utf-8").splitlines() if line.strip()]
                if args.ref else None)
    elif (src_lang, tgt_lang) in ((None, None), ("de", "en")):
        pairs = _multi30k("val")
        src, refs = [s for s, _ in pairs], [t for _, t in pairs]
    else:
        sys.exit(f"mt-translate: the model translates {src_lang}→{tgt_lang}; give --src FILE (and --ref FILE)")
    st, tt = loaded.tokenizers["src_tokenizer"], loaded.tokenizers["tgt_tokenizer"]
    shortlist = None if args.full_vocab else loaded.shortlist
    low = resolve_precision(args.precision, args.device) == "bf16"
    fd = FastDecoder(loaded.model, torch.bfloat16 if low else torch.float32)  # built once, as the service does
    run = dict(fast_decoder=fd, shortlist=shortlist, precision=args.precision)
    out = {"model": str(args.model), "pair": f"{src_lang}-{tgt_lang}", "params": sum(p.numel() for p in loaded.model.parameters()),
           "sentences": len(src), "quantize": args.quantize, "precision": args.precision, "device": args.device,
           "shortlist": shortlist is not None, "mean_src_tokens": round(statistics.mean(len(st.encode(s)) for s in src), 2)}
    for name, beam in (("greedy", 1), ("beam5", 5)):
        translate_all(loaded.model, st, tt, src[:64], beam=beam, batch_size=32, **run)
        start = time.perf_counter()
        hyps = translate_all(loaded.model, st, tt, src, beam=beam, batch_size=32, **run)
        sec = time.perf_counter() - start
        toks = sum(len(tt.encode(h.text)) + 1 for h in hyps)
        out[f"{name}_sent_per_s"] = round(len(src) / sec, 1)
        out[f"{name}_tokens_per_s"] = round(toks / sec, 1)
        out[f"{name}_mean_out_tokens"] = round(toks / len(src), 2)
        if refs:
            out[f"{name}_bleu"] = mt_scores([h.text for h in hyps], refs)["bleu"]
    lat, lengths = [], []
    for s in src[:100]:
        start = time.perf_counter()
        h = translate_all(loaded.model, st, tt, [s], beam=5, batch_size=1, **run)[0]
        lat.append(time.perf_counter() - start)
        lengths.append(len(tt.encode(h.text)) + 1)
    out["batch1_ms"] = round(1000 * statistics.median(lat), 2)
    out["batch1_mean_out_tokens"] = round(statistics.mean(lengths), 2)
    return out


def bench_big_corpus(args) -> dict:
    """Train the LM on a generated corpus of `--size-mb` MB (tiny-shakespeare lines shuffled, repeated) in a child
    process and report the child's peak RSS: the memory-mapped id file keeps it bounded."""
    import random
    import subprocess
    import tempfile

    lines = _shakespeare().split("\n")
    rng = random.Random(0)
    work = Path(tempfile.mkdtemp(prefix="nlp-rnn-big-", dir=args.workdir))
    corpus = work / "big.txt"
    size = 0
    with open(corpus, "w", encoding="utf-8") as f:
        while size < args.size_mb * 1_000_000:
            block = "\n".join(rng.sample(lines, 2000)) + "\n"
            f.write(block)
            size += len(block.encode())
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "nlp_rnn", "--quiet", "train", "lm", str(corpus), "-o", str(work / "run"),
           "--max-steps", str(args.steps), "--eval-every", str(args.steps), "--threads", str(args.threads), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(proc.stderr)
    seconds = time.perf_counter() - start
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    summary = json.loads(proc.stdout)
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return {"corpus_mb": round(size / 1e6, 1), "steps": summary["steps"], "train_peak_rss_mb": round(child, 1),
            "seconds_total": round(seconds, 1), "final": summary["final"]}


BENCHES = {"gemm": bench_gemm, "int8-matvec": bench_int8_matvec, "lm-train": bench_lm_train, "lm-generate": bench_lm_generate,
           "autocomplete": bench_autocomplete, "big-corpus": bench_big_corpus, "mt-train": bench_mt_train, "mt-translate": bench_mt_translate}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=sorted(BENCHES))
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--arch", choices=["default", "peer"], default="default")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="lm-train, mt-train, mt-translate")
    p.add_argument("--quantize", choices=["none", "int8"], default="none",
                   help="lm-generate, autocomplete, mt-translate: dynamic int8 quantization (CPU)")
    p.add_argument("--streams", type=int, default=None, help="lm-train: parallel streams (batch size)")
    p.add_argument("--data", type=Path, default=None, help="data folder (default: ../shared/data)")
    p.add_argument("--batch-tokens", type=int, default=2048)
    p.add_argument("--model", help="a trained checkpoint (mt-translate; optional for lm-generate/autocomplete)")
    p.add_argument("--src", help="mt-translate: sources to translate (default: Multi30k val German, for a de→en model)")
    p.add_argument("--ref", help="mt-translate: references of --src (BLEU)")
    p.add_argument("--full-vocab", action="store_true", help="mt-translate: no shortlist even if the model has one")
    p.add_argument("--json", action="store_true", help="print only the JSON object")
    p.add_argument("--size-mb", type=float, default=1000, help="big-corpus: size of the generated corpus")
    p.add_argument("--steps", type=int, default=50, help="big-corpus: training steps")
    p.add_argument("--workdir", default=None, help="big-corpus: where to write the corpus (default: temp dir)")
    args = p.parse_args(argv)
    if args.data is not None:
        global DATA
        DATA = args.data
    torch.set_num_threads(args.threads)
    result = {"bench": args.name, "threads": args.threads, **BENCHES[args.name](args), "peak_rss_mb": peak_rss_mb(),
              "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
