#!/usr/bin/env python3
"""Independent forward oracles for `reference/tests/oracles.rs` (issue 23).

A transcription of the paper's equations (section 3, as SPEC.md fixes the conventions) in
plain Python, no numpy and nothing from the Rust code, on the small inputs the Rust test
uses. It prints every expected value as repr() writes it (shortest round-trip); the Rust test holds these
numbers as constants (python3 may be absent on CI) and compares the reference against them.
Rerun it to regenerate: `python3 tests/oracles/reference_forward.py`.

Conventions (SPEC.md): embeddings are rows, so the paper's `W e` is `e W`; matrices are lists
of rows; modality 0 is visual, 1 textual.
"""

import math


def mm(a, b):
    """a b for lists of rows."""
    return [[sum(a[i][k] * b[k][j] for k in range(len(b))) for j in range(len(b[0]))] for i in range(len(a))]


def transpose(a):
    return [list(r) for r in zip(*a)]


def add(a, b):
    return [[x + y for x, y in zip(ra, rb)] for ra, rb in zip(a, b)]


def emap(a, f):
    return [[f(x) for x in r] for r in a]


def hcat(a, b):
    return [ra + rb for ra, rb in zip(a, b)]


def show(name, m):
    if isinstance(m[0], list):
        rows = ", ".join("[" + ", ".join(f"{float(x)!r}" for x in r) + "]" for r in m)
        print(f"{name} = [{rows}]")
    else:
        print(f"{name} = [" + ", ".join(f"{float(x)!r}" for x in m) + "]")


# ---------------------------------------------------------------- Eq. (2)
# A: users 0:{0,1}, 1:{1}, 2:{1,2}; 3 users, 3 items. CSR order = sorted (u, i).
pairs = [(0, 0), (0, 1), (1, 1), (2, 1), (2, 2)]
du = [sum(1 for u, _ in pairs if u == x) for x in range(3)]
di = [sum(1 for _, i in pairs if i == x) for x in range(3)]
show("EQ02_P", [1 / math.sqrt(du[u] * di[i]) for u, i in pairs])
mask = [1, 0, 1, 1, 1]  # (0, 1) dropped
kept = [p for p, k in zip(pairs, mask) if k]
kdu = [sum(1 for u, _ in kept if u == x) for x in range(3)]
kdi = [sum(1 for _, i in kept if i == x) for x in range(3)]
for name, (eu, ei) in [("EQ02_ADJ_FULL", (du, di)), ("EQ02_ADJ_KEPT", (kdu, kdi))]:
    adj = [[0.0] * 6 for _ in range(6)]
    for u, i in kept:
        v = 1 / math.sqrt(eu[u] * ei[i])
        adj[u][3 + i] = v
        adj[3 + i][u] = v
    show(name, adj)

# ---------------------------------------------------------------- Eq. (3)-(4)
# 2 users, 3 items, A: 0:{0,1}, 1:{1,2}. H0 [5, 2], W non-symmetric.
gpairs = [(0, 0), (0, 1), (1, 1), (1, 2)]
gdu = [2, 2]
gdi = [1, 2, 1]
H0 = [[1.0, 2.0], [-1.0, 0.5], [0.5, -1.5], [2.0, 1.0], [-0.5, 3.0]]
W1 = [[0.5, -1.0], [2.0, 0.25]]
W2 = [[-0.75, 0.5], [1.5, 1.0]]


def gcn_layer(h, w, slope):
    """Eq. (3) user rows: sum over items of e_i W / sqrt(d_u d_i); Eq. (4) item rows likewise."""
    hw = mm(h, w)
    out = [[0.0, 0.0] for _ in range(5)]
    for u, i in gpairs:
        c = 1 / math.sqrt(gdu[u] * gdi[i])
        for j in range(2):
            out[u][j] += c * hw[2 + i][j]
            out[2 + i][j] += c * hw[u][j]
    if slope is None:
        return out
    return emap(out, lambda x: x if x > 0 else slope * x)


L1 = gcn_layer(H0, W1, None)
show("EQ03_LAYER_IDENTITY", L1)
show("EQ03_LAYER_LEAKY", gcn_layer(H0, W1, 0.2))
L2 = gcn_layer(L1, W2, None)
show("EQ04_MEAN_READOUT", [[(a + b + c) / 3 for a, b, c in zip(r0, r1, r2)] for r0, r1, r2 in zip(H0, L1, L2)])
show("EQ04_LAST_READOUT", L2)

