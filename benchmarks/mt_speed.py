"""Translator speed, A/B inside one process: this checkout against another (`--baseline DIR`, e.g. a `git worktree`
of an older commit), or against itself. On a shared machine two runs minutes apart are not comparable, so the two
sides take turns on the same batches and each is timed by the CPU time it used (`time.thread_time`).

    python -m benchmarks.mt_speed prepare                 tokenize Multi30k once (sentencepiece unigram 8k per side)
    python -m benchmarks.mt_speed train --seconds 120     training steps, target tokens per CPU-second, peak RSS
    python -m benchmarks.mt_speed translate --model DIR   greedy / beam-5 sentences per CPU-second, BLEU, batch-1
                                                          beam-5 latency (CPU ms); --precision, --quantize int8
    python -m benchmarks.mt_speed profile --seconds 30    where a training step's time goes (torch.profiler table)

Run pinned to one core: `taskset -c 1 python -m benchmarks.mt_speed train --threads 1 --baseline /tmp/old --json`.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

from nlp_rnn import runtime
from nlp_rnn.data import bucket_batches, collate

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
CACHE = Path("/tmp/nlp-rnn-mt-speed")
PEER_ARCH = dict(cell="lstm", embed=256, hidden=256, layers=2, bidirectional=True, attention="luong", input_feed=True,
                 dropout=0.3)  # OpenNMT-py's architecture, as in BENCHMARKS.md


def load_checkout(path: Path, sub: str = "models", name: str = "nlp_rnn_baseline"):
    """A module of another checkout's `nlp_rnn` package, imported under `name` beside this one."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path / "nlp_rnn" / "__init__.py",
                                                      submodule_search_locations=[str(path / "nlp_rnn")])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return importlib.import_module(f"{name}.{sub}")


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def prepare(args) -> dict:
    from nlp_rnn.data import encode_pairs
    from nlp_rnn.tokenizers import train_tokenizer

    pairs = multi30k(args.data, "train")
    src_tok = train_tokenizer([s for s, _ in pairs], "unigram", 8000)
    tgt_tok = train_tokenizer([t for _, t in pairs], "unigram", 8000)
    src, tgt = encode_pairs(pairs, src_tok, tgt_tok)
    args.cache.mkdir(parents=True, exist_ok=True)
    torch.save({"src": src, "tgt": tgt, "src_vocab": src_tok.vocab_size, "tgt_vocab": tgt_tok.vocab_size},
               args.cache / "multi30k-ids.pt")
    return {"pairs": len(pairs), "cache": str(args.cache)}


def multi30k(data: Path, split: str) -> list[tuple[str, str]]:
    de = (data / "multi30k" / f"{split}.de").read_text(encoding="utf-8").split("\n")
    en = (data / "multi30k" / f"{split}.en").read_text(encoding="utf-8").split("\n")
    return [(a.strip(), b.strip()) for a, b in zip(de, en) if a.strip() and b.strip()]


def _sides(args) -> dict:
    """name → the `nlp_rnn.models` module each side uses."""
    import nlp_rnn.models as ours

    sides = {"new": ours}
    if args.baseline:
        sides["old"] = load_checkout(args.baseline)
    return sides


def train(args) -> dict:
    ids = torch.load(args.cache / "multi30k-ids.pt")
    src, tgt = ids["src"], ids["tgt"]
    batches = bucket_batches([len(s) for s in src], [len(t) for t in tgt], args.batch_tokens, seed=0)
    arch = {**PEER_ARCH, **json.loads(args.arch)}
    models, opts = {}, {}
    for name, mod in _sides(args).items():
        torch.manual_seed(0)
        m = mod.Seq2Seq(mod.Seq2SeqConfig(src_vocab=ids["src_vocab"], tgt_vocab=ids["tgt_vocab"], **arch))
        if models:
            m.load_state_dict(next(iter(models.values())).state_dict())  # same weights on every side
        else:
            for p in m.parameters():
                torch.nn.init.uniform_(p, -0.1, 0.1)
        models[name] = m.train()
        opts[name] = torch.optim.AdamW(m.parameters(), lr=1e-3, fused=args.fused in ("both", name) or None)
    dev = torch.device("cpu")
    cpu = {n: 0.0 for n in models}
    tokens = {n: 0 for n in models}
    losses = {n: [] for n in models}
    start, i = time.perf_counter(), 0
    while time.perf_counter() - start < args.seconds or i < 4:
        b = collate(src, tgt, batches[i % len(batches)])
        for name, m in models.items():
            t0 = time.thread_time()
            with runtime.autocast(dev, args.precision):
                loss, _ = m.loss(b)
            opts[name].zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
            opts[name].step()
            if i >= 2:  # warm-up
                cpu[name] += time.thread_time() - t0
                tokens[name] += b.n_tokens
                losses[name].append(loss.item())
        i += 1
    out = {"steps": i - 2, "precision": args.precision, "arch": arch, "batch_tokens": args.batch_tokens,
           "fused_adamw": args.fused}
    for name in models:
        out[f"{name}_tgt_tokens_per_cpu_s"] = round(tokens[name] / cpu[name], 1)
        out[f"{name}_loss_last10"] = round(statistics.mean(losses[name][-10:]), 4)
    if "old" in models:
        out["speedup"] = round(out["new_tgt_tokens_per_cpu_s"] / out["old_tgt_tokens_per_cpu_s"], 3)
    return out


