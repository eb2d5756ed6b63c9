#!/usr/bin/env python3
"""Independent forward oracles for `reference/tests/oracles.rs` (issue 23).

A transcription of the paper's equations (section 3, as SPEC.md fixes the conventions) in
plain Python, no numpy and nothing from the Rust code, on the small inputs the Rust test
uses. It prints every expected value as repr() writes it (shortest round-trip); the Rust test holds these
numbers as constants (python3 may be absent on CI) and compares the reference against them.
Rerun it to regenerate: `python3 tests/oracles/reference_forward.py`.

Conventions (SPEC.md): embeddings are rows, so the paper's `W e` is `e W`; matrices are lists
of rows; modality 0 is visual, 1 textual. The Eq. (20) section ends with the whole chain,
Eq. (2)-(20) with SPEC.md's defaults, on a tiny graph (the Rust side runs `loss_and_grads`).
Three sections after it transcribe forwards that are no paper equation: FREEDOM's frozen
raw-feature graph, CRANE-A's averaged cosine graph (Fig. 4) and the authors' attention.
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

# ---------------------------------------------------------------- Eq. (6)
# Projection first (SPEC.md): X^_I = X_I P + 1 p, X_U = A X^_I (Eq. 5, sum), X = [X_U; X^_I]
# (rows, users first). 3 users 0:{0,2}, 1:{1}, 2:{0,1,2}; 3 items, raw width 3, d_f = 2.
A6 = [[1, 0, 1], [0, 1, 0], [1, 1, 1]]
X6 = [[1.0, 0.0, 2.0], [0.5, -1.0, 0.0], [0.0, 3.0, -1.0]]
P6 = [[0.5, -1.0], [2.0, 0.25], [-0.5, 1.0]]
B6 = [0.1, -0.2]
XHAT6 = [[v + b for v, b in zip(r, B6)] for r in mm(X6, P6)]
show("EQ06_X", mm(A6, XHAT6) + XHAT6)
# The order SPEC.md rejects: Eq. (5) on the raw features, then projected (bias once, not d_u times).
show("EQ06_X_IF_BIAS_ONCE", [[v + b for v, b in zip(r, B6)] for r in mm(mm(A6, X6), P6)] + XHAT6)

# ---------------------------------------------------------------- Eq. (8)
# E [3, 4], W_tr [4, 4] not symmetric, b_tr [1, 4] broadcast over the rows.
E8 = [[1.0, -0.5, 0.25, 2.0], [0.0, 1.5, -1.0, 0.5], [-2.0, 0.75, 1.0, -1.0]]
W8 = [[0.5, -1.0, 0.25, 0.0], [2.0, 0.5, -0.75, 1.0], [0.0, 1.5, 0.5, -0.5], [-1.0, 0.25, 1.0, 0.75]]
B8 = [0.3, -0.6, 0.9, -1.2]
show("EQ08_EP", [[v + b for v, b in zip(r, B8)] for r in mm(E8, W8)])

# ---------------------------------------------------------------- Eq. (9)
# E' [3, 2], W_m [2, 2] not symmetric.
EP9 = [[0.4, -1.0], [1.5, 0.5], [-0.5, 2.0]]
W9 = [[1.0, -0.5], [0.75, 2.0]]
show("EQ09_P", mm(EP9, W9))

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


def rca_round(xs, transposed=False, record=None, scale=S13):
    e = hcat(xs[0], xs[1])  # Eq. (7), columns
    ep = [[v + b for v, b in zip(r, BTR[0])] for r in mm(e, WTR)]  # Eq. (8)
    if record is not None:
        record.update(e=e, ep=ep, p=[])
    out = []
    for m in range(2):
        p = mm(ep, WM[m])  # Eq. (9)
        if record is not None:
            record["p"].append(p)
        c = emap(mm(xs[m], transpose(p)), math.tanh)  # Eq. (10)
        if transposed:  # the planted bug of issue 23, to show the oracle tells them apart
            c = transpose(c)
        f = emap(mm(emap(mm(c, xs[m]), lambda v: scale * v), WA2[m]), relu)  # Eq. (11)
        out.append(add(f, mm(xs[m], WF2[m])))  # Eq. (12)
    return out


first = {}
r1 = rca_round([XV0, XT0], record=first)
show("EQ13_ONE_ROUND", hcat(r1[0], r1[1]))
r2 = rca_round(r1)
show("EQ13_TWO_ROUNDS", hcat(r2[0], r2[1]))
rt = rca_round([XV0, XT0], transposed=True)
show("EQ13_ONE_ROUND_IF_TRANSPOSED", hcat(rt[0], rt[1]))
# Eq. (7)-(9) inside the first round (Theta of the Eq. (13) oracle): E = [X^v | X^t], E', and
# [P^v | P^t] (P^v from W_v, P^t from W_t).
show("EQ07_E", first["e"])
show("EQ08_EP_ROUND", first["ep"])
show("EQ09_P_ROUND", hcat(first["p"][0], first["p"][1]))

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


# ---------------------------------------------------------------- Eq. (20)
# L = L_BPR + beta (L_CL^U + L_CL^I) + lambda ||Theta||^2 with SPEC.md's ||Theta||^2 =
# sum over the batch's triplets of ||E_u||^2 + ||E_i||^2 + ||E_j||^2 of the layer-0 embeddings,
# divided by B (one row per triplet: a repeated user counts twice); MMRec's batch_norms is
# (||U_b|| + ||P_b|| + ||N_b||) / B with unsquared Frobenius norms of the [B, d] tables.


def info_nce(a, b, t):
    """Eq. (19) over the rows of a (e) and b (h), mean over the batch."""
    tot = 0.0
    for u in range(len(a)):
        num = math.exp(cos(a[u], b[u]) / t)
        den = sum(math.exp(cos(a[u], b[v]) / t) for v in range(len(a)))
        tot += -math.log(num / den)
    return tot / len(a)


def sqn(v):
    return sum(x * x for x in v)


UE = [[0.5, -0.2], [0.1, 0.4]]
IE = [[0.3, 0.2], [-0.4, 0.1], [0.2, -0.3]]
TRIPLETS = [(0, 0, 2), (1, 1, 0), (0, 1, 2)]
BETA, LAMBDA, TAU20 = 0.3, 0.1, 0.5
NB = len(TRIPLETS)
SQ = sum(sqn(UE[u]) + sqn(IE[i]) + sqn(IE[j]) for u, i, j in TRIPLETS) / NB
print(f"EQ20_SQ_NORM = {SQ!r}")
# The same over the distinct rows (user 0 and item 1 counted once): what a per-entity penalty gives.
print(f"EQ20_SQ_NORM_IF_DISTINCT_ROWS = {(sum(sqn(r) for r in UE) + sum(sqn(r) for r in IE)) / NB!r}")
frob = lambda rows: math.sqrt(sum(sqn(r) for r in rows))  # Frobenius norm of a [B, d] table
tables = [[UE[u] for u, _, _ in TRIPLETS], [IE[i] for _, i, _ in TRIPLETS], [IE[j] for _, _, j in TRIPLETS]]
print(f"EQ20_BATCH_NORMS = {sum(frob(t) for t in tables) / NB!r}")
print(f"EQ20_TOTAL = {0.7 + BETA * (1.1 + 0.9) + LAMBDA * SQ!r}")  # L_BPR 0.7, L_CL^U 1.1, L_CL^I 0.9

# The whole model (SPEC.md defaults: identity sigma, mean readout, sum profiles, RCA with
# s = 1/(M+N), learned item graph fed by the readout e_I, z = e + h) on a tiny graph: 2 users
# 0:{0,1}, 1:{1,2}, 3 items, d = d_f = d_j = 2, L_UI = 1, R = 2, k = 2, L_II = 1, every edge kept.
MU, NI = 2, 3
AP = [(0, 0), (0, 1), (1, 1), (1, 2)]
A20 = [[1 if (u, i) in AP else 0 for i in range(NI)] for u in range(MU)]
WG = [[0.9, -0.3], [0.4, 1.1]]
FV = [[1.0, 0.2, -0.5], [0.3, -0.8, 0.6], [-0.4, 0.5, 0.9]]
FT = [[0.6, -0.1], [0.2, 0.7], [-0.5, 0.4]]
PV, BV = [[0.5, -0.1], [0.2, 0.3], [-0.4, 0.6]], [0.05, -0.02]
PT, BT = [[0.7, 0.2], [-0.3, 0.5]], [-0.03, 0.04]
K20 = 2

# Eq. (2)-(4): full-graph degrees, one layer, mean readout of layers 0 and 1.
du20 = [sum(A20[u]) for u in range(MU)]
di20 = [sum(A20[u][i] for u in range(MU)) for i in range(NI)]
H0 = UE + IE
HW = mm(H0, WG)
H1 = [[0.0, 0.0] for _ in range(MU + NI)]
for u, i in AP:
    c = 1 / math.sqrt(du20[u] * di20[i])
    for j in range(2):
        H1[u][j] += c * HW[MU + i][j]
        H1[MU + i][j] += c * HW[u][j]
E20 = [[(a + b) / 2 for a, b in zip(r0, r1)] for r0, r1 in zip(H0, H1)]

# Eq. (5)-(13): projected features, summed profiles, users stacked first, R = 2 rounds.
xhat = [[[v + b for v, b in zip(r, bias)] for r in mm(f, p)] for f, p, bias in [(FV, PV, BV), (FT, PT, BT)]]
xs = [mm(A20, xh) + xh for xh in xhat]
for _ in range(2):
    xs = rca_round(xs, scale=1.0 / (MU + NI))
XATT_I = hcat(xs[0], xs[1])[MU:]

# Eq. (14): cosine, top-k per row (self included, ties to the smaller id), clamp, row-normalise.
nrm = [math.sqrt(sqn(r)) for r in XATT_I]
S20 = [[sum(a * b for a, b in zip(XATT_I[i], XATT_I[j])) / (nrm[i] * nrm[j]) for j in range(NI)] for i in range(NI)]
ST20 = [[0.0] * NI for _ in range(NI)]
for i in range(NI):
    order = sorted(range(NI), key=lambda j: (-S20[i][j], j))
    assert S20[i][order[K20 - 1]] - S20[i][order[K20]] > 1e-3, "no near-tie at the cut-off"
    tot = sum(max(S20[i][j], 0.0) for j in order[:K20])
    for j in order[:K20]:
        ST20[i][j] = max(S20[i][j], 0.0) / tot

# Eq. (15)-(17): h^(0) = e_I, one layer, h_u = sum of the items' h, z = e + h.
HI20 = mm(ST20, E20[MU:])
H20 = mm(A20, HI20) + HI20
Z20 = add(E20, H20)
show("EQ20_MODEL_Z", Z20)


def model_terms(e_cl, reg_sq):
    """Eq. (18)-(20) on Z20; e_cl is the collaborative view Eq. (19) contrasts with h."""
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))
    bpr = sum(math.log1p(math.exp(-(dot(Z20[u], Z20[MU + i]) - dot(Z20[u], Z20[MU + j])))) for u, i, j in TRIPLETS) / NB
    users = list(dict.fromkeys(u for u, _, _ in TRIPLETS))  # distinct users, first appearance
    items = list(dict.fromkeys(i for _, i, _ in TRIPLETS))  # distinct positive items
    clu = info_nce([e_cl[u] for u in users], [H20[u] for u in users], TAU20)
    cli = info_nce([e_cl[MU + i] for i in items], [H20[MU + i] for i in items], TAU20)
    terms = [bpr, BETA * clu, BETA * cli, LAMBDA * reg_sq]
    return terms + [sum(terms)]


show("EQ20_MODEL_TERMS", model_terms(E20, SQ))
# Two plausible slips, to show the input tells them apart: Eq. (19) on the layer-0 embeddings
# instead of the readout e, and the regulariser over distinct rows instead of one per triplet.
print(f"EQ20_MODEL_TOTAL_IF_CL_ON_LAYER0 = {model_terms(H0, SQ)[-1]!r}")
SQ_DISTINCT = (sum(sqn(r) for r in UE) + sum(sqn(r) for r in IE)) / NB
print(f"EQ20_MODEL_TOTAL_IF_REG_ON_DISTINCT_ROWS = {model_terms(E20, SQ_DISTINCT)[-1]!r}")


# ---------------------------------------------------------------- FREEDOM's frozen graph
# Not a paper equation (the `freedom` baseline, SPEC.md): S = w kNN(X_v)/k + (1 - w) kNN(X_t)/k
# on the raw features, kNN(X) the binary top-k of each row of the cosine matrix (the item itself
# included, ties to the smaller id). A zero row of a modality is no candidate there and has no
# neighbours there. 5 items, raw widths 3 and 2, k = 2, w = 0.3; item 4 has no text (zero row).


def cosine_matrix(x):
    """Cosine similarities of the rows; a zero row (norm <= 1e-12) has unit row 0 (SPEC.md)."""
    nrm = [math.sqrt(sqn(r)) for r in x]
    unit = [[v / n for v in r] if n > 1e-12 else [0.0] * len(r) for r, n in zip(x, nrm)]
    return mm(unit, transpose(unit))


def ranked(s, i):
    """The candidates of row i (S_jj > 0), largest similarity first, ties to the smaller id."""
    return sorted((j for j in range(len(s)) if s[j][j] > 0), key=lambda j: (-s[i][j], j))


def knn_rows(s, k, check_gap=False):
    """Eq. (14): the top-k of each candidate row, clamped at 0, divided by the row's sum."""
    n = len(s)
    out = [[0.0] * n for _ in range(n)]
    for i in range(n):
        if s[i][i] <= 0:
            continue
        order = ranked(s, i)
        if check_gap and k < len(order):
            assert s[i][order[k - 1]] - s[i][order[k]] > 1e-3, "no near-tie at the cut-off"
        tot = sum(max(s[i][j], 0.0) for j in order[:k])
        for j in order[:k]:
            out[i][j] = max(s[i][j], 0.0) / tot
    return out


