#!/usr/bin/env python3
"""PyTorch counterparts of crane's presets, for timing one training epoch and one evaluation on
the same machine (docs/BENCHMARKS.md, "crane against PyTorch").

This is NOT the authors' code and not MMRec itself (neither can be fetched on the development
machines: GitHub is unreachable, only PyPI is). It is a transcription, written for this
benchmark, of what MMRec's models do per epoch, following the definitions of
`../shared/notes/protocol.md` ("Baselines as MMRec implements them", "The authors' code as a
model of its own") and MMRec's structure:

- the trainer's data loader shuffles the training pairs and draws one negative per pair in a
  Python loop with rejection against the user's training items (MMRec's `_sample_neg_ids`);
- BPR-MF: dot product of ID embeddings, mean BPR + lambda * (sum of unsquared norms) / batch;
- LightGCN: `torch.sparse.mm` with D^-1/2 A D^-1/2 (no self loops), mean of layers 0..L;
- FREEDOM: degree-sensitive edge pruning redrawn every epoch (`torch.multinomial`), LightGCN on
  the pruned graph, h = S E_item with S = 0.1 kNN(image) + 0.9 kNN(text) (k = 10, frozen),
  BPR + lambda * (BPR against the projected text and image features);
- crane-code: FREEDOM with the two projected feature tables through one
  `nn.MultiheadAttention(64, 4)` over all items (need_weights left at its default, as a call
  `mha(x, x, x)` does), outputs averaged into h^(0), BPR only.

Evaluation: all users in blocks of 2048, scores of all items, training items masked, top-50,
Recall/NDCG at 10 and 20 on the validation split (as crane evaluates every epoch).

Usage (after `pip install torch numpy scipy`):
    python benches/pytorch/mmrec_epoch.py --data-dir <MMRec folder> --model lightgcn --epochs 2
Prints one JSON line per model: seconds per epoch (each timed epoch), seconds per evaluation,
peak resident memory (ru_maxrss), torch version and thread count.
"""

import argparse
import json
import os
import random
import resource
import time

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn as nn
import torch.nn.functional as F


def load(data_dir):
    name = [f for f in os.listdir(data_dir) if f.endswith(".inter")][0]
    rows = np.loadtxt(os.path.join(data_dir, name), dtype=np.int64, skiprows=1, usecols=(0, 1, 4))
    n_users, n_items = int(rows[:, 0].max()) + 1, int(rows[:, 1].max()) + 1
    train = rows[rows[:, 2] == 0][:, :2]
    valid = rows[rows[:, 2] == 1][:, :2]
    feats = {}
    for m in ("image", "text"):
        p = os.path.join(data_dir, f"{m}_feat.npy")
        if os.path.exists(p):
            feats[m] = torch.from_numpy(np.load(p).astype(np.float32))
    return n_users, n_items, train, valid, feats


def norm_adj(users, items, n_users, n_items):
    """D^-1/2 A D^-1/2 of the bipartite graph [M+N, M+N], no self loops (sparse)."""
    n = n_users + n_items
    r = torch.cat([users, items + n_users])
    c = torch.cat([items + n_users, users])
    deg = torch.bincount(r, minlength=n).float()
    dinv = torch.where(deg > 0, deg.pow(-0.5), torch.zeros_like(deg))
    v = dinv[r] * dinv[c]
    return torch.sparse_coo_tensor(torch.stack([r, c]), v, (n, n)).coalesce()


def knn_adj(x, k):
    """MMRec FREEDOM's frozen kNN graph of raw features: cosine top-k (self included), values
    1/sqrt(d_i d_j) with every row degree k, i.e. 1/k."""
    xn = x / x.norm(p=2, dim=-1, keepdim=True)
    sim = xn @ xn.t()
    _, idx = torch.topk(sim, k, dim=-1)
    del sim
    rows = torch.arange(x.shape[0]).unsqueeze(1).expand(-1, k).flatten()
    ind = torch.stack([rows, idx.flatten()])
    vals = torch.full((ind.shape[1],), 1.0 / k)
    return torch.sparse_coo_tensor(ind, vals, (x.shape[0], x.shape[0])).coalesce()


def bpr(pos, neg):
    return -F.logsigmoid(pos - neg).mean()


