//! `manifest.json`: what a run was made from, so that a reader can trust and repeat it.

use crate::config::TrainConfig;
use crate::data::{DataStats, Dataset, Layout};
use crate::error::Result;
use serde::Serialize;
use std::path::Path;

#[derive(Clone, Debug, Serialize)]
pub struct InputFile {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Manifest {
    pub crane_version: &'static str,
    /// `git describe`-style commit of the build (`-dirty` with uncommitted changes), or
    /// `unknown` when built outside a git checkout.
    pub commit: &'static str,
    /// Seconds since the Unix epoch when the run started.
    pub started_unix: u64,
    pub config: TrainConfig,
    pub seed: u64,
    pub threads: usize,
    pub device: String,
    pub layout: Layout,
    pub data: DataStats,
    /// What `features.json` says when the features were generated (null for real features).
    pub generated_features: Option<String>,
    /// The modalities used (`modalities`: the files in the visual and textual roles) and the
    /// kNN graph folder when one was read.
    pub modalities: String,
    pub inputs: Vec<InputFile>,
    /// The data fingerprint ([`crate::fingerprint`]): `compare` and `grid` keep a finished run
    /// only for the same data.
    pub data_fingerprint: crate::fingerprint::DataFingerprint,
    /// Estimated peak memory (MB) printed before training.
    pub estimated_peak_mb: f64,
}

impl Manifest {
    pub fn new(ds: &Dataset, cfg: &TrainConfig) -> Result<Self> {
        // The digests taken at load: the files are not read twice.
        let inputs = ds
            .fingerprint
            .files
            .iter()
            .map(|f| InputFile {
                path: ds.dir.join(&f.name).display().to_string(),
                bytes: f.bytes,
                sha256: f.sha256.clone(),
            })
            .collect();
        Ok(Self {
            crane_version: env!("CARGO_PKG_VERSION"),
            commit: option_env!("CRANE_GIT_COMMIT").unwrap_or("unknown"),
            started_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            config: cfg.clone(),
            seed: cfg.seed,
            threads: rayon::current_num_threads(),
            device: device(cfg),
            layout: ds.layout,
            data: ds.stats(),
            generated_features: ds.generated_features.clone(),
            modalities: ds.modalities_used(),
            inputs,
            data_fingerprint: ds.fingerprint.clone(),
            estimated_peak_mb: crate::memory::estimate_peak_mb(ds, cfg),
        })
    }
}

/// The engine and the machine it runs on.
pub fn device(cfg: &TrainConfig) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{:?} engine on {cpu} ({} threads; {})", cfg.engine, rayon::current_num_threads(), vector_units())
}

/// The CPU's vector extensions that matter for speed. CPUs that `/proc/cpuinfo` names alike
/// ("AMD EPYC") differ here, and per-epoch times with them: CRANE's Baby epoch took 38 s on a
/// 2-core EPYC with AVX-512 and 66 s on one without (docs/BENCHMARKS.md).
fn vector_units() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        let avx512 = std::arch::is_x86_feature_detected!("avx512f");
        let avx2 = crate::engine::cpu::simd::cpu_has_avx2_fma();
        format!(
            "{}{}; element-wise kernels: {}",
            if avx512 { "AVX-512, " } else { "no AVX-512, " },
            if avx2 { "AVX2+FMA" } else { "no AVX2" },
            match crate::engine::cpu::simd::level() {
                crate::engine::cpu::simd::Level::Avx512 => "AVX-512",
                crate::engine::cpu::simd::Level::Avx2 => "AVX2",
                crate::engine::cpu::simd::Level::Baseline => "baseline SSE2",
            }
        )
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        "non-x86 CPU".to_string()
    }
}

/// Size and sha256 of a file, streamed.
pub fn hash_file(path: &Path) -> Result<InputFile> {
    let (bytes, sha256) = crate::fingerprint::digest_file(path)?;
    Ok(InputFile { path: path.display().to_string(), bytes, sha256 })
}
