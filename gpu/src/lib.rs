//! # crane-gpu
//!
//! The CUDA engine (cudarc, cuBLAS, NVRTC kernels) is not implemented yet: this crate only
//! reserves the workspace slot so the layout is stable. Until it lands, `crane` has no GPU
//! path and nothing here is claimed to run on a GPU.

/// Why no GPU engine is available, as a user-facing message.
pub const STATUS: &str = "the GPU engine is not implemented yet (crate crane-gpu is a placeholder)";

#[cfg(test)]
mod tests {
    #[test]
    fn placeholder_says_it_is_not_implemented() {
        assert!(super::STATUS.contains("not implemented"));
    }
}
