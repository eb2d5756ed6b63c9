//! The data fingerprint: what a saved artefact was made from, so that it is only ever used with
//! that data.
//!
//! Computed once at load ([`crate::data::load_dataset`]) and written into every artefact of a
//! run: checkpoint metadata, the resumable state and `manifest.json`. Every consumer (`crane
//! eval`, `crane recommend`, `train --resume`, and `compare`/`grid` when they keep a finished run)
//! loads the data with the artefact's own split source and user filter and refuses it when the
//! fingerprints differ, naming the first difference: a file and both hashes, the split, the
//! filter or the counts.

use crate::data::{Layout, SplitSource};
use crate::error::{CraneError, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// One input file: its name inside the dataset folder, size and sha256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// File name relative to the dataset folder (the folder itself may move).
    pub name: String,
    pub bytes: u64,
    /// Lower-case hex.
    pub sha256: String,
}

/// Everything that decides which data a model saw: the bytes of every file read, the layout,
/// where the split came from, the user filter and the resulting counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFingerprint {
    /// The dataset's name (the `.inter` stem or the folder name), for messages only: it is not
    /// compared, so a renamed copy of the same files is the same data.
    pub dataset: String,
    pub layout: Layout,
    /// Every file read, in reading order.
    pub files: Vec<FileDigest>,
    /// `x_label` (or the JSON layout's three files), or the seed of the per-user split.
    pub split: SplitSource,
    /// `--min-user-interactions` (0: no filter).
    pub min_user_interactions: usize,
    pub n_users: usize,
    pub n_items: usize,
    /// The modality names whose feature files played the visual and textual roles
    /// (`modalities`); absent in fingerprints older than the setting: `image`, `text`.
    #[serde(default = "default_modalities")]
    pub modalities: [String; 2],
    /// The kNN graph folder read (`item_graph_source = { files = .. }`), as configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_graph_dir: Option<String>,
}

fn default_modalities() -> [String; 2] {
    crate::data::DEFAULT_MODALITIES.map(String::from)
}

impl DataFingerprint {
    /// The load options that reproduce this data from its folder (features always read).
    pub fn load_options(&self) -> crate::data::LoadOptions {
        crate::data::LoadOptions {
            min_user_interactions: self.min_user_interactions,
            split_seed: match self.split {
                SplitSource::Seeded(s) => s,
                SplitSource::XLabel => crate::data::split::PAPER_SEEDS[0],
            },
            load_features: true,
            modalities: (self.modalities != default_modalities()).then(|| self.modalities.clone()),
            item_graph_dir: self.item_graph_dir.as_ref().map(std::path::PathBuf::from),
        }
    }

    /// One line naming the first difference between the data an artefact was made from
    /// (`self`) and the data at hand (`now`), or `None` when they are the same data.
    pub fn difference(&self, now: &DataFingerprint) -> Option<String> {
        let short = |h: &str| h.chars().take(12).collect::<String>();
        for f in &self.files {
            match now.files.iter().find(|g| role(&g.name) == role(&f.name)) {
                None => return Some(format!("{} was read then but is absent now", f.name)),
                Some(g) if g.sha256 != f.sha256 => {
                    let names =
                        if g.name == f.name { f.name.clone() } else { format!("{} (then) / {} (now)", f.name, g.name) };
                    return Some(format!(
                        "{names} differs: sha256 {}… then, {}… now ({} vs {} bytes)",
                        short(&f.sha256),
                        short(&g.sha256),
                        f.bytes,
                        g.bytes
                    ));
                }
                Some(_) => {}
            }
        }
        if let Some(g) = now.files.iter().find(|g| !self.files.iter().any(|f| role(&f.name) == role(&g.name))) {
            return Some(format!("{} is read now but was not then", g.name));
        }
        if self.modalities != now.modalities {
            return Some(format!("modalities {:?} then, {:?} now", self.modalities, now.modalities));
        }
        if self.layout != now.layout {
            return Some(format!("layout {} then, {} now", self.layout, now.layout));
        }
        if self.split != now.split {
            return Some(format!("split {} then, {} now", self.split, now.split));
        }
        if self.min_user_interactions != now.min_user_interactions {
            return Some(format!(
                "user filter --min-user-interactions {} then, {} now",
                self.min_user_interactions, now.min_user_interactions
            ));
        }
        if (self.n_users, self.n_items) != (now.n_users, now.n_items) {
            return Some(format!(
                "{} users and {} items then, {} and {} now",
                self.n_users, self.n_items, now.n_users, now.n_items
            ));
        }
        None
    }

