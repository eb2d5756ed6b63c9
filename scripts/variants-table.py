#!/usr/bin/env python3
"""Summarise one-switch / ablation runs of one model against a reference run set (same seeds).

Usage: variants-table.py REF_DIR:LABEL DIR:LABEL [DIR:LABEL ...] [--model crane] [--chain]

Each DIR is a `crane compare` output folder (its compare.csv); `DIR@MODEL` reads another
model's rows of that folder (for a row of baselines beside the variants). Prints a Markdown table: per
variant the seeds, test Recall@20 / NDCG@20 (mean ± sample std), best epoch and epochs run, and
the paired difference of Recall@20 against REF on the seeds both have, with the two-sided
paired t-test p-value (with --chain, each row against the row above it: the steps of a path
of one-switch changes). Student's t, computed here: regularised incomplete beta by Lentz's
continued fraction, Numerical Recipes 6.4."""
import csv
import math
import sys


def betacf(a, b, x):
    tiny, eps = 1e-300, 3e-14
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        de = d * c
        h *= de
        if abs(de - 1.0) < eps:
            break
    return h


def betai(a, b, x):
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1.0 - x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * betacf(b, a, 1.0 - x) / b


def paired_p(diffs):
    n = len(diffs)
    if n < 2:
        return float("nan"), float("nan")
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    if sd == 0.0:
        return float("inf") if mean else float("nan"), 0.0 if mean else float("nan")
    t = mean / (sd / math.sqrt(n))
    df = n - 1
    return t, betai(df / 2.0, 0.5, df / (df + t * t))


def rows(folder, model):
    with open(f"{folder}/compare.csv") as f:
        return {int(r["seed"]): r for r in csv.DictReader(f) if r["model"] == model}


def ms(v):
    if not v:
        return "n/a"
    m = sum(v) / len(v)
    if len(v) == 1:
        return f"{m:.4f} (one seed)"
    s = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))
    return f"{m:.4f} ± {s:.4f}"


def main(argv):
    model = "crane"
    if "--model" in argv:
        i = argv.index("--model")
        model = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    chain = "--chain" in argv
    argv = [a for a in argv if a != "--chain"]
    specs = [a.split(":", 1) for a in argv]

    def folder_rows(spec):
        folder, _, m = spec.partition("@")
        return rows(folder, m or model)

    ref = folder_rows(specs[0][0])
    against = "the row above" if chain else specs[0][1]
    print("| variant | seeds | test Recall@20 | test NDCG@20 | best epoch | epochs run | ΔRecall@20 vs " + against + " (paired) | p |")
    print("|---|---|---|---|---|---|---|---|")
    for folder, label in specs:
        r = folder_rows(folder)
        seeds = sorted(r)
        rec = [float(r[s]["recall@20"]) for s in seeds]
        ndcg = [float(r[s]["ndcg@20"]) for s in seeds]
        best = ", ".join(r[s]["best_epoch"] for s in seeds)
        run = ", ".join(r[s]["epochs_run"] for s in seeds)
        common = [s for s in seeds if s in ref]
        diffs = [float(r[s]["recall@20"]) - float(ref[s]["recall@20"]) for s in common]
        if folder == specs[0][0]:
            delta, p = "—", "—"
        else:
            t, pv = paired_p(diffs)
            delta = f"{sum(diffs) / len(diffs):+.4f} (n = {len(diffs)})" if diffs else "n/a"
            p = f"{pv:.2g}" if pv == pv else "n/a"
        print(f"| {label} | {len(seeds)} | {ms(rec)} | {ms(ndcg)} | {best} | {run} | {delta} | {p} |")
        if chain:
            ref = r


if __name__ == "__main__":
    main(sys.argv[1:])