class Model(nn.Module):
    def __init__(self, kind, n_users, n_items, train, feats, d=64):
        super().__init__()
        self.kind, self.n_users, self.n_items = kind, n_users, n_items
        self.user = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_users, d)))
        self.item = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_items, d)))
        self.users_t = torch.from_numpy(train[:, 0])
        self.items_t = torch.from_numpy(train[:, 1])
        if kind in ("lightgcn", "freedom", "crane-code"):
            self.adj = norm_adj(self.users_t, self.items_t, n_users, n_items)
            self.layers = 2
        if kind in ("freedom", "crane-code"):
            du = torch.bincount(self.users_t, minlength=n_users).float()
            di = torch.bincount(self.items_t, minlength=n_items).float()
            self.edge_w = (du[self.users_t] * di[self.items_t]).pow(-0.5)
            self.feats = feats
            self.trs = nn.ModuleDict({m: nn.Linear(f.shape[1], d) for m, f in feats.items()})
            s_img = knn_adj(feats["image"], 10)
            s_txt = knn_adj(feats["text"], 10)
            self.mm_adj = (0.1 * s_img + 0.9 * s_txt).coalesce()
            self.masked = self.adj
        if kind == "crane-code":
            self.mha = nn.MultiheadAttention(d, 4)

    def pre_epoch(self):
        """FREEDOM's degree-sensitive pruning: keep floor(0.2 E) edges (p = 0.8), sampled
        without replacement with weights 1/sqrt(d_u d_i), renormalised on the kept graph."""
        if self.kind not in ("freedom", "crane-code"):
            return
        keep = int(self.edge_w.shape[0] * 0.2)
        idx = torch.multinomial(self.edge_w, keep)
        self.masked = norm_adj(self.users_t[idx], self.items_t[idx], self.n_users, self.n_items)

    def propagate(self, adj):
        ego = torch.cat([self.user, self.item])
        outs = [ego]
        for _ in range(self.layers):
            ego = torch.sparse.mm(adj, ego)
            outs.append(ego)
        allm = torch.stack(outs).mean(0)
        return allm[: self.n_users], allm[self.n_users:]

    def item_side(self):
        if self.kind == "crane-code":
            outs = []
            for m in ("image", "text"):
                x = self.trs[m](self.feats[m])
                y, _ = self.mha(x, x, x)
                outs.append(y)
            h = (outs[0] + outs[1]) / 2
        else:
            h = self.item
        return torch.sparse.mm(self.mm_adj, h)

    def forward(self, train=True):
        if self.kind == "bpr":
            return self.user, self.item
        if self.kind == "lightgcn":
            return self.propagate(self.adj)
        u, i = self.propagate(self.masked if train else self.adj)
        return u, i + self.item_side()

    def loss(self, u, p, n):
        ue, ie = self.forward(True)
        uu, pp, nn_ = ue[u], ie[p], ie[n]
        loss = bpr((uu * pp).sum(1), (uu * nn_).sum(1))
        if self.kind in ("bpr", "lightgcn"):
            # MMRec's EmbLoss on the batch's layer-0 rows: unsquared norms / batch.
            lam = 1e-4
            e0 = (self.user[u], self.item[p], self.item[n])
            loss = loss + lam * sum(torch.norm(e) for e in e0) / u.shape[0]
        elif self.kind == "freedom":
            lam = 1e-4
            for m in ("text", "image"):
                f = self.trs[m](self.feats[m])
                loss = loss + lam * bpr((uu * f[p]).sum(1), (uu * f[n]).sum(1))
        return loss


def epoch(model, opt, train, hist, n_items, batch):
    model.train()
    model.pre_epoch()
    order = np.random.permutation(train.shape[0])
    for s in range(0, len(order), batch):
        b = train[order[s:s + batch]]
        users = b[:, 0].tolist()
        # MMRec's `_sample_neg_ids`: a Python loop with rejection.
        negs = []
        for u in users:
            j = random.randrange(n_items)
            while j in hist[u]:
                j = random.randrange(n_items)
            negs.append(j)
        u = torch.from_numpy(b[:, 0])
        p = torch.from_numpy(b[:, 1])
        n = torch.tensor(negs)
        opt.zero_grad()
        loss = model.loss(u, p, n)
        loss.backward()
        opt.step()


@torch.no_grad()
def evaluate(model, hist_csr, valid_csr, block=2048):
    """Full ranking, vectorised per block as MMRec's evaluator: top-50 indices, hits looked up
    in the held-out matrix, Recall and NDCG at 10 and 20 averaged over users with held-out items."""
    model.eval()
    ue, ie = model.forward(False)
    n_users = ue.shape[0]
    n_pos = np.asarray(valid_csr.sum(1)).ravel()
    out = {f"{m}@{k}": 0.0 for m in ("recall", "ndcg") for k in (10, 20)}
    disc = 1.0 / np.log2(np.arange(2, 52))
    for s in range(0, n_users, block):
        e = min(s + block, n_users)
        scores = ue[s:e] @ ie.t()
        r, c = hist_csr[s:e].nonzero()
        scores[torch.from_numpy(r), torch.from_numpy(c)] = -1e10
        top = torch.topk(scores, 50, dim=1).indices.numpy()
        rows = np.repeat(np.arange(s, e), 50)
        hits = np.asarray(valid_csr[rows, top.ravel()]).reshape(e - s, 50)
        npos = n_pos[s:e]
        keep = npos > 0
        for k in (10, 20):
            out[f"recall@{k}"] += (hits[keep, :k].sum(1) / npos[keep]).sum()
            dcg = (hits[keep, :k] * disc[:k]).sum(1)
            idcg = np.cumsum(disc[:k])[np.minimum(npos[keep], k).astype(int) - 1]
            out[f"ndcg@{k}"] += (dcg / idcg).sum()
    users = (n_pos > 0).sum()
    return {k: float(v / users) for k, v in out.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--model", required=True, choices=["bpr", "lightgcn", "freedom", "crane-code"])
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2048)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(2024)
    np.random.seed(2024)
    random.seed(2024)
    n_users, n_items, train, valid, feats = load(args.data_dir)
    hist = [set() for _ in range(n_users)]
    for u, i in train:
        hist[u].add(int(i))
    hist_csr = sp.csr_matrix((np.ones(len(train)), (train[:, 0], train[:, 1])), shape=(n_users, n_items))
    valid_csr = sp.csr_matrix((np.ones(len(valid)), (valid[:, 0], valid[:, 1])), shape=(n_users, n_items))
    t0 = time.perf_counter()
    model = Model(args.model, n_users, n_items, train, feats)
    setup = time.perf_counter() - t0
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    secs, evals = [], []
    metrics = None
    for _ in range(args.epochs):
        t = time.perf_counter()
        epoch(model, opt, train, hist, n_items, args.batch)
        secs.append(time.perf_counter() - t)
        t = time.perf_counter()
        metrics = evaluate(model, hist_csr, valid_csr)
        evals.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "model": args.model,
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "setup_s": round(setup, 2),
                "epoch_s": [round(s, 2) for s in secs],
                "eval_s": [round(s, 2) for s in evals],
                "peak_mb": round(peak),
                "valid": {k: round(v, 4) for k, v in metrics.items()},
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
