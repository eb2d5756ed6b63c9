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

/// Runs every op on `dev` and on the host and compares the results.
fn ops_agree<D: Device>(dev: &D) {
    let host = HostDevice;
    let (m, n, k) = (37, 29, 65);
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let (a, b, c0) = (values(m * k, 1), values(k * n, 2), values(m * n, 3));
        let run = |d: &dyn Fn(&[f32], &[f32], &[f32]) -> Vec<f32>| d(&a, &b, &c0);
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
        let (c1, c2) = (1.0 - 0.9f32.powi(step), 1.0 - 0.999f32.powi(step));
        host.adam(&mut hp, &grad, &mut hm, &mut hv2, 1e-3, 0.9, 0.999, 1e-8, c1, c2).unwrap();
        dev.adam(&mut dp, &dev.upload(&grad).unwrap(), &mut dm, &mut dv2, 1e-3, 0.9, 0.999, 1e-8, c1, c2).unwrap();
    }
    close("adam", &dev.download(&dp).unwrap(), &hp);
    let mut z = dev.upload(&v).unwrap();
    dev.fill_zero(&mut z).unwrap();
    assert!(dev.download(&z).unwrap().iter().all(|&x| x == 0.0));
    let empty = dev.zeros::<f32>(0).unwrap();
    assert_eq!(dev.len(&empty), 0);
    assert!(dev.download(&empty).unwrap().is_empty());
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
