#!/usr/bin/env python3
"""Prints the validation-selected point of a halving.csv (last rung, best valid_metric) as
`--set KEY=VALUE` (train form) or, with a model name, `--set MODEL:KEY=VALUE` (compare form)."""
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
last = max(int(r["rung"]) for r in rows)
best = max((r for r in rows if int(r["rung"]) == last), key=lambda r: float(r["valid_metric"]))
prefix = sys.argv[2] + ":" if len(sys.argv) > 2 else ""
print(" ".join(f"--set {prefix}{kv}" for kv in best["point"].split()))
