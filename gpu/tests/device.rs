//! Every CUDA op against the host implementation on random inputs: the op-level check to run
//! first on a machine with a GPU (it pinpoints the op when `crane verify --gpu` fails).
//! Reported as ignored where no CUDA driver library was found at build time.

use crane_gpu::device::{upload_csr, upload_segments, Device, HostDevice};

/// Deterministic pseudo-random values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let num: f64 = got.iter().zip(want).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>().sqrt();
    let den: f64 = want.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt().max(1e-30);
    assert!(num / den <= 1e-5, "{what}: relative error {:.3e}", num / den);
}

/// A GEMM of three host tables (A, B, C₀) into a new C.
type Gemm3<'a> = &'a dyn Fn(&[f32], &[f32], &[f32]) -> Vec<f32>;

/// Runs every op on `dev` and on the host and compares the results.
fn ops_agree<D: Device>(dev: &D) {
    let host = HostDevice;
    let (m, n, k) = (37, 29, 65);
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let (a, b, c0) = (values(m * k, 1), values(k * n, 2), values(m * n, 3));
        let run = |d: Gemm3| d(&a, &b, &c0);
        let want = run(&|a, b, c| {
            let mut c = c.to_vec();
            host.gemm(&mut c, m, n, k, &a.to_vec(), ta, &b.to_vec(), tb, 0.7, 0.3).unwrap();
            c
        });
        let (da, db) = (dev.upload(&a).unwrap(), dev.upload(&b).unwrap());
        let mut dc = dev.upload(&c0).unwrap();
        dev.gemm(&mut dc, m, n, k, &da, ta, &db, tb, 0.7, 0.3).unwrap();
        close(&format!("gemm ta={ta} tb={tb}"), &dev.download(&dc).unwrap(), &want);
    }
    // CSR [5, 7] x [7, 3].
    let offsets = [0i64, 2, 2, 5, 6, 8];
    let idx = [0u32, 6, 1, 2, 3, 4, 0, 5];
    let vals = values(8, 4);
    let x = values(7 * 3, 5);
    let (hc, dc) = (upload_csr(&host, &offsets, &idx, &vals).unwrap(), upload_csr(dev, &offsets, &idx, &vals).unwrap());
    let mut want = vec![0.0; 15];
    host.spmm(&mut want, &hc, &x, 3).unwrap();
    let mut got = dev.zeros(15).unwrap();
    dev.spmm(&mut got, &dc, &dev.upload(&x).unwrap(), 3).unwrap();
    close("spmm", &dev.download(&got).unwrap(), &want);

    let v = values(1000, 6);
    let dv = dev.upload(&v).unwrap();
    let mut y = dev.zeros(1000).unwrap();
    let mut hy = vec![0.0; 1000];
    dev.leaky_relu(&mut y, &dv, 0.2).unwrap();
    host.leaky_relu(&mut hy, &v, 0.2).unwrap();
    close("leaky_relu", &dev.download(&y).unwrap(), &hy);
    let g = values(1000, 7);
    dev.leaky_relu_backward(&mut y, &dv, &dev.upload(&g).unwrap(), 0.2).unwrap();
    host.leaky_relu_backward(&mut hy, &v, &g, 0.2).unwrap();
    close("leaky_relu_backward", &dev.download(&y).unwrap(), &hy);

    let mut hv = v.clone();
    let mut dvv = dev.upload(&v).unwrap();
    dev.axpy_at(&mut dvv, 100, &dev.upload(&g).unwrap(), 300, 500, -0.5).unwrap();
    host.axpy_at(&mut hv, 100, &g, 300, 500, -0.5).unwrap();
    dev.copy_at(&mut dvv, 0, &dev.upload(&g).unwrap(), 900, 50).unwrap();
    host.copy_at(&mut hv, 0, &g, 900, 50).unwrap();
    dev.scale(&mut dvv, 1.5).unwrap();
    host.scale(&mut hv, 1.5).unwrap();
    close("axpy_at, copy_at, scale", &dev.download(&dvv).unwrap(), &hv);
    assert!(dev.axpy_at(&mut dvv, 990, &dev.upload(&g).unwrap(), 0, 20, 1.0).is_err(), "out of range is an error");

    // Tables [10, 4]; gather, scatter with duplicates, row scale, row norms, bias, BPR, Adam.
    let t = values(40, 8);
    let rows = [3u32, 9, 3, 0, 7, 3];
    let (ht, dt) = (t.clone(), dev.upload(&t).unwrap());
    let mut hg = vec![0.0; 24];
    host.gather_rows(&mut hg, &ht, &rows.to_vec(), 4).unwrap();
    let mut dg = dev.zeros(24).unwrap();
    dev.gather_rows(&mut dg, &dt, &dev.upload(&rows).unwrap(), 4).unwrap();
    close("gather_rows", &dev.download(&dg).unwrap(), &hg);
    let f = values(6, 9);
    host.scale_rows(&mut hg, &f, 4).unwrap();
    dev.scale_rows(&mut dg, &dev.upload(&f).unwrap(), 4).unwrap();
    close("scale_rows", &dev.download(&dg).unwrap(), &hg);
    let mut hd = ht.clone();
    let mut dd = dev.upload(&t).unwrap();
    host.scatter_add_rows(&mut hd, &hg, &upload_segments(&host, &rows).unwrap(), 4).unwrap();
    dev.scatter_add_rows(&mut dd, &dg, &upload_segments(dev, &rows).unwrap(), 4).unwrap();
    close("scatter_add_rows", &dev.download(&dd).unwrap(), &hd);
    let bias = values(4, 10);
    host.add_row_bias(&mut hd, &bias, 4).unwrap();
    dev.add_row_bias(&mut dd, &dev.upload(&bias).unwrap(), 4).unwrap();
    close("add_row_bias", &dev.download(&dd).unwrap(), &hd);
    let mut hn = vec![0.0; 10];
    let mut dn = dev.zeros(10).unwrap();
    host.row_sq_norms(&mut hn, &hd, 4).unwrap();
    dev.row_sq_norms(&mut dn, &dd, 4).unwrap();
    close("row_sq_norms", &dev.download(&dn).unwrap(), &hn);
    let (u, i, j) = (vec![0u32, 1, 2, 2], vec![5u32, 6, 7, 8], vec![9u32, 4, 3, 5]);
    let (mut hl, mut hc2) = (vec![0.0; 4], vec![0.0; 4]);
    host.bpr_terms(&mut hl, &mut hc2, &hd, &hd, &u, &i, &j, 4).unwrap();
    let (mut dl, mut dc2) = (dev.zeros(4).unwrap(), dev.zeros(4).unwrap());
    let up = |x: &Vec<u32>| dev.upload(x).unwrap();
    dev.bpr_terms(&mut dl, &mut dc2, &dd, &dd, &up(&u), &up(&i), &up(&j), 4).unwrap();
    close("bpr_terms loss", &dev.download(&dl).unwrap(), &hl);
    close("bpr_terms coef", &dev.download(&dc2).unwrap(), &hc2);
    let (mut hp, mut hm, mut hv2) = (values(50, 11), vec![0.0; 50], vec![0.0; 50]);
    let grad = values(50, 12);
    let (mut dp, mut dm, mut dv2) = (dev.upload(&hp).unwrap(), dev.zeros(50).unwrap(), dev.zeros(50).unwrap());
    for step in 1..=3 {
        let s = crane_gpu::device::AdamConsts::new(1e-3, step);
        host.adam(&mut hp, &grad, &mut hm, &mut hv2, s).unwrap();
        dev.adam(&mut dp, &dev.upload(&grad).unwrap(), &mut dm, &mut dv2, s).unwrap();
    }
    close("adam", &dev.download(&dp).unwrap(), &hp);
    more_ops_agree(dev);
    let mut z = dev.upload(&v).unwrap();
    dev.fill_zero(&mut z).unwrap();
    assert!(dev.download(&z).unwrap().iter().all(|&x| x == 0.0));
    let empty = dev.zeros::<f32>(0).unwrap();
    assert_eq!(dev.len(&empty), 0);
    assert!(dev.download(&empty).unwrap().is_empty());
}

