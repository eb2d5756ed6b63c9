#!/usr/bin/env python3
"""Seconds per training batch of a peer's own model code (MMRec's FREEDOM or the authors'
CRANE), for epochs too long to time whole on a CPU.

Run from the peer's `src/` folder (laid out by scripts/peers-setup.sh):
    python3 peer_batches.py --model CRANE --dataset baby --batches 3 --threads 2

It builds the data, loaders and model exactly as the peer's `quick_start` does (its Config,
RecDataset, TrainDataLoader, get_model, the first seed of its config), calls the model's
`pre_epoch_processing`, then times `--batches` steps of what its Trainer does per batch:
`calculate_loss`, `backward`, Adam's `step` (lr from its config). Prints seconds per batch,
the epoch's batch count, the implied seconds per epoch and the peak resident memory.
Nothing in the peer's code is changed."""
import argparse
import resource
import time

import torch
from utils.configurator import Config
from utils.dataloader import TrainDataLoader
from utils.dataset import RecDataset
from utils.utils import get_model, init_seed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--dataset", default="baby")
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    config = Config(a.model, a.dataset, {"gpu_id": 0})
    dataset = RecDataset(config)
    train_dataset, _, _ = dataset.split()
    # quick_start logs str() of each dataset, which is where RecDataset sets `inter_num`, read
    # by the loaders: the same calls here.
    str(dataset), str(train_dataset)
    train_data = TrainDataLoader(config, train_dataset, batch_size=config["train_batch_size"], shuffle=True)
    seed = config["seed"][0] if isinstance(config["seed"], list) else config["seed"]
    for name in config["hyper_parameters"]:
        if isinstance(config[name], list):
            config[name] = config[name][0]
    config["seed"] = seed
    init_seed(seed)
    train_data.pretrain_setup()
    t0 = time.time()
    model = get_model(config["model"])(config, train_data).to(config["device"])
    setup = time.time() - t0
    opt = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])
    model.train()
    model.pre_epoch_processing()
    times = []
    for i, interaction in enumerate(train_data):
        if i == a.batches:
            break
        t = time.time()
        opt.zero_grad()
        loss = model.calculate_loss(interaction)
        loss.backward()
        opt.step()
        times.append(time.time() - t)
    n_batches = len(train_data)
    per = sum(times) / len(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{a.model} on {a.dataset}, {a.threads} threads: model built in {setup:.1f} s; batches "
          + ", ".join(f"{x:.2f}" for x in times)
          + f" s; {per:.2f} s per batch x {n_batches} batches = {per * n_batches:.0f} s per epoch (training only); "
          f"peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