# ---------------------------------------------------------------- Eq. (5)
# 3 users, 3 items; user 2 has no item. A: 0:{0,2}, 1:{1}, 2:{}.
ppairs = [(0, 0), (0, 2), (1, 1)]
XI = [[1.0, -2.0], [0.5, 4.0], [3.0, 1.0]]
att = [0.5, -0.25]
items_of = {u: [i for v, i in ppairs if v == u] for u in range(3)}
show("EQ05_SUM", [[sum(XI[i][j] for i in items_of[u]) for j in range(2)] for u in range(3)])
show("EQ05_AVERAGE", [[sum(XI[i][j] for i in items_of[u]) / len(items_of[u]) if items_of[u] else 0.0 for j in range(2)] for u in range(3)])
show("EQ05_MAX", [[max(XI[i][j] for i in items_of[u]) if items_of[u] else 0.0 for j in range(2)] for u in range(3)])
attn = []
for u in range(3):
    its = items_of[u]
    s = [sum(XI[i][j] * att[j] for j in range(2)) for i in its]
    z = sum(math.exp(x) for x in s)
    attn.append([sum(math.exp(s[k]) / z * XI[i][j] for k, i in enumerate(its)) for j in range(2)])
show("EQ05_ATTENTION", attn)

# ---------------------------------------------------------------- Eq. (10)-(12)
X = [[0.3, -0.2], [0.5, 0.4], [-0.1, 0.6]]
P = [[0.7, 0.1], [-0.4, 0.9], [0.2, -0.5]]
C = emap(mm(X, transpose(P)), math.tanh)  # Eq. (10): C_ab = tanh(x_a . p_b)
show("EQ10_C", C)
# Eq. (11) with a given non-symmetric C.
CG = [[0.5, -0.2, 0.1], [0.3, 0.4, -0.6], [0.9, 0.0, 0.2]]
XG = [[1.0, 2.0], [-1.0, 0.5], [0.5, 1.5]]
WA = [[1.0, 0.5], [-0.5, 1.0]]
relu = lambda v: max(v, 0.0)
for name, s in [("EQ11_F_SCALE1", 1.0), ("EQ11_F_MEAN", 1.0 / 3.0)]:
    show(name, emap(mm(emap(mm(CG, XG), lambda v: s * v), WA), relu))
show("EQ11_F_SCALE1_IF_TRANSPOSED", emap(mm(mm(transpose(CG), XG), WA), relu))
WF = [[0.5, 1.0], [-1.0, 2.0]]
F = [[0.25, 0.0], [1.0, 0.5], [0.0, 2.0]]
show("EQ12_OUT", add(F, mm(XG, WF)))

# ---------------------------------------------------------------- Eq. (13), Algorithm 1
# M + N = 3 entities, d_f = 2, d_j = 2.
XV0 = [[0.3, -0.2], [0.5, 0.4], [-0.1, 0.6]]
XT0 = [[0.8, 0.1], [-0.3, 0.7], [0.2, 0.2]]
WTR = [[0.5, -0.3], [0.2, 0.8], [-0.6, 0.1], [0.4, 0.4]]
BTR = [[0.1, -0.2]]
WM = [[[1.0, 0.5], [-0.5, 1.2]], [[0.3, -0.9], [0.8, 0.6]]]
WA2 = [[[1.0, 0.5], [-0.5, 1.0]], [[0.7, -0.2], [0.4, 1.1]]]
WF2 = [[[0.9, 0.1], [0.0, 1.1]], [[1.2, -0.3], [0.2, 0.8]]]
S13 = 1.0 / 3.0


def rca_round(xs, transposed=False):
    e = hcat(xs[0], xs[1])  # Eq. (7), columns
    ep = [[v + b for v, b in zip(r, BTR[0])] for r in mm(e, WTR)]  # Eq. (8)
    out = []
    for m in range(2):
        p = mm(ep, WM[m])  # Eq. (9)
        c = emap(mm(xs[m], transpose(p)), math.tanh)  # Eq. (10)
        if transposed:  # the planted bug of issue 23, to show the oracle tells them apart
            c = transpose(c)
        f = emap(mm(emap(mm(c, xs[m]), lambda v: S13 * v), WA2[m]), relu)  # Eq. (11)
        out.append(add(f, mm(xs[m], WF2[m])))  # Eq. (12)
    return out