/// The ops of RCA, InfoNCE, the kNN, evaluation and crane-code's attention.
fn more_ops_agree<D: Device>(dev: &D) {
    let host = HostDevice;
    let up = |x: &[f32]| dev.upload(x).unwrap();
    let down = |x: &D::Buf<f32>| dev.download(x).unwrap();
    let (r, c) = (33, 70);
    let x = values(r * c, 20);
    let (mut hx, mut dx) = (x.clone(), up(&x));
    host.tanh(&mut hx).unwrap();
    dev.tanh(&mut dx).unwrap();
    close("tanh", &down(&dx), &hx);
    let g = values(r * c, 21);
    let (mut hg, mut dg) = (g.clone(), up(&g));
    host.tanh_backward(&mut hg, &hx).unwrap();
    dev.tanh_backward(&mut dg, &dx).unwrap();
    close("tanh_backward", &down(&dg), &hg);
    let (mut hd, mut dd) = (vec![0.0; r], dev.zeros(r).unwrap());
    host.row_dots(&mut hd, &x, &g, c).unwrap();
    dev.row_dots(&mut dd, &up(&x), &up(&g), c).unwrap();
    close("row_dots", &down(&dd), &hd);
    let (mut hs, mut ds) = (values(c, 22), up(&values(c, 22)));
    host.col_sums_add(&mut hs, &x, c).unwrap();
    dev.col_sums_add(&mut ds, &up(&x), c).unwrap();
    close("col_sums_add", &down(&ds), &hs);

    // InfoNCE rows on an [n, n] similarity with a boosted diagonal.
    let n = 45;
    let sq: Vec<f32> = values(n * n, 23).iter().map(|v| v * 8.0).collect();
    let (mut hq, mut dq) = (sq.clone(), up(&sq));
    host.add_diag(&mut hq, n, 2.0).unwrap();
    dev.add_diag(&mut dq, n, 2.0).unwrap();
    let (mut hl, mut dl) = (vec![0.0; n], dev.zeros(n).unwrap());
    host.softmax_rows_loss(&mut hq, n, &mut hl).unwrap();
    dev.softmax_rows_loss(&mut dq, n, &mut dl).unwrap();
    close("add_diag + softmax_rows_loss (softmax)", &down(&dq), &hq);
    close("softmax_rows_loss (row loss)", &down(&dl), &hl);

    // Blocked softmax with log-sum-exp and its backward, [b, n].
    let b = 7;
    let sc: Vec<f32> = values(b * n, 24).iter().map(|v| v * 30.0).collect();
    let (mut hsc, mut dsc) = (sc.clone(), up(&sc));
    let (mut hlse, mut dlse) = (vec![0.0; b], dev.zeros(b).unwrap());
    host.softmax_rows_lse(&mut hsc, b, n, &mut hlse).unwrap();
    dev.softmax_rows_lse(&mut dsc, b, n, &mut dlse).unwrap();
    close("softmax_rows_lse (P)", &down(&dsc), &hsc);
    close("softmax_rows_lse (lse)", &down(&dlse), &hlse);
    let dp = values(b * n, 25);
    let (mut hsc, mut dsc) = (sc.clone(), up(&sc));
    let (mut hdp, mut ddp) = (dp.clone(), up(&dp));
    host.softmax_rows_backward(&mut hsc, &mut hdp, &hlse, b, n).unwrap();
    dev.softmax_rows_backward(&mut dsc, &mut ddp, &dlse, b, n).unwrap();
    close("softmax_rows_backward (P)", &down(&dsc), &hsc);
    close("softmax_rows_backward (dS)", &down(&ddp), &hdp);

    // Sampled dot products on a CSR pattern [5, 7], rows of width 3.
    let offsets = [0i64, 2, 2, 5, 6, 8];
    let idx = [0u32, 6, 1, 2, 3, 4, 0, 5];
    let (a, bb) = (values(5 * 3, 26), values(7 * 3, 27));
    let (hc, dc) =
        (upload_csr(&host, &offsets, &idx, &[0.0; 8]).unwrap(), upload_csr(dev, &offsets, &idx, &[0.0; 8]).unwrap());
    let (mut ho, mut dout) = (vec![0.0; 8], dev.zeros(8).unwrap());
    host.csr_sddmm(&mut ho, &hc, &a, &bb, 3).unwrap();
    dev.csr_sddmm(&mut dout, &dc, &up(&a), &up(&bb), 3).unwrap();
    close("csr_sddmm", &down(&dout), &ho);

    // One head's columns: [r, 12] from columns 4..9 of [r, 10] into columns 6..11.
    let src = values(r * 10, 28);
    let (mut hcc, mut dcc) = (vec![0.0; r * 12], dev.zeros(r * 12).unwrap());
    host.copy_cols(&mut hcc, 12, 6, &src, 10, 4, 5, r).unwrap();
    dev.copy_cols(&mut dcc, 12, 6, &up(&src), 10, 4, 5, r).unwrap();
    close("copy_cols", &down(&dcc), &hcc);

    // Top-k with ties, −0 = +0, NaN, a mask, and a row with fewer candidates than k. Long rows
    // (n > 32 · k) so that every lane of a warp keeps a full list.
    let (rows, n, k) = (6, 2500, 40);
    let mut t: Vec<f32> = values(rows * n, 29).iter().map(|v| (v * 50.0).round()).collect();
    t[7] = f32::NAN;
    t[9] = -0.0;
    t[10] = 0.0;
    let mut offsets = vec![0i64];
    let mut midx = Vec::new();
    for row in 0..rows {
        let m: Vec<u32> = if row == 5 {
            (0..n as u32).filter(|j| j % 500 != 0).collect()
        } else {
            (0..n as u32).filter(|j| (j * 7 + row as u32) % 11 == 0).collect()
        };
        midx.extend(m);
        offsets.push(midx.len() as i64);
    }
    for masked in [false, true] {
        let (hm, dm) =
            (upload_csr(&host, &offsets, &midx, &[]).unwrap(), upload_csr(dev, &offsets, &midx, &[]).unwrap());
        let (mut hi, mut hv) = (vec![0u32; rows * k], vec![0.0; rows * k]);
        let (mut di, mut dv) = (dev.zeros::<u32>(rows * k).unwrap(), dev.zeros(rows * k).unwrap());
        host.row_topk(&mut hi, &mut hv, &t, rows, n, k, masked.then_some(&hm)).unwrap();
        dev.row_topk(&mut di, &mut dv, &up(&t), rows, n, k, masked.then_some(&dm)).unwrap();
        assert_eq!(dev.download(&di).unwrap(), hi, "row_topk indices (mask: {masked})");
        assert_eq!(down(&dv), hv, "row_topk values (mask: {masked})");
        if masked {
            let mut kept = hi[5 * k..5 * k + 5].to_vec();
            kept.sort_unstable();
            assert_eq!(kept, [0, 500, 1000, 1500, 2000], "row 5 keeps its 5 unmasked items");
            assert!(hi[5 * k + 5..6 * k].iter().all(|&i| i == u32::MAX), "then padding");
        }
    }
}

