//! Datasets in the MMRec layout: `<dir>/<name>.inter`, `image_feat.npy`, `text_feat.npy`.
//!
//! Decisions (see also README "Data"):
//! - Items keep their file ids: `n_items = max item id + 1` over the whole file (MMRec), because
//!   feature rows are positional (row i is item i). Items seen only in validation or test are
//!   candidates; items that never occur are candidates too, as in MMRec.
//! - Users are re-indexed densely in order of their original id, after the optional
//!   minimum-interaction filter; `user_ids` maps back.
//! - Duplicate (user, item) rows: a warning, the first row is kept.
//! - Users absent from the training split are dropped from validation and test.

pub mod feature_check;
pub mod graph_features;
pub mod inter;
pub mod knn_files;
pub mod lattice;
pub mod npy;
pub mod split;
pub mod synth;

use crate::error::{CraneError, Result};
use npy::FeatureMatrix;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The two modality roles, in the order the model indexes them, with the default file of each.
pub const MODALITIES: [(&str, &str); 2] = [("visual", "image_feat.npy"), ("textual", "text_feat.npy")];

/// The modality names a dataset folder may hold, each as `<name>_feat.npy` (any width).
pub const MODALITY_NAMES: [&str; 3] = ["image", "text", "audio"];

/// The default `modalities` config value: the files playing the visual and textual roles.
pub const DEFAULT_MODALITIES: [&str; 2] = ["image", "text"];

/// The feature file of a modality name: `<name>_feat.npy`.
pub fn feature_file(name: &str) -> String {
    format!("{name}_feat.npy")
}

/// `[visual, textual]` modality names from the `modalities` config value, refused (naming the
/// field) unless it is two different names of [`MODALITY_NAMES`].
pub fn parse_modalities(names: &[String]) -> Result<[String; 2]> {
    let bad = |why: String| CraneError::config("modalities", why);
    if names.len() != 2 {
        return Err(bad(format!("expected two names (visual role, textual role), got {names:?}")));
    }
    for n in names {
        if !MODALITY_NAMES.contains(&n.as_str()) {
            return Err(bad(format!(
                "unknown modality `{n}` (file {}); expected one of {}",
                feature_file(n),
                MODALITY_NAMES.join(", ")
            )));
        }
    }
    if names[0] == names[1] {
        return Err(bad(format!("names `{}` twice; the two roles need two files", names[0])));
    }
    Ok([names[0].clone(), names[1].clone()])
}

/// Options of [`load_dataset`].
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Drop users with fewer interactions than this (the paper's preprocessing uses 4).
    pub min_user_interactions: usize,
    /// Seed of the per-user split when the file has no `x_label`.
    pub split_seed: u64,
    /// Load the feature files (off for models that use none).
    pub load_features: bool,
    /// The `modalities` config value: the names whose `<name>_feat.npy` play the visual and
    /// textual roles; each named file must exist. `None`: the default `image`, `text`, each
    /// read when present (a folder without features loads for BPR and LightGCN).
    pub modalities: Option<[String; 2]>,
    /// The folder of per-modality kNN files (`model.item_graph_source = { files = .. }`),
    /// relative to the dataset folder unless absolute: read, validated and fingerprinted.
    pub item_graph_dir: Option<PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            min_user_interactions: 0,
            split_seed: split::PAPER_SEEDS[0],
            load_features: true,
            modalities: None,
            item_graph_dir: None,
        }
    }
}

/// The folder layout a dataset was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// `<name>.inter` (+ features): MMRec.
    Mmrec,
    /// `train.json`, `val.json`, `test.json` (+ `item2id.json`, `user2id.json`): LATTICE.
    LatticeJson,
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Layout::Mmrec => "MMRec layout (.inter)",
            Layout::LatticeJson => "LATTICE JSON layout (train/val/test.json)",
        })
    }
}

