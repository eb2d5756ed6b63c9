#!/usr/bin/env python3
"""Put a peer's training log (MMRec's FREEDOM or the authors' CRANE code, both MMRec trainers)
beside crane's runs of the matching preset on the same data folder.

Usage: peer-fidelity.py --peer LOG [LOG ...] --crane DIR [DIR ...] --model MODEL [--label NAME]
                        [--epochs 10] [--batches N] [--patience 20]

Each LOG is a peer's log file (MMRec writes one per invocation under src/log/; an invocation
over several seeds holds one run per seed, each starting at its "Parameters: ... =(seed, ...)"
line). DIR is a `crane compare` output folder; its MODEL/seed-*/ runs are read (history.jsonl
for every epoch run so far, results.json once a run has finished). Several DIRs pool their runs
(each named "seed (DIR's name)"), for instance runs of the same seeds on two builds that differ
only in round-off. Prints Markdown: per epoch
for the first --epochs epochs the peer runs' validation Recall@20 / NDCG@20 and training loss
beside crane's (minimum / mean / maximum over runs), with the difference of the means and
Welch's two-sample t-test (the two codes' seeds draw different random streams, so runs are not
paired); then the best-epoch test metrics (MMRec's rule: strict improvement of validation
Recall@20 rounded to 4 decimals) of the converged runs: a peer run counts as converged when it
ran --patience epochs past its best one, a crane run when results.json says it stopped early.

"Inside" means inside crane's seed range [min, max] with both sides rounded to MMRec's 4
decimals. MMRec logs the epoch's summed batch loss; it is divided by --batches (the number of
batches of an epoch, ceil(train interactions / batch size)) to compare with crane's mean batch
loss. Seconds are whatever the machine gave while the runs shared it: not speed figures unless
the runs had idle cores."""
import argparse
import glob
import importlib.util
import json
import math
import os
import re
import statistics

EPOCH_TRAIN = re.compile(r"epoch (\d+) training \[time: ([0-9.]+)s, train loss: ([-0-9.e+naif]+)\]")
EPOCH_EVAL = re.compile(r"epoch (\d+) evaluating \[time: ([0-9.]+)s, valid_score: ([0-9.]+)\]")
METRIC = re.compile(r"([a-z]+@\d+): ([0-9.]+)")
RUN_START = re.compile(r"Parameters:\[([^\]]*)\]=\(([^)]*)\)")
RESUMED = re.compile(r"PEER_RESUME: resumed from .* after epoch (\d+)")

_spec = importlib.util.spec_from_file_location(
    "variants_table", os.path.join(os.path.dirname(os.path.abspath(__file__)), "variants-table.py"))
_vt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_vt)