r1 = rca_round([XV0, XT0])
show("EQ13_ONE_ROUND", hcat(r1[0], r1[1]))
r2 = rca_round(r1)
show("EQ13_TWO_ROUNDS", hcat(r2[0], r2[1]))
rt = rca_round([XV0, XT0], transposed=True)
show("EQ13_ONE_ROUND_IF_TRANSPOSED", hcat(rt[0], rt[1]))

# ---------------------------------------------------------------- Eq. (14)
# 5 items, k = 2. Item 4 is a zero row.
XK = [[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [-1.0, 0.2], [0.0, 0.0]]
norms = [math.sqrt(sum(v * v for v in r)) for r in XK]
unit = [[v / n for v in r] if n > 1e-12 else [0.0, 0.0] for r, n in zip(XK, norms)]
S = mm(unit, transpose(unit))
show("EQ14_S", S)
K = 2
dense = [[0.0] * 5 for _ in range(5)]
for i in range(5):
    if S[i][i] <= 0:
        continue
    cand = [j for j in range(5) if S[j][j] > 0]
    cand.sort(key=lambda j: (-S[i][j], j))
    keep = cand[:K]
    tot = sum(max(S[i][j], 0.0) for j in keep)
    for j in keep:
        dense[i][j] = max(S[i][j], 0.0) / tot
show("EQ14_KNN_DENSE", dense)
# k = 3: row 3 keeps item 1 with similarity < 0, clamped to 0 (stored as 0).
dense3 = [[0.0] * 5 for _ in range(5)]
for i in range(5):
    if S[i][i] <= 0:
        continue
    cand = sorted((j for j in range(5) if S[j][j] > 0), key=lambda j: (-S[i][j], j))[:3]
    tot = sum(max(S[i][j], 0.0) for j in cand)
    for j in cand:
        dense3[i][j] = max(S[i][j], 0.0) / tot
show("EQ14_KNN3_DENSE", dense3)

# ---------------------------------------------------------------- Eq. (15)-(16)
# A non-symmetric S~ (3 items), 2 layers.
ST = [[0.5, 0.5, 0.0], [0.0, 0.25, 0.75], [1.0, 0.0, 0.0]]
HI = [[1.0, -1.0], [2.0, 0.5], [-3.0, 4.0]]
show("EQ15_H", mm(ST, mm(ST, HI)))
A16 = [[1, 0, 1], [0, 1, 1]]  # users 0:{0,2}, 1:{1,2}
show("EQ16_HU", mm(A16, HI))

# ---------------------------------------------------------------- Eq. (17)
ZU = [[1.0, 2.0], [-1.0, 0.5]]
ZI = [[0.5, 0.5], [2.0, -1.0], [0.0, 3.0]]
show("EQ17_SCORES", [sum(a * b for a, b in zip(ZU[u], ZI[i])) for u, i in [(0, 0), (0, 2), (1, 1)]])

# ---------------------------------------------------------------- Eq. (18)
pos = [2.0, 0.0, -1.0]
neg = [1.0, 0.0, 3.0]
print(f"EQ18_BPR = {sum(-math.log(1 / (1 + math.exp(-(p - n)))) for p, n in zip(pos, neg)) / 3!r}")

# ---------------------------------------------------------------- Eq. (19)
EA = [[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]
HB = [[3.0, 0.0], [1.0, 1.0], [-1.0, 2.0]]
tau = 0.5


def cos(x, y):
    return sum(a * b for a, b in zip(x, y)) / (math.sqrt(sum(a * a for a in x)) * math.sqrt(sum(b * b for b in y)))


tot = 0.0
for u in range(3):
    num = math.exp(cos(EA[u], HB[u]) / tau)
    den = sum(math.exp(cos(EA[u], HB[v]) / tau) for v in range(3))
    tot += -math.log(num / den)
print(f"EQ19_INFO_NCE = {tot / 3!r}")
tot = 0.0
for u in range(3):  # the column softmax (a wrong denominator), to show it differs
    num = math.exp(cos(EA[u], HB[u]) / tau)
    den = sum(math.exp(cos(EA[v], HB[u]) / tau) for v in range(3))
    tot += -math.log(num / den)
print(f"EQ19_INFO_NCE_IF_COLUMN_SOFTMAX = {tot / 3!r}")