/// Which layout `dir` holds: the MMRec `.inter` when there is one, else the JSON layout.
pub fn detect_layout(dir: &Path) -> Result<Layout> {
    if !dir.is_dir() {
        return Err(CraneError::file(dir, "not a folder (expected a dataset folder)"));
    }
    match find_inter(dir) {
        Ok(_) => Ok(Layout::Mmrec),
        Err(_) if lattice::is_lattice_dir(dir) => Ok(Layout::LatticeJson),
        Err(e) => Err(CraneError::file(
            dir,
            format!("no dataset found: neither the MMRec layout nor train.json/val.json/test.json ({e})"),
        )),
    }
}

/// Where the split came from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitSource {
    /// The file's `x_label` column, or the JSON layout's three files.
    XLabel,
    /// A per-user split drawn with this seed (`--split-seed`).
    Seeded(u64),
}

impl std::fmt::Display for SplitSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SplitSource::XLabel => f.write_str("from the files (x_label)"),
            SplitSource::Seeded(s) => write!(f, "seeded {s} (--split-seed)"),
        }
    }
}

/// A loaded dataset: dense ids, three splits, optional features.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub name: String,
    pub dir: PathBuf,
    pub n_users: usize,
    pub n_items: usize,
    /// (user, item) pairs with dense ids, per split, in file order.
    pub train: Vec<(u32, u32)>,
    pub valid: Vec<(u32, u32)>,
    pub test: Vec<(u32, u32)>,
    /// Original id of each dense user.
    pub user_ids: Vec<u64>,
    /// `[visual, textual]` features `[n_items, d]`, when present.
    pub features: [Option<FeatureMatrix>; 2],
    /// The modality names playing the visual and textual roles (`modalities`): `features[m]`
    /// is `<name>_feat.npy`.
    pub modalities: [String; 2],
    /// Which of [`MODALITY_NAMES`]' feature files the folder holds (read or not).
    pub feature_files_found: Vec<String>,
    /// The kNN files of `item_graph_source = { files = .. }`, when asked for.
    pub knn_files: Option<knn_files::KnnFiles>,
    pub split: SplitSource,
    /// Things the user should know (duplicates dropped, users filtered, ...).
    pub warnings: Vec<String>,
    pub layout: Layout,
    /// Original names of the dense users (reviewer ids), from `user2id.json`, when present.
    pub user_names: Option<Vec<String>>,
    /// Original names of the items (ASINs), from `item2id.json`, when present.
    pub item_names: Option<Vec<String>>,
    /// Every file read, for manifests (sha256) and reports.
    pub files: Vec<PathBuf>,
    /// How the feature files were generated, when `features.json` (written by `crane synth`)
    /// says they were: every report made with them must say so.
    pub generated_features: Option<String>,
    /// Ids in `0..n_items` that occur in no split (gaps in the file's ids, or items named only
    /// by `item2id.json`), sorted. They keep their rows (features are positional) but are no
    /// items: never ranked, recommended or exported.
    pub absent_items: Vec<u32>,
    /// Users with validation or test interactions but none in training: they keep a dense id
    /// (their embedding is never trained) and are not evaluated.
    pub users_without_training: Vec<u32>,
    /// Zero and exactly duplicated rows of each feature file (`[visual, textual]`), counted at
    /// load (`data::feature_check`).
    pub feature_defects: [Option<feature_check::FeatureDefectCounts>; 2],
    /// What this data is (files' sha256, layout, split, filter, counts): written into every
    /// artefact made from it and checked by every consumer of one.
    pub fingerprint: crate::fingerprint::DataFingerprint,
}

/// The marker `crane synth` writes beside generated feature files.
pub const GENERATED_MARKER: &str = "features.json";

/// Finds `<dir>/<name>.inter`, or the only `.inter` file in `dir`.
pub fn find_inter(dir: &Path) -> Result<PathBuf> {
    let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let named = dir.join(format!("{name}.inter"));
    if named.is_file() {
        return Ok(named);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| CraneError::io(dir, "read directory", e))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "inter"))
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.pop().unwrap()),
        0 => Err(CraneError::file(
            dir,
            format!("missing file: no `{name}.inter` (or any .inter file) in the dataset folder"),
        )),
        _ => Err(CraneError::file(dir, format!("several .inter files and none named `{name}.inter`: {found:?}"))),
    }
}