    /// `Err` naming `artefact`, the data it was made from and the first difference when `now`
    /// is other data.
    pub fn check(&self, artefact: &Path, now: &DataFingerprint) -> Result<()> {
        match self.difference(now) {
            None => Ok(()),
            Some(d) => Err(CraneError::file(
                artefact,
                format!(
                    "was made from other data than `{}`: {d}. It belongs to dataset `{}` ({} users, {} item ids, split \
                     {}); this data has {} users, {} item ids, split {}. Use the data it was made from",
                    now.dataset,
                    self.dataset,
                    self.n_users,
                    self.n_items,
                    self.split,
                    now.n_users,
                    now.n_items,
                    now.split
                ),
            )),
        }
    }

    /// The fingerprint as the JSON stored in safetensors metadata.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("fingerprint serialises")
    }
}

/// What a file is to the loader: the `.inter` file is the interactions whatever its name (it is
/// named after the folder, which may be renamed); the other files have fixed names.
fn role(name: &str) -> &str {
    if name.ends_with(".inter") {
        ".inter"
    } else {
        name
    }
}

/// Size and sha256 of a file, streamed.
pub fn digest_file(path: &Path) -> Result<(u64, String)> {
    let mut f = std::fs::File::open(path).map_err(|e| CraneError::io(path, "open", e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| CraneError::io(path, "read", e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok((bytes, h.finalize().iter().map(|b| format!("{b:02x}")).collect()))
}

/// The digests of `files` (paths inside `dir`; named relative to it).
pub fn digest_files(dir: &Path, files: &[std::path::PathBuf]) -> Result<Vec<FileDigest>> {
    files
        .iter()
        .map(|p| {
            let (bytes, sha256) = digest_file(p)?;
            let name = p.strip_prefix(dir).unwrap_or(p).display().to_string();
            Ok(FileDigest { name, bytes, sha256 })
        })
        .collect()
}

/// Checks a run folder's `manifest.json` against the data at hand, for reusing a finished run
/// (`compare`, `grid`). A manifest with a `data_fingerprint` is checked in full; one written
/// before fingerprints existed is checked by what it has: the sha256 of each input file (by
/// file name) and the user and item counts.
pub fn check_manifest(manifest: &Path, now: &DataFingerprint) -> Result<()> {
    let text = std::fs::read_to_string(manifest).map_err(|e| CraneError::io(manifest, "read", e))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| CraneError::file(manifest, format!("not JSON: {e}")))?;
    if let Some(fp) = v.get("data_fingerprint") {
        let fp: DataFingerprint = serde_json::from_value(fp.clone())
            .map_err(|e| CraneError::file(manifest, format!("data_fingerprint: {e}")))?;
        return fp.check(manifest, now);
    }
    let name_of = |p: &str| Path::new(p).file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let inputs = v.get("inputs").and_then(|i| i.as_array()).ok_or_else(|| {
        CraneError::file(manifest, "has neither `data_fingerprint` nor `inputs`: cannot tell which data it used")
    })?;
    for input in inputs {
        let (Some(path), Some(sha)) = (input["path"].as_str(), input["sha256"].as_str()) else {
            return Err(CraneError::file(manifest, format!("input entry without path and sha256: {input}")));
        };
        let name = name_of(path);
        let same = now.files.iter().any(|f| name_of(&f.name) == name && f.sha256 == sha);
        if !same {
            return Err(CraneError::file(
                manifest,
                format!("was made from other data than `{}`: {name} differs or is absent now", now.dataset),
            ));
        }
    }
    let count = |k: &str| v["data"][k].as_u64().map(|x| x as usize);
    if count("users") != Some(now.n_users) || count("items") != Some(now.n_items) {
        return Err(CraneError::file(
            manifest,
            format!(
                "was made from other data than `{}`: {:?} users and {:?} items then, {} and {} now",
                now.dataset,
                count("users"),
                count("items"),
                now.n_users,
                now.n_items
            ),
        ));
    }
    Ok(())
}