FRV = [[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 1.0]]
FRT = [[1.0, -0.5], [0.5, 1.0], [1.0, 0.5], [-1.0, -0.3], [0.0, 0.0]]
FR_K, FR_W = 2, 0.3
FR = [[0.0] * 5 for _ in range(5)]
for feats, w in [(FRV, FR_W), (FRT, 1 - FR_W)]:
    s = cosine_matrix(feats)
    for i in range(5):
        if s[i][i] <= 0:
            continue
        for j in ranked(s, i)[:FR_K]:
            FR[i][j] += w / FR_K
show("FREEDOM_GRAPH", FR)

# ---------------------------------------------------------------- CRANE-A (Fig. 4)
# Fusion::AverageGraphs: S = 1/2 (cos(X^v) + cos(X^t)) of the projected features X^m = X_m P_m +
# p_m, then Eq. (14) (top-k, clamp, row-normalise). The raw features above, d_f = 2, k = 3;
# p_t = 0, so item 4's text row stays zero: S_44 = 1/2 and item 4 is still a candidate.
CA_PV, CA_BV = [[0.6, -0.4], [-0.3, 0.9], [0.5, 0.2]], [0.1, -0.05]
CA_PT, CA_BT = [[0.8, -0.6], [0.3, 0.7]], [0.0, 0.0]
CA_K = 3
ca_cos = [cosine_matrix([[v + b for v, b in zip(r, bias)] for r in mm(f, p)])
          for f, p, bias in [(FRV, CA_PV, CA_BV), (FRT, CA_PT, CA_BT)]]