/// Loads a dataset folder in either layout (see [`detect_layout`]).
pub fn load_dataset(dir: &Path, opts: &LoadOptions) -> Result<Dataset> {
    let layout = detect_layout(dir)?;
    let (parsed, inter_path, name) = match layout {
        Layout::Mmrec => {
            let inter_path = find_inter(dir)?;
            let text = std::fs::read_to_string(&inter_path).map_err(|e| CraneError::io(&inter_path, "read", e))?;
            let parsed = inter::parse_inter(&text, &inter_path)?;
            let name = inter_path.file_stem().unwrap().to_string_lossy().to_string();
            (parsed, inter_path, name)
        }
        Layout::LatticeJson => {
            let rows = lattice::read_splits(dir)?;
            let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "dataset".into());
            (inter::InterFile { rows, has_labels: true }, dir.join("train.json"), name)
        }
    };
    let mut warnings = Vec::new();
    if parsed.rows.is_empty() {
        return Err(CraneError::file(&inter_path, "no interactions after the header"));
    }
    let user_map = lattice::read_mapping(&dir.join("user2id.json"))?;
    let item_map = lattice::read_mapping(&dir.join("item2id.json"))?;
    for (map, file, what) in [(&user_map, "user2id.json", "user"), (&item_map, "item2id.json", "item")] {
        if let Some(names) = map {
            let id_of = |r: &inter::InterRow| if what == "user" { r.user } else { r.item };
            if let Some(r) = parsed.rows.iter().find(|r| names.get(id_of(r) as usize).is_none_or(|n| n.is_none())) {
                return Err(CraneError::file(
                    &dir.join(file),
                    format!(
                        "disagrees with the splits: {what} id {} ({}, line {}) is not a value of {file}",
                        id_of(r),
                        split_source_name(layout, &inter_path, r.label),
                        r.line
                    ),
                ));
            }
        }
    }

    // Duplicates: keep the first row.
    let mut seen: HashMap<(u64, u64), usize> = HashMap::with_capacity(parsed.rows.len());
    let mut rows = Vec::with_capacity(parsed.rows.len());
    let mut dups = 0usize;
    let mut first_dup = None;
    for r in &parsed.rows {
        if let Some(&line) = seen.get(&(r.user, r.item)) {
            dups += 1;
            first_dup.get_or_insert((r.line, line, r.user, r.item));
        } else {
            seen.insert((r.user, r.item), r.line);
            rows.push(*r);
        }
    }
    if let Some((line, orig, u, i)) = first_dup {
        warnings.push(format!(
            "{}: {dups} duplicate interaction(s) dropped, keeping the first (e.g. line {line} repeats user {u}, item {i} of line {orig})",
            inter_path.display()
        ));
    }
    let mut n_items = rows.iter().map(|r| r.item).max().unwrap() as usize + 1;
    if let Some(names) = &item_map {
        // Items named in the mapping but in no split are candidates too (MMRec's rule for ids
        // below the maximum), and feature rows follow the mapping.
        if names.len() > n_items {
            warnings.push(format!(
                "item2id.json names {} item(s) with ids beyond every split's; they are ranked as candidates",
                names.len() - n_items
            ));
            n_items = names.len();
        }
    }
    check_id_space(n_items, &rows, layout, &inter_path)?;

    // Optional filter of light users.
    let mut per_user: BTreeMap<u64, usize> = BTreeMap::new();
    for r in &rows {
        *per_user.entry(r.user).or_default() += 1;
    }
    if opts.min_user_interactions > 1 {
        let before = per_user.len();
        per_user.retain(|_, c| *c >= opts.min_user_interactions);
        if per_user.len() < before {
            warnings.push(format!(
                "{} user(s) with fewer than {} interactions removed",
                before - per_user.len(),
                opts.min_user_interactions
            ));
        }
        rows.retain(|r| per_user.contains_key(&r.user));
    }
    let user_ids: Vec<u64> = per_user.keys().copied().collect();
    let dense: HashMap<u64, u32> = user_ids.iter().enumerate().map(|(k, &u)| (u, k as u32)).collect();

    // Split.
    let (labels, split_src) = if parsed.has_labels {
        (rows.iter().map(|r| r.label.unwrap()).collect::<Vec<u8>>(), SplitSource::XLabel)
    } else {
        let mut by_user: HashMap<u64, Vec<usize>> = HashMap::new();
        for (k, r) in rows.iter().enumerate() {
            by_user.entry(r.user).or_default().push(k);
        }
        let mut labels = vec![0u8; rows.len()];
        for (u, idx) in &by_user {
            for (k, l) in idx.iter().zip(split::split_user(idx.len(), opts.split_seed, *u)) {
                labels[*k] = l;
            }
        }
        (labels, SplitSource::Seeded(opts.split_seed))
    };
    let (mut train, mut valid, mut test) = (Vec::new(), Vec::new(), Vec::new());
    for (r, l) in rows.iter().zip(&labels) {
        let pair = (dense[&r.user], r.item as u32);
        match l {
            0 => train.push(pair),
            1 => valid.push(pair),
            _ => test.push(pair),
        }
    }
    let n_users = user_ids.len();
    let mut in_train = vec![false; n_users];
    for &(u, _) in &train {
        in_train[u as usize] = true;
    }
    let users_without_training: Vec<u32> = (0..n_users as u32).filter(|&u| !in_train[u as usize]).collect();
    if let Some(&u) = users_without_training.first() {
        warnings.push(format!(
            "{} user(s) have no training interaction (e.g. user {}): not evaluated; `crane recommend` gives them \
             the popularity ranking",
            users_without_training.len(),
            user_ids[u as usize]
        ));
    }
    let (v0, t0) = (valid.len(), test.len());
    valid.retain(|&(u, _)| in_train[u as usize]);
    test.retain(|&(u, _)| in_train[u as usize]);
    if valid.len() + test.len() < v0 + t0 {
        warnings.push(format!(
            "{} validation and {} test interaction(s) of users absent from training dropped",
            v0 - valid.len(),
            t0 - test.len()
        ));
    }
    for (split, set) in [("training", &train), ("validation", &valid), ("test", &test)] {
        if set.is_empty() {
            return Err(CraneError::file(&inter_path, format!("empty split: no {split} interactions")));
        }
    }
    let mut in_train_items = vec![false; n_items];
    for &(_, i) in &train {
        in_train_items[i as usize] = true;
    }
    let outside: std::collections::BTreeSet<u32> =
        valid.iter().chain(&test).map(|p| p.1).filter(|&i| !in_train_items[i as usize]).collect();
    if !outside.is_empty() {
        warnings.push(format!(
            "{} item(s) occur only in validation or test (e.g. item {}): ranked as candidates; their ID \
             embeddings get no BPR gradient",
            outside.len(),
            outside.iter().next().unwrap()
        ));
    }
    let mut occurs = vec![false; n_items];
    for &(_, i) in train.iter().chain(&valid).chain(&test) {
        occurs[i as usize] = true;
    }
    let absent_items: Vec<u32> = (0..n_items as u32).filter(|&i| !occurs[i as usize]).collect();
    if let Some(&i) = absent_items.first() {
        warnings.push(format!(
            "{} of the {n_items} item ids (0..max id) occur in no split (e.g. id {i}: a gap in the ids, an id named \
             only by item2id.json, or an item whose only interactions were dropped with their user): they are no \
             items and are never ranked, recommended or exported",
            absent_items.len()
        ));
    }
    let name_of = |map: &Option<Vec<Option<String>>>, id: u64| {
        map.as_ref().and_then(|m| m.get(id as usize).cloned().flatten()).unwrap_or_else(|| id.to_string())
    };
    let user_names = user_map.as_ref().map(|_| user_ids.iter().map(|&u| name_of(&user_map, u)).collect());
    let item_names = item_map.as_ref().map(|_| (0..n_items as u64).map(|i| name_of(&item_map, i)).collect());

    let mut files = match layout {
        Layout::Mmrec => vec![inter_path.clone()],
        Layout::LatticeJson => lattice::SPLIT_FILES.iter().map(|f| dir.join(f)).collect(),
    };
    files.extend(["user2id.json", "item2id.json"].iter().map(|f| dir.join(f)).filter(|p| p.is_file()));
    let marker = dir.join(GENERATED_MARKER);
    let generated_features = if marker.is_file() {
        files.push(marker.clone());
        let text = std::fs::read_to_string(&marker).map_err(|e| CraneError::io(&marker, "read", e))?;
        Some(text.trim().to_string())
    } else {
        None
    };
    let mut features = [None, None];
    let mut feature_defects = [None, None];
    let strict = opts.modalities.is_some();
    let modalities = opts.modalities.clone().unwrap_or(DEFAULT_MODALITIES.map(String::from));
    let feature_files_found: Vec<String> =
        MODALITY_NAMES.iter().map(|n| feature_file(n)).filter(|f| dir.join(f).is_file()).collect();
    for (m, name) in modalities.iter().enumerate() {
        let file = feature_file(name);
        if dir.join(&file).is_file() {
            continue;
        }
        if strict && opts.load_features {
            return Err(CraneError::file(
                &dir.join(&file),
                format!(
                    "missing: `modalities` names `{name}` for the {} role; this folder holds {}",
                    MODALITIES[m].0,
                    if feature_files_found.is_empty() {
                        "no feature file".to_string()
                    } else {
                        feature_files_found.join(", ")
                    }
                ),
            ));
        }
        if let Some(other) = feature_files_found.iter().find(|f| !modalities.iter().any(|n| feature_file(n) == **f)) {
            warnings.push(format!(
                "{file} is absent but {other} is present: set `modalities` (e.g. modalities = [\"image\", \"{}\"]) to \
                 use it",
                other.trim_end_matches("_feat.npy")
            ));
        }
    }
    if opts.load_features {
        for (m, name) in modalities.iter().enumerate() {
            let file = &feature_file(name);
            let path = dir.join(file);
            if path.exists() {
                let f = npy::read_features(&path)?;
                if f.rows != n_items {
                    return Err(CraneError::file(
                        &path,
                        format!(
                            "has {} rows, expected one per item: {n_items} (max itemID + 1 in {})",
                            f.rows,
                            inter_path.display()
                        ),
                    ));
                }
                // Zero rows and exact duplicates load fine but shape every item graph: say so.
                let defects = feature_check::find_defects(&f);
                warnings.extend(defects.warnings(file));
                feature_defects[m] = Some(defects.counts());
                features[m] = Some(f);
                files.push(path);
            }
        }
    }
    let knn_files = match &opts.item_graph_dir {
        None => None,
        Some(d) => {
            let d = if d.is_absolute() { d.clone() } else { dir.join(d) };
            let k = knn_files::KnnFiles::read(&d, &modalities, n_items, "model.item_graph_source.files.dir")?;
            files.extend(k.files.iter().cloned());
            Some(k)
        }
    };
    let fingerprint = crate::fingerprint::DataFingerprint {
        modalities: modalities.clone(),
        item_graph_dir: opts.item_graph_dir.as_ref().map(|d| d.display().to_string()),
        dataset: name.clone(),
        layout,
        files: crate::fingerprint::digest_files(dir, &files)?,
        split: split_src.clone(),
        min_user_interactions: opts.min_user_interactions,
        n_users,
        n_items,
    };
    Ok(Dataset {
        name,
        dir: dir.to_path_buf(),
        n_users,
        n_items,
        train,
        valid,
        test,
        user_ids,
        features,
        modalities,
        feature_files_found,
        knn_files,
        split: split_src,
        warnings,
        layout,
        user_names,
        item_names,
        files,
        generated_features,
        absent_items,
        users_without_training,
        feature_defects,
        fingerprint,
    })
}

