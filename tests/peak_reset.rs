//! `train::reset_peak_memory` alone in its test binary, so that no other test's allocations
//! move the process's peak (VmHWM) while it measures.

/// `reset_peak_memory` starts a new VmHWM, so each run of a multi-run process (`crane
/// compare`) reports its own peak, under the allocator setting the binary uses
/// (`keep_freed_memory`: freed blocks stay resident). 256 blocks of 1 MB touched and freed
/// raise the peak by ~256 MB; after the reset the peak is back near where it was before them.
#[test]
fn reset_peak_memory_forgets_freed_blocks() {
    if std::fs::OpenOptions::new().write(true).open("/proc/self/clear_refs").is_err() {
        eprintln!("SKIPPED: /proc/self/clear_refs is not writable here; the peak cannot be reset");
        return;
    }
    crane::keep_freed_memory();
    assert!(crane::train::reset_peak_memory());
    let before = crane::train::peak_memory_mb();
    let blocks: Vec<Vec<u8>> = (0..256).map(|k| vec![1 + (k % 7) as u8; 1 << 20]).collect();
    // Every page written by `vec!` of a non-zero byte; read back so that nothing is elided.
    let touched: usize = blocks.iter().map(|b| b.iter().step_by(4096).filter(|&&v| v > 0).count()).sum();
    assert_eq!(touched, 256 * 256);
    let with_blocks = crane::train::peak_memory_mb();
    drop(blocks);
    assert!(with_blocks >= before + 200.0, "peak {with_blocks} MB after touching 256 MB (before: {before} MB)");
    assert!(crane::train::reset_peak_memory());
    let after = crane::train::peak_memory_mb();
    eprintln!("before {before} MB, with the blocks {with_blocks} MB, after the reset {after} MB");
    // Without the trim, glibc keeps ~60 of the 256 MB resident here (measured: 66 MB after
    // the reset against 3 MB with it).
    assert!(after < before + 32.0, "peak {after} MB after the reset, {before} MB before the blocks");
}
