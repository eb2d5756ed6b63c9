//! `crane verify` keeps going: an error or a panic in one case is a FAIL row with its message,
//! the other variants still run, and every row reaches the caller as it is computed (so a run cut
//! short on a lent GPU keeps what it got to).

use crane::engine::{cpu::CpuEngine, Engine, ModelInputs};
use crane::error::CraneError;
use crane::verify::{run, Row};
use crane_reference::config::Fusion;
use crane_reference::{ModelConfig, Params};

fn cpu(i: &ModelInputs, c: &ModelConfig, p: &Params) -> crane::Result<Box<dyn Engine>> {
    Ok(Box::new(CpuEngine::new(i, c, p)?.with_block_bytes(4 * 16 * 40)))
}

#[test]
fn a_panic_or_an_error_in_one_case_is_a_fail_row_and_the_run_goes_on() {
    // Concatenation fusion panics (as a device error would, deep in an op); the LightGCN-like
    // variants (no item graph, no GCN weights) cannot be built at all.
    let make = |i: &ModelInputs, c: &ModelConfig, p: &Params| -> crane::Result<Box<dyn Engine>> {
        if c.fusion == Fusion::Concat {
            panic!("simulated device failure in {:?}", c.fusion);
        }
        if !c.item_graph && !c.gcn_weights {
            return Err(CraneError::Invalid("simulated: variant not implemented".into()));
        }
        cpu(i, c, p)
    };
    let mut streamed: Vec<Row> = Vec::new();
    let rows = run(&make, &[1, 2], &mut |r| streamed.push(r.clone()));
    assert_eq!(streamed.len(), rows.len(), "every row is handed over as it is computed");
    let panics: Vec<&Row> = rows.iter().filter(|r| r.stage.starts_with("panic:")).collect();
    assert_eq!(panics.len(), 2, "one FAIL row per graph of the panicking variant");
    assert!(panics.iter().all(|r| r.case.starts_with("fusion_concat") && !r.pass()));
    assert!(panics[0].stage.contains("simulated device failure"), "{}", panics[0].stage);
    let not_run: Vec<&Row> = rows.iter().filter(|r| r.stage.starts_with("not run:")).collect();
    assert_eq!(not_run.len(), 1, "the unbuildable variant fails once, not once per graph");
    assert!(not_run[0].case == "lightgcn / every graph" && not_run[0].stage.contains("not implemented"));
    // Variants after the failing ones still ran and passed.
    for later in ["crane_code / graph 2", "freedom / graph 1", "wo_dual_fusion / graph 2"] {
        let of_case: Vec<&Row> = rows.iter().filter(|r| r.case == later).collect();
        assert!(of_case.len() > 10 && of_case.iter().all(|r| r.pass()), "{later}: {} rows", of_case.len());
    }
}