/// Bytes per item id of the smallest model (an f32 `[N, 64]` embedding with its gradient and
/// Adam's two moments, and the two f64 copies of the parameters): what one id costs however few
/// items exist.
const BYTES_PER_ID: f64 = 64.0 * (4.0 * 4.0 + 2.0 * 8.0);

/// Refuses, before anything of size `n_items` is allocated, an id space that the smallest model
/// could not fit in the machine's available memory, naming the largest id and where it is (one
/// mistyped id makes `n_items = max id + 1` huge, since ids are row indices).
fn check_id_space(n_items: usize, rows: &[inter::InterRow], layout: Layout, inter_path: &Path) -> Result<()> {
    let need_mb = n_items as f64 * BYTES_PER_ID / 1048576.0;
    let Some(avail_mb) = crate::memory::available_mb() else { return Ok(()) };
    if need_mb <= avail_mb {
        return Ok(());
    }
    let distinct = rows.iter().map(|r| r.item).collect::<std::collections::HashSet<_>>().len();
    let top = rows.iter().max_by_key(|r| r.item).expect("rows are not empty");
    let msg = format!(
        "itemID {} makes {n_items} item ids (ids are row indices: max id + 1) for {distinct} distinct items; \
             even the smallest model needs {:.1} GB for them, over the {:.1} GB of memory available. Is the id \
             mistyped? Otherwise re-index the items densely (keeping the feature rows in step).",
        top.item,
        need_mb / 1024.0,
        avail_mb / 1024.0
    );
    Err(match layout {
        Layout::Mmrec => CraneError::line(inter_path, top.line, msg),
        Layout::LatticeJson => {
            let file = inter_path.with_file_name(lattice::SPLIT_FILES[top.label.unwrap_or(0) as usize]);
            CraneError::file(&file, format!("user `{}`: {msg}", top.user))
        }
    })
}