def welch(a, b):
    """Welch's t-test, two-sided p (Student's t through the regularised incomplete beta of
    variants-table.py)."""
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    if va + vb == 0.0:
        return float("nan")
    t = (statistics.mean(a) - statistics.mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return _vt.betai(df / 2.0, 0.5, df / (df + t * t))


def parse_metrics(line):
    return {k: float(v) for k, v in METRIC.findall(line)}


def parse_mmrec_log(path):
    """Runs of an MMRec log, each {"seed", "epochs"}: per epoch the train seconds, summed loss,
    eval seconds, valid and test metrics (4 decimals, as MMRec prints them)."""
    runs, cur, pending = [], None, None
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for line in lines:
        m = RUN_START.search(line)
        if m:
            names = [n.strip(" '") for n in m.group(1).split(",")]
            values = [v.strip() for v in m.group(2).split(",")]
            seed = values[names.index("seed")] if "seed" in names else "?"
            runs.append({"seed": seed, "epochs": []})
            cur = None
            continue
        m = EPOCH_TRAIN.search(line)
        if m:
            if not runs:
                runs.append({"seed": "?", "epochs": []})
            cur = {"epoch": int(m.group(1)), "train_s": float(m.group(2)), "loss_sum": float(m.group(3))}
            runs[-1]["epochs"].append(cur)
            continue
        m = EPOCH_EVAL.search(line)
        if m and cur is not None and int(m.group(1)) == cur["epoch"]:
            cur["eval_s"] = float(m.group(2))
            continue
        if cur is not None and ("valid result:" in line or "test result:" in line):
            # A header whose metrics follow on the next line; the end-of-run summary ("best
            # valid result: ...", "test result: ..." with the metrics on the line) is not an epoch's.
            pending = None if parse_metrics(line) else ("valid" if "valid result:" in line else "test")
            continue
        if pending and cur is not None:
            got = parse_metrics(line)
            if got:
                cur[pending] = got
            pending = None
        m = RESUMED.search(line)
        if m and runs:
            runs[-1]["resumed_after"] = int(m.group(1))
    for r in runs:
        r["epochs"] = [e for e in r["epochs"] if "valid" in e and "test" in e]
    return [r for r in runs if r["epochs"]]


def last_epoch(run):
    return max(e["epoch"] for e in run["epochs"])


def join_resumed(runs):
    """A run continued by PEER_RESUME (peers.patch) in a later invocation is logged as a new run
    whose log says "resumed ... after epoch N": its epochs replace those after N of the run of
    the same seed that reached epoch N (a sitting killed after logging an epoch but before
    saving it repeats that epoch), whatever order the logs were given in. Of several such runs
    (another run of the seed, for instance on another thread count), the one that ended nearest
    after epoch N is continued: a sitting ends at N, or at N + 1 when it was killed before saving."""
    base = [r for r in runs if "resumed_after" not in r]
    for r in sorted((r for r in runs if "resumed_after" in r), key=lambda r: r["resumed_after"]):
        n = r["resumed_after"]
        cands = sorted((p for p in base if p["seed"] == r["seed"] and any(e["epoch"] == n for e in p["epochs"])),
                       key=last_epoch)
        prev = cands[0] if cands else None
        ends = [last_epoch(p) for p in cands]
        if len(ends) > 1 and (ends[0] == ends[1] or ends[1] <= n + 1):
            print(f"warning: seed {r['seed']} resumed after epoch {n}: {len(ends)} runs of it reach that epoch "
                  f"(ending at epochs {ends}); continued the one ending at {ends[0]}, check that it is the right sitting")
        if prev is None:
            print(f"warning: seed {r['seed']} resumed after epoch {n}, but no log given holds that epoch: kept apart")
            base.append(r)
            continue
        prev["epochs"] = [e for e in prev["epochs"] if e["epoch"] <= n] + r["epochs"]
        prev["sittings"] = prev.get("sittings", 1) + 1
    return base


def mmrec_best(epochs, key="recall@20"):
    """MMRec's selection: the first epoch whose rounded validation score strictly beats every
    earlier one."""
    best, best_score = None, -math.inf
    for e in epochs:
        s = round(e["valid"][key], 4)
        if s > best_score:
            best, best_score = e, s
    return best


def crane_runs(folder, model):
    runs = []
    for d in sorted(glob.glob(os.path.join(folder, model, "seed-*"))):
        hist_path = os.path.join(d, "history.jsonl")
        if not os.path.exists(hist_path):
            continue
        with open(hist_path, encoding="utf-8") as f:
            hist = [json.loads(l) for l in f if l.strip()]
        res_path = os.path.join(d, "results.json")
        res = None
        if os.path.exists(res_path):
            with open(res_path, encoding="utf-8") as f:
                res = json.load(f)
        runs.append({"seed": d.rsplit("seed-", 1)[1], "history": hist, "results": res})
    return runs


def r4(x):
    return round(x + 0.0, 4)


def fmt(x):
    return f"{x:.4f}"


def span(values):
    """`min / mean / max` (one value: itself)."""
    if len(values) == 1:
        return fmt(values[0])
    return f"{fmt(min(values))} / {fmt(statistics.mean(values))} / {fmt(max(values))}"


def inside_count(peer_values, crane_values):
    lo, hi = r4(min(crane_values)), r4(max(crane_values))
    return sum(lo <= r4(p) <= hi for p in peer_values)


def curve_table(peers, runs, n_epochs, batches):
    out = ["| epoch | peer R@20 | crane R@20 | Δ means | Welch p | peer runs inside crane's range | peer N@20 | crane N@20 | peer loss | crane loss |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    inside = total = 0
    for ep in range(n_epochs):
        pes = [r["epochs"][ep] for r in peers if len(r["epochs"]) > ep]
        hs = [r["history"][ep] for r in runs if len(r["history"]) > ep]
        if not pes or not hs:
            break
        pr, cr = [e["valid"]["recall@20"] for e in pes], [h["valid"]["recall@20"] for h in hs]
        pn, cn = [e["valid"]["ndcg@20"] for e in pes], [h["valid"]["ndcg@20"] for h in hs]
        pl = [e["loss_sum"] / batches if batches else float("nan") for e in pes]
        cl = [h["loss"] for h in hs]
        k = inside_count(pr, cr)
        inside, total = inside + k, total + len(pr)
        p = welch(pr, cr)
        out.append(
            f"| {ep} | {span(pr)} | {span(cr)} | {statistics.mean(pr) - statistics.mean(cr):+.4f} | "
            f"{'n/a' if p != p else f'{p:.2g}'} | {k} of {len(pr)} | {span(pn)} | {span(cn)} | {span(pl)} | {span(cl)} |"
        )
    out.append("")
    out.append(f"({len(peers)} peer run(s), {len(runs)} crane run(s); min / mean / max over runs; Δ = peer mean − crane mean.) "
               f"Peer validation Recall@20 inside crane's range: {inside} of {total} (run, epoch) points.")
    return out


def curve_summary(peers, runs, n_epochs):
    """One number per run, its mean validation Recall@20 over epochs 0..n-1 (runs that reached
    epoch n-1 only), and Welch's test between the codes on those: the whole-curve comparison,
    where the per-epoch tests above are ten correlated looks at the same runs."""
    pm = [statistics.mean(e["valid"]["recall@20"] for e in r["epochs"][:n_epochs]) for r in peers if len(r["epochs"]) >= n_epochs]
    cm = [statistics.mean(h["valid"]["recall@20"] for h in r["history"][:n_epochs]) for r in runs if len(r["history"]) >= n_epochs]
    if not pm or not cm:
        return f"- whole curve: no run of each code reached epoch {n_epochs - 1}"
    p = welch(pm, cm)
    return (f"- whole curve (per run, mean validation Recall@20 over epochs 0-{n_epochs - 1}): peer {span(pm)} ({len(pm)} run(s)), "
            f"crane {span(cm)} ({len(cm)} run(s)); Δ means {statistics.mean(pm) - statistics.mean(cm):+.4f}"
            + ("" if p != p else f", Welch p = {p:.2g}") + f"; peer runs inside crane's range: {inside_count(pm, cm)} of {len(pm)}")


def prefix_best(peers, runs, n_epochs):
    """Best-epoch test metrics when both codes select over the same first n epochs: the peer by
    MMRec's rule over its epochs 0..n-1, crane from the results.json of runs of exactly n epochs,
    or of longer runs whose best epoch is below n (crane, like MMRec, keeps the first epoch of
    strictly best validation, so selecting over epochs 0..n-1 picks that same epoch; crane logs
    no per-epoch test metrics, so a longer run whose best came later has no prefix result).
    For a code that peaks early (the authors'), this is its result whatever follows."""
    long_peers = [r for r in peers if len(r["epochs"]) >= n_epochs]
    pb = [mmrec_best(r["epochs"][:n_epochs]) for r in long_peers]
    # A run of exactly n epochs has its best below n, so one condition covers both cases.
    cr = [r for r in runs if r["results"] and r["results"].get("epochs_run", 0) >= n_epochs
          and r["results"]["best_epoch"] < n_epochs]
    out = ["| run | best epoch | test R@20 | test N@20 |", "|---|---|---|---|"]
    for r, b in zip(long_peers, pb):
        out.append(f"| peer seed {r['seed']} | {b['epoch']} | {fmt(b['test']['recall@20'])} | {fmt(b['test']['ndcg@20'])} |")
    cv = {"recall@20": [], "ndcg@20": []}
    for r in cr:
        res = r["results"]
        i20 = res["test"]["ks"].index(20)
        cv["recall@20"].append(res["test"]["recall"][i20])
        cv["ndcg@20"].append(res["test"]["ndcg"][i20])
        out.append(f"| crane seed {r['seed']} | {res['best_epoch']} | {fmt(cv['recall@20'][-1])} | {fmt(cv['ndcg@20'][-1])} |")
    out.append("")
    if not pb or not cr:
        out.append(f"- no run of each code with exactly {n_epochs} epochs or its best epoch below {n_epochs}")
        return out
    for key in ("recall@20", "ndcg@20"):
        pv = [b["test"][key] for b in pb]
        p = welch(pv, cv[key])
        out.append(f"- test {key}: peer {span(pv)} ({len(pv)}), crane {span(cv[key])} ({len(cv[key])}); "
                   f"peer runs inside crane's range: {inside_count(pv, cv[key])} of {len(pv)}"
                   + ("" if p != p else f"; Welch p = {p:.2g}"))
    return out


def converged_peer(run, patience):
    best = mmrec_best(run["epochs"])
    return best if len(run["epochs"]) - 1 - best["epoch"] >= patience else None


def best_table(peers, runs, label, patience):
    done = [r for r in runs if r["results"] and r["results"].get("stopped_early")]
    out = ["| run | best epoch | epochs run | test R@20 | test N@20 | test R@10 | test N@10 |", "|---|---|---|---|---|---|---|"]
    peer_best = []
    for r in peers:
        b = converged_peer(r, patience)
        if b is None:
            continue
        peer_best.append(b)
        t = b["test"]
        out.append(f"| {label} seed {r['seed']} | {b['epoch']} | {len(r['epochs'])} | {fmt(t['recall@20'])} | {fmt(t['ndcg@20'])} | {fmt(t['recall@10'])} | {fmt(t['ndcg@10'])} |")
    crane_vals = {"recall@20": [], "ndcg@20": []}
    for r in done:
        res = r["results"]
        ks = res["test"]["ks"]
        i10, i20 = ks.index(10), ks.index(20)
        t = res["test"]
        crane_vals["recall@20"].append(t["recall"][i20])
        crane_vals["ndcg@20"].append(t["ndcg"][i20])
        out.append(f"| crane seed {r['seed']} | {res['best_epoch']} | {res['epochs_run']} | {fmt(t['recall'][i20])} | {fmt(t['ndcg'][i20])} | {fmt(t['recall'][i10])} | {fmt(t['ndcg'][i10])} |")
    lines = []
    if peer_best and done:
        for key in ("recall@20", "ndcg@20"):
            pv, cv = [b["test"][key] for b in peer_best], crane_vals[key]
            p = welch(pv, cv)
            lines.append(f"- test {key}: peer {span(pv)} ({len(pv)} run(s)); crane {span(cv)} ({len(cv)} run(s)); "
                         f"peer runs inside crane's range: {inside_count(pv, cv)} of {len(pv)}"
                         + ("" if p != p else f"; Welch p = {p:.2g}"))
    else:
        lines.append(f"- converged runs so far: {len(peer_best)} peer, {len(done)} crane: no converged comparison yet")
    return out, lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer", required=True, nargs="+")
    ap.add_argument("--crane", required=True, nargs="+")
    ap.add_argument("--model", required=True)
    ap.add_argument("--label", default="peer")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batches", type=int, default=0)
    ap.add_argument("--patience", type=int, default=20)
    a = ap.parse_args()
    peers = join_resumed([r for path in a.peer for r in parse_mmrec_log(path)])
    runs = []
    for folder in a.crane:
        name = os.path.basename(os.path.normpath(folder))
        runs += [r if len(a.crane) == 1 else dict(r, seed=f"{r['seed']} ({name})") for r in crane_runs(folder, a.model)]
    if not peers:
        raise SystemExit(f"{a.peer}: no epoch with validation and test results found")
    if not runs:
        raise SystemExit(f"{a.crane}/{a.model}: no crane run with a history.jsonl")
    print(f"## {a.label} beside crane `{a.model}`\n")
    print("- peer runs: " + ", ".join(f"seed {r['seed']} ({len(r['epochs'])} epochs)" for r in peers))
    print("- crane runs: " + ", ".join(
        f"seed {r['seed']} ({len(r['history'])} epochs{', stopped early' if r['results'] and r['results'].get('stopped_early') else ''})"
        for r in runs))
    ts = [e["train_s"] for r in peers for e in r["epochs"]]
    te = [e.get("eval_s", float("nan")) for r in peers for e in r["epochs"]]
    cs = [h.get("seconds_train", float("nan")) for r in runs for h in r["history"]]
    ce = [h.get("seconds_eval", float("nan")) for r in runs for h in r["history"]]
    print(f"- seconds per epoch, training / evaluation (median; shared machine, not speed figures): "
          f"peer {statistics.median(ts):.1f} / {statistics.median(te):.1f}, crane {statistics.median(cs):.1f} / {statistics.median(ce):.1f}\n")
    print(f"### Validation curve, first {a.epochs} epochs\n")
    print("\n".join(curve_table(peers, runs, a.epochs, a.batches)))
    print(curve_summary(peers, runs, a.epochs))
    print(f"\n### Selected over the first {a.epochs} epochs: test metrics at the best validation epoch\n")
    print("\n".join(prefix_best(peers, runs, a.epochs)))
    print("\n### Converged runs: test metrics at the best validation epoch\n")
    table, lines = best_table(peers, runs, a.label, a.patience)
    print("\n".join(table))
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