ca_avg = [[(a + b) / 2 for a, b in zip(ra, rb)] for ra, rb in zip(ca_cos[0], ca_cos[1])]
show("CRANE_A_GRAPH", knn_rows(ca_avg, CA_K, check_gap=True))
# The plausible misreading: the mean of the two modalities' kNN graphs.
ca_knn = [knn_rows(s, CA_K) for s in ca_cos]
show("CRANE_A_GRAPH_IF_AVERAGED_KNN", [[(a + b) / 2 for a, b in zip(ra, rb)] for ra, rb in zip(ca_knn[0], ca_knn[1])])

# ---------------------------------------------------------------- The authors' attention
# torch.nn.MultiheadAttention(d, H) self-attention (`crane-code`, SPEC.md): Q = x W_q + b_q,
# K, V likewise; per head h (columns h d_h .. (h+1) d_h), O_h = softmax(Q_h K_h^T / sqrt(d_h)) V_h
# (row softmax); y = [O_1 ... O_H] W_o + b_o. N = 4, d = 4, H = 2.
AX = [[0.5, -1.0, 0.25, 0.8], [-0.3, 0.6, 1.2, -0.5], [1.0, 0.4, -0.7, 0.2], [0.1, -0.2, 0.3, 1.5]]
AW = {
    "q": [[0.6, -0.3, 0.8, 0.1], [0.2, 0.9, -0.5, 0.4], [-0.7, 0.3, 0.2, 1.0], [0.5, -0.8, 0.6, -0.2]],
    "k": [[0.4, 0.7, -0.2, 0.9], [-0.6, 0.1, 0.8, 0.3], [0.9, -0.4, 0.5, -0.1], [0.2, 0.6, -0.9, 0.7]],
    "v": [[1.0, -0.5, 0.3, 0.2], [0.4, 0.8, -0.6, 0.5], [-0.2, 0.1, 0.9, -0.7], [0.6, 0.3, 0.2, 1.1]],
    "o": [[0.7, 0.2, -0.4, 0.1], [-0.3, 0.9, 0.5, -0.6], [0.8, -0.1, 0.3, 0.4], [0.2, 0.5, -0.8, 0.9]],
}
AB = {"q": [0.1, -0.2, 0.3, 0.05], "k": [-0.15, 0.25, 0.0, 0.2], "v": [0.3, -0.1, 0.2, -0.25], "o": [0.05, 0.1, -0.2, 0.15]}
A_HEADS = 2