fn split_source_name(layout: Layout, inter_path: &Path, label: Option<u8>) -> String {
    match layout {
        Layout::Mmrec => inter_path.display().to_string(),
        Layout::LatticeJson => lattice::SPLIT_FILES[label.unwrap_or(0) as usize].to_string(),
    }
}

/// The columns of the paper's Table 2, plus per-split counts and feature shapes.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DataStats {
    pub name: String,
    pub users: usize,
    pub items: usize,
    pub interactions: usize,
    pub sparsity: f64,
    pub mean_interactions_per_user: f64,
    pub train: usize,
    pub valid: usize,
    pub test: usize,
    /// Users without a training interaction (counted in `users`, never evaluated).
    pub users_without_training: usize,
    /// Ids in `0..items` that occur in no split (counted in `items`: the model's id space; never
    /// ranked). Sparsity is over the other ids.
    pub absent_item_ids: usize,
    /// `[rows, cols]` of the visual and textual features, when present.
    pub visual: Option<[usize; 2]>,
    pub textual: Option<[usize; 2]>,
    /// All-zero and exactly duplicated rows of the visual and textual features, when present
    /// (`data::feature_check`).
    pub visual_defects: Option<feature_check::FeatureDefectCounts>,
    pub textual_defects: Option<feature_check::FeatureDefectCounts>,
    /// The modality names playing the visual and textual roles (`modalities`).
    pub modalities: [String; 2],
    /// Which of `image_feat.npy`, `text_feat.npy`, `audio_feat.npy` the folder holds.
    pub feature_files_found: Vec<String>,
}

