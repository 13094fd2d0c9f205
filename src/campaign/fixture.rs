//! Test campaigns: a TOML text written to a temporary folder with an (empty)
//! recording for every prompt it names, so tests describe flows, not files.

use std::path::PathBuf;

use super::{Campaign, Diagnostic, load_campaign};

/// A campaign file in a temporary folder that lives as long as this value.
pub struct Fixture {
    /// Kept so the folder lives as long as the fixture.
    _dir: tempfile::TempDir,
    pub file: PathBuf,
}

impl Fixture {
    /// Writes `campaigns/<id>.toml` and `audio/<id>/<lang>/<prompt>.wav` for every
    /// language and every prompt named by the text (`audio` must be
    /// `"../audio/<id>"`).
    pub fn new(id: &str, text: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let campaigns = dir.path().join("campaigns");
        std::fs::create_dir_all(&campaigns).unwrap();
        let file = campaigns.join(format!("{id}.toml"));
        std::fs::write(&file, text).unwrap();
        if let Ok(doc) = text.parse::<toml::Table>() {
            let langs: Vec<String> = doc
                .get("languages")
                .and_then(|l| l.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let mut prompts: Vec<String> = Vec::new();
            let mut collect = |t: &toml::Table| {
                for key in ["prompt", "invalid", "no_input"] {
                    match t.get(key) {
                        Some(toml::Value::String(s)) => prompts.push(s.clone()),
                        Some(toml::Value::Array(a)) => {
                            prompts.extend(a.iter().filter_map(|v| v.as_str().map(str::to_string)))
                        }
                        _ => {}
                    }
                }
            };
            if let Some(d) = doc.get("defaults").and_then(|d| d.as_table()) {
                collect(d);
            }
            for n in doc
                .get("node")
                .and_then(|n| n.as_array())
                .into_iter()
                .flatten()
            {
                if let Some(t) = n.as_table() {
                    collect(t);
                }
            }
            for l in &langs {
                let d = dir.path().join("audio").join(id).join(l);
                std::fs::create_dir_all(&d).unwrap();
                for p in &prompts {
                    if !p.contains('/') && !p.is_empty() {
                        std::fs::write(d.join(format!("{p}.wav")), b"").unwrap();
                    }
                }
            }
        }
        Fixture { _dir: dir, file }
    }

    pub fn load(&self) -> Result<Campaign, Vec<Diagnostic>> {
        load_campaign(&self.file)
    }

    /// Loads a campaign that must be valid.
    pub fn campaign(&self) -> Campaign {
        match self.load() {
            Ok(c) => c,
            Err(d) => panic!("fixture does not load: {d:#?}"),
        }
    }
}