def attention(x, scaled=True, head_cols=None):
    """y of the multi-head self-attention; head_cols: the columns of each head (default blocks)."""
    d = len(x[0])
    dh = d // A_HEADS
    q, k, v = ([[a + b for a, b in zip(r, AB[n])] for r in mm(x, AW[n])] for n in "qkv")
    heads = head_cols or [list(range(h * dh, (h + 1) * dh)) for h in range(A_HEADS)]
    o = [[0.0] * d for _ in x]
    for cols in heads:
        for i in range(len(x)):
            sc = [sum(q[i][c] * k[j][c] for c in cols) / (math.sqrt(dh) if scaled else 1.0) for j in range(len(x))]
            z = sum(math.exp(t) for t in sc)
            for c in cols:
                o[i][c] = sum(math.exp(t) / z * v[j][c] for j, t in enumerate(sc))
    return [[a + b for a, b in zip(r, AB["o"])] for r in mm(o, AW["o"])]


show("ATTN_Y", attention(AX))
# Two slips: no 1/sqrt(d_h) scale, and heads taking interleaved columns (0, 2) and (1, 3).
show("ATTN_Y_IF_UNSCALED", attention(AX, scaled=False))
show("ATTN_Y_IF_HEADS_INTERLEAVED", attention(AX, head_cols=[[0, 2], [1, 3]]))