/// The host top-k's order on a hand-made row: largest first, ties and ±0 to the smaller index,
/// NaN as −∞, masked columns skipped, padding after the candidates.
#[test]
fn host_topk_follows_the_evaluator_order() {
    let host = HostDevice;
    let row = vec![1.0, f32::NAN, 3.0, -0.0, 3.0, 0.0, f32::NEG_INFINITY, 2.0];
    let (mut i, mut v) = (vec![0u32; 8], vec![0.0f32; 8]);
    host.row_topk(&mut i, &mut v, &row, 1, 8, 8, None).unwrap();
    assert_eq!(i, vec![2, 4, 7, 0, 3, 5, 1, 6]);
    let m = upload_csr(&host, &[0, 3], &[2, 5, 7], &[]).unwrap();
    host.row_topk(&mut i, &mut v, &row, 1, 8, 8, Some(&m)).unwrap();
    assert_eq!(i, vec![4, 0, 3, 1, 6, u32::MAX, u32::MAX, u32::MAX]);
    assert_eq!(v[5], f32::NEG_INFINITY);
}

#[test]
#[cfg_attr(not(cuda_driver_present), ignore = "no CUDA driver (libcuda.so) found at build time: needs a GPU")]
fn cuda_ops_match_the_host_ops() {
    let dev = crane_gpu::cuda::CudaDevice::new().unwrap_or_else(|e| panic!("{e}"));
    ops_agree(&dev);
}

/// The comparison itself runs here too (host against host), so a broken test body shows up
/// on machines without a GPU rather than first on a device.
#[test]
fn the_op_comparison_runs_on_the_host() {
    ops_agree(&HostDevice);
}