impl Dataset {
    pub fn stats(&self) -> DataStats {
        let inter = self.train.len() + self.valid.len() + self.test.len();
        let shape = |m: usize| self.features[m].as_ref().map(|f| [f.rows, f.cols]);
        DataStats {
            name: self.name.clone(),
            users: self.n_users,
            items: self.n_items,
            interactions: inter,
            sparsity: 1.0 - inter as f64 / (self.n_users as f64 * (self.n_items - self.absent_items.len()) as f64),
            mean_interactions_per_user: inter as f64 / self.n_users as f64,
            train: self.train.len(),
            valid: self.valid.len(),
            test: self.test.len(),
            users_without_training: self.users_without_training.len(),
            absent_item_ids: self.absent_items.len(),
            visual: shape(0),
            textual: shape(1),
            visual_defects: self.feature_defects[0],
            textual_defects: self.feature_defects[1],
            modalities: self.modalities.clone(),
            feature_files_found: self.feature_files_found.clone(),
        }
    }

    /// Sorted training items of each user `[M][..]`.
    pub fn train_by_user(&self) -> Vec<Vec<u32>> {
        group(self.n_users, &self.train)
    }

    /// The original name of a dense user: its reviewer id when a mapping is known, else its id.
    pub fn user_label(&self, u: u32) -> String {
        match &self.user_names {
            Some(n) => n[u as usize].clone(),
            None => self.user_ids[u as usize].to_string(),
        }
    }

