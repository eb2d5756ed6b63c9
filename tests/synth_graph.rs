//! `crane synth --features-for DIR --kind graph --graphs G`: generated vectors whose cosine
//! top-k lists reproduce given kNN files, one feature file per modality found, the measured
//! overlap in `features.json`, and the files loadable as the dataset's features.

mod common;
use npyz::WriterBuilder;
use std::path::Path;
use std::process::Command;

fn write_i64(path: &Path, rows: usize, cols: usize, data: &[i64]) {
    let mut buf = Vec::new();
    {
        let mut w = npyz::WriteOptions::<i64>::new()
            .default_dtype()
            .shape(&[rows as u64, cols as u64])
            .writer(&mut buf)
            .begin_nd()
            .unwrap();
        w.extend(data.iter().copied()).unwrap();
        w.finish().unwrap();
    }
    std::fs::write(path, buf).unwrap();
}

#[test]
fn graph_features_reproduce_the_given_knn_lists_and_record_the_overlap() {
    let dir = common::scratch("synth-graph");
    let (data, graphs) = (dir.join("data"), dir.join("graphs"));
    std::fs::create_dir_all(&graphs).unwrap();
    // 24 items in six clusters of four; 8 users, each touching every cluster.
    let mut rows = Vec::new();
    for u in 0..8u64 {
        for c in 0..6u64 {
            rows.push((
                u,
                c * 4 + (u % 4),
                if c == 4 {
                    1
                } else if c == 5 {
                    2
                } else {
                    0
                },
            ));
        }
    }
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("data.inter"), crane::data::inter::format_inter(&rows)).unwrap();
    let k = 4;
    let lists = |shift: usize| -> Vec<i64> {
        // Image: clusters of consecutive ids; text: clusters of ids ≡ mod 6 (another structure).
        (0..24usize)
            .flat_map(|i| {
                let members: Vec<usize> = if shift == 0 {
                    (0..4).map(|m| i / 4 * 4 + m).collect()
                } else {
                    (0..4).map(|m| i % 6 + 6 * m).collect()
                };
                std::iter::once(i).chain(members.into_iter().filter(move |&j| j != i)).map(|j| j as i64)
            })
            .collect()
    };
    write_i64(&graphs.join("image_knn_indices.npy"), 24, k, &lists(0));
    write_i64(&graphs.join("text_knn_indices.npy"), 24, k, &lists(1));
    let out = Command::new(env!("CARGO_BIN_EXE_crane"))
        .args(["synth", "--features-for", "data", "--kind", "graph", "--graphs", "graphs", "--fit-steps", "150"])
        .args(["--out", "data"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let marker: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("features.json")).unwrap()).unwrap();
    assert_eq!(marker["knn_overlap"]["image"], 1.0, "{marker}");
    assert_eq!(marker["knn_overlap"]["text"], 1.0, "{marker}");
    assert!(marker["what"].as_str().unwrap().contains("real item graph, GENERATED feature vectors"));
    let ds = crane::data::load_dataset(&data, &Default::default()).unwrap();
    let [v, t] = &ds.features;
    assert_eq!((v.as_ref().unwrap().cols, t.as_ref().unwrap().cols), (4096, 384));
    assert!(ds.generated_features.is_some(), "the folder is marked as holding generated features");
    // Without --graphs, --kind graph is refused; --graphs with another kind too.
    let refused = Command::new(env!("CARGO_BIN_EXE_crane"))
        .args(["synth", "--features-for", "data", "--kind", "graph", "--out", "x"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--graphs"));
}
