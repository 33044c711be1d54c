"""After the translators' GPU training (benchmarks/gpu_translators.sh): score each run on the dev split (greedy
BLEU) and on dev sentences whose names were swapped for unseen ones (the share of outputs that copy every name),
pick one run per direction, and write the picked models as fp16 checkpoints packed for the trip back.

    python -m benchmarks.mt_gpu_select RUNS_DIR DATA_DIR OUT_DIR

Rule: the joint-vocabulary run ("J") replaces the separate-vocabulary one ("A") only if it copies names more
often and loses at most 0.5 dev BLEU; the rule was written before the runs.
"""
from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

import torch

from nlp_rnn.checkpoint import load_checkpoint, save_checkpoint
from nlp_rnn.search import translate_all

PART_BYTES = 15 << 20  # what comes back from the device machine: files of at most 16 MiB


def names_copied(loaded, rows: list[list[str]], src_col: int) -> float:
    """Share of sentences whose translation contains every swapped-in name verbatim (greedy search)."""
    src_tok, tgt_tok = loaded.tokenizers["src_tokenizer"], loaded.tokenizers["tgt_tokenizer"]
    out = translate_all(loaded.model, src_tok, tgt_tok, [r[src_col] for r in rows], beam=1, batch_size=128)
    return sum(all(n in o.text for n in r[2].split("|")) for o, r in zip(out, rows)) / max(1, len(rows))


def score(run: Path, direction: str, data: Path) -> dict:
    src_col = 0 if direction == "en-es" else 1
    summary = json.loads((run / "summary.json").read_text())
    loaded = load_checkpoint(run / "model", kind="mt", device="cuda" if torch.cuda.is_available() else "cpu")
    rows = [line.rstrip("\n").split("\t") for line in (data / "names-dev.tsv").open(encoding="utf-8")]
    best = summary.get("best") or {}
    return {"run": run.name, "steps": summary["steps"], "epochs": round(summary["epochs"], 2),
            "seconds": summary["seconds"], "tokens_per_s": summary["tokens_per_s"],
            "best_step": summary["best_step"], "dev_bleu_greedy": best.get("val_bleu", 0.0),
            "dev_chrf_greedy": best.get("val_chrf"), "names_copied": round(names_copied(loaded, rows, src_col), 4)}


def pack(run: Path, name: str, out: Path) -> list[str]:
    """The run's model as fp16 plus its summary and log, tarred and cut into parts of at most PART_BYTES."""
    staging = out / f"stage-{name}"
    loaded = load_checkpoint(run / "model", kind="mt")
    save_checkpoint(staging / "model", loaded.model.half(), loaded.tokenizers, loaded.meta, shortlist=loaded.shortlist)
    for f in ("summary.json", "log.jsonl"):
        (staging / f).write_bytes((run / f).read_bytes())
    tar = out / f"{name}.tar"
    with tarfile.open(tar, "w") as t:
        t.add(staging, arcname=name)
    data, parts = tar.read_bytes(), []
    for i in range(0, len(data), PART_BYTES):
        part = out / f"{name}.tar.{i // PART_BYTES:02d}"
        part.write_bytes(data[i:i + PART_BYTES])
        parts.append(part.name)
    tar.unlink()
    import shutil

    shutil.rmtree(staging)
    return parts


def main(argv: list[str]) -> None:
    runs, data, out = map(Path, argv[:3])
    report = {}
    for direction in ("en-es", "es-en"):
        scores = {}
        for variant in ("A", "J"):
            run = runs / f"{direction}-{variant}"
            if (run / "model" / "config.json").is_file():
                scores[variant] = score(run, direction, data)
        if not scores:
            report[direction] = {"error": "no finished run"}
            continue
        pick = "A" if "A" in scores else "J"
        if "A" in scores and "J" in scores:
            a, j = scores["A"], scores["J"]
            if j["names_copied"] > a["names_copied"] and j["dev_bleu_greedy"] >= a["dev_bleu_greedy"] - 0.5:
                pick = "J"
        report[direction] = {"scores": scores, "picked": pick,
                             "parts": pack(runs / f"{direction}-{pick}", f"mt-{direction}", out)}
        print(json.dumps({direction: report[direction]}), flush=True)
    (out / "select.json").write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