    /// The original name of an item: its ASIN when a mapping is known, else its id.
    pub fn item_label(&self, i: u32) -> String {
        match &self.item_names {
            Some(n) => n[i as usize].clone(),
            None => i.to_string(),
        }
    }

    /// The dense user with this original id or name.
    pub fn find_user(&self, key: &str) -> Option<u32> {
        if let Some(names) = &self.user_names {
            if let Some(u) = names.iter().position(|n| n == key) {
                return Some(u as u32);
            }
        }
        let id: u64 = key.trim().parse().ok()?;
        self.user_ids.binary_search(&id).ok().map(|u| u as u32)
    }

    /// The modalities used, for report headers: `image_feat.npy (visual), audio_feat.npy
    /// (textual)`, absent files said so, plus the kNN graph folder when one was read.
    pub fn modalities_used(&self) -> String {
        let mut parts: Vec<String> = self
            .modalities
            .iter()
            .zip(MODALITIES)
            .zip(&self.features)
            .map(|((n, (role, _)), f)| {
                format!("{} ({role}{})", feature_file(n), if f.is_some() { "" } else { ", absent" })
            })
            .collect();
        if let Some(k) = &self.knn_files {
            parts.push(format!("item graph from kNN files in {} (k ≤ {})", k.dir.display(), k.width));
        }
        parts.join(", ")
    }

    /// Names of the modalities whose feature file is present.
    pub fn present_modalities(&self) -> Vec<&'static str> {
        MODALITIES.iter().zip(&self.features).filter(|(_, f)| f.is_some()).map(|((n, _), _)| *n).collect()
    }
}

/// Sorted items per user from pairs.
pub fn group(n_users: usize, pairs: &[(u32, u32)]) -> Vec<Vec<u32>> {
    let mut out = vec![Vec::new(); n_users];
    for &(u, i) in pairs {
        out[u as usize].push(i);
    }
    for v in &mut out {
        v.sort_unstable();
    }
    out
}

impl std::fmt::Display for DataStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shape = |s: &Option<[usize; 2]>| s.map_or("absent".to_string(), |[r, c]| format!("{r} x {c}"));
        writeln!(f, "dataset        {}", self.name)?;
        match self.users_without_training {
            0 => writeln!(f, "users          {}", self.users)?,
            n => writeln!(f, "users          {} ({n} without training interactions: not evaluated)", self.users)?,
        }
        match self.absent_item_ids {
            0 => writeln!(f, "items          {}", self.items)?,
            n => writeln!(
                f,
                "items          {} ids, {} items ({n} ids occur in no split: never ranked)",
                self.items,
                self.items - n
            )?,
        }
        writeln!(f, "interactions   {}", self.interactions)?;
        writeln!(f, "sparsity       {:.2}%", 100.0 * self.sparsity)?;
        writeln!(f, "mean per user  {:.2}", self.mean_interactions_per_user)?;
        writeln!(f, "train / valid / test   {} / {} / {}", self.train, self.valid, self.test)?;
        let defects = |d: &Option<feature_check::FeatureDefectCounts>| {
            d.map_or(String::new(), |d| {
                let plural = |n: usize| if n == 1 { "" } else { "s" };
                format!(
                    " ({} zero row{}, {} duplicate row{})",
                    d.zero_rows,
                    plural(d.zero_rows),
                    d.duplicate_rows,
                    plural(d.duplicate_rows)
                )
            })
        };
        let found =
            |n: &str| if self.feature_files_found.iter().any(|f| *f == feature_file(n)) { "found" } else { "absent" };
        let files: Vec<String> = MODALITY_NAMES.iter().map(|n| format!("{} {}", feature_file(n), found(n))).collect();
        writeln!(f, "feature files  {}", files.join(", "))?;
        let [v, t] = &self.modalities;
        writeln!(f, "visual role    {v} features {}{}", shape(&self.visual), defects(&self.visual_defects))?;
        write!(f, "textual role   {t} features {}{}", shape(&self.textual), defects(&self.textual_defects))
    }
}