def profile(args) -> dict:
    """A few warm training steps under torch.profiler: the operators that take the step's time."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    import nlp_rnn.models as ours

    ids = torch.load(args.cache / "multi30k-ids.pt")
    src, tgt = ids["src"], ids["tgt"]
    batches = bucket_batches([len(s) for s in src], [len(t) for t in tgt], args.batch_tokens, seed=0)
    torch.manual_seed(0)
    m = ours.Seq2Seq(ours.Seq2SeqConfig(src_vocab=ids["src_vocab"], tgt_vocab=ids["tgt_vocab"],
                                        **{**PEER_ARCH, **json.loads(args.arch)})).train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    dev = torch.device("cpu")

    def step(i):
        with runtime.autocast(dev, args.precision):
            loss, _ = m.loss(collate(src, tgt, batches[i % len(batches)]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()

    for i in range(3):
        step(i)
    n, start = 3, time.perf_counter()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        while time.perf_counter() - start < args.seconds:
            step(n)
            n += 1
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20)
    print(table, file=sys.stderr)
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    top = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:15]
    return {"steps": n - 3, "self_cpu_share": {e.key: round(e.self_cpu_time_total / total, 3) for e in top}}


class _Side:
    """One side of a translation A/B: a loaded model, its tokenizers, and how it translates (with a fast decoder
    built once per loaded model, as a server would, and a shortlist, where that side's code has them)."""

    def __init__(self, name: str, model_dir: Path, quantize: str, precision: str, baseline: Path | None,
                 shortlist=None):
        if baseline is None:
            from nlp_rnn import checkpoint, search
        else:
            checkpoint, search = load_checkout(baseline, "checkpoint"), load_checkout(baseline, "search")
        loaded = checkpoint.load_checkpoint(model_dir, kind="mt", quantize=quantize)
        self.name, self.model, self.search, self.precision = name, loaded.model, search, precision
        self.src_tok, self.tgt_tok = loaded.tokenizers["src_tokenizer"], loaded.tokenizers["tgt_tokenizer"]
        self.extra, self.build_ms = {}, None
        if hasattr(search, "FastDecoder"):
            t0 = time.perf_counter()
            dtype = torch.bfloat16 if precision == "bf16" else torch.float32
            self.extra = {"fast_decoder": search.FastDecoder(self.model, dtype)}
            self.build_ms = round(1000 * (time.perf_counter() - t0), 1)
        if shortlist is not None and hasattr(search, "Shortlist"):
            self.extra["shortlist"] = search.Shortlist(shortlist.candidates, shortlist.frequent)

    def translate(self, lines, beam, batch_size):
        return self.search.translate_all(self.model, self.src_tok, self.tgt_tok, lines, beam=beam,
                                         batch_size=batch_size, precision=self.precision, **self.extra)


def _shortlist(args):
    """A shortlist from Multi30k train, tokenized by the model's tokenizers, and its coverage of val references
    in batches of 32 (the share of reference tokens inside their batch's shortlist)."""
    from nlp_rnn.checkpoint import load_checkpoint
    from nlp_rnn.data import bucket_batches, encode_pairs
    from nlp_rnn.models.shortlist import Shortlist

    loaded = load_checkpoint(args.model, kind="mt")
    st, tt = loaded.tokenizers["src_tokenizer"], loaded.tokenizers["tgt_tokenizer"]
    per_source, frequent = (int(x) for x in args.shortlist.split(","))
    t0 = time.perf_counter()
    src, tgt = encode_pairs(multi30k(args.data, "train"), st, tt)
    shortlist = Shortlist.build(src, tgt, st.vocab_size, tt.vocab_size, per_source, frequent)
    seconds = time.perf_counter() - t0
    vsrc, vtgt = encode_pairs(multi30k(args.data, "val"), st, tt)
    inside = total = 0
    sizes = []
    for group in bucket_batches([len(s) for s in vsrc], [len(s) for s in vsrc], 10 ** 9, seed=None, max_sentences=32):
        words = set(shortlist.for_batch(torch.tensor([t for i in group for t in vsrc[i]])[None]).tolist())
        sizes.append(len(words))
        for i in group:
            inside += sum(t in words for t in vtgt[i])
            total += len(vtgt[i])
    return shortlist, {"shortlist": args.shortlist, "shortlist_build_s": round(seconds, 1),
                       "shortlist_mean_size": round(statistics.mean(sizes)), "shortlist_coverage": round(inside / total, 4)}


def translate(args) -> dict:
    """Multi30k val through both sides, in alternating chunks; CPU seconds per side; BLEU of each side's output."""
    from nlp_rnn.evaluate import mt_scores

    pairs = multi30k(args.data, "val")[:args.sentences]
    src, refs = [s for s, _ in pairs], [t for _, t in pairs]
    shortlist, out = None, {}
    if args.shortlist:
        shortlist, out = _shortlist(args)
    sides = [_Side("new", args.model, args.quantize, args.precision, None, shortlist)]
    if args.baseline:
        sides.append(_Side("old", args.model, args.quantize, args.precision, args.baseline, shortlist))
    out.update({"sentences": len(src), "quantize": args.quantize, "precision": args.precision,
                "fast_decoder_build_ms": sides[0].build_ms, "old_has": sorted(sides[-1].extra) if args.baseline else None})
    chunk = 128
    for name, beam in (("greedy", 1), ("beam5", 5)):
        for side in sides:
            side.translate(src[:32], beam, 32)  # warm-up
        cpu, hyps = {s.name: 0.0 for s in sides}, {s.name: [] for s in sides}
        for i in range(0, len(src), chunk):
            for side in sides:
                t0 = time.thread_time()
                hyps[side.name] += [h.text for h in side.translate(src[i:i + chunk], beam, 32)]
                cpu[side.name] += time.thread_time() - t0
        for side in sides:
            out[f"{side.name}_{name}_sent_per_cpu_s"] = round(len(src) / cpu[side.name], 1)
            out[f"{side.name}_{name}_bleu"] = mt_scores(hyps[side.name], refs)["bleu"]
        if len(sides) == 2:
            out[f"{name}_speedup"] = round(cpu["old"] / cpu["new"], 3)
    lat = {s.name: [] for s in sides}
    for line in src[:args.latency_sentences]:
        for side in sides:
            t0 = time.thread_time()
            side.translate([line], 5, 1)
            lat[side.name].append(time.thread_time() - t0)
    for side in sides:
        out[f"{side.name}_batch1_beam5_ms"] = round(1000 * statistics.median(lat[side.name]), 2)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.mt_speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["prepare", "train", "translate", "profile"])
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    p.add_argument("--batch-tokens", type=int, default=2048)
    p.add_argument("--arch", default="{}", help="JSON overrides of the model config, e.g. '{\"cell\": \"gru\"}'")
    p.add_argument("--baseline", type=Path, default=None, help="a checkout to compare with (imported beside this one)")
    p.add_argument("--fused", choices=["none", "new", "both"], default="both",
                   help="train: which sides step with fused AdamW (as the Trainer does; `new` with --baseline . "
                        "measures the optimizer alone)")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--cache", type=Path, default=CACHE)
    p.add_argument("--model", type=Path, help="translate: a Multi30k de→en checkpoint")
    p.add_argument("--quantize", choices=["none", "int8"], default="none")
    p.add_argument("--shortlist", default=None, help="translate: PER_SOURCE,FREQUENT, e.g. 64,256: search the new "
                   "side over a shortlist built from Multi30k train")
    p.add_argument("--sentences", type=int, default=None, help="translate: the first N of Multi30k val (all)")
    p.add_argument("--latency-sentences", type=int, default=60)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = {"bench": f"mt_speed {args.what}", "threads": args.threads,
              **{"prepare": prepare, "train": train, "translate": translate, "profile": profile}[args.what](args), "peak_rss_mb": peak_rss_mb(),
              "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
