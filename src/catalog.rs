//! The campaigns `kuma serve` answers with, their prepared prompts, and which
//! campaign a dialled number reaches.

pub mod replace;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::audio::PromptSet;
use crate::audio::prepare::{Settings, prepare_campaign};
use crate::campaign::{Campaign, Diagnostic, load_folder};

/// One loaded version of the campaigns folder.
pub struct Catalog {
    campaigns: HashMap<String, (Arc<Campaign>, Arc<PromptSet>)>,
    by_number: HashMap<String, String>,
    problems: Vec<Diagnostic>,
    /// The campaigns folder it was loaded from.
    folder: PathBuf,
}

impl Catalog {
    /// Loads and validates every campaign and prepares its prompts (from the cache
    /// when unchanged). A campaign whose prompts cannot all be played is left out.
    pub fn load(dir: &Path, data: &Path) -> Catalog {
        let set = load_folder(dir);
        let mut problems = set.problems;
        let mut campaigns = HashMap::new();
        let mut by_number = HashMap::new();
        for c in set.campaigns {
            let (prompts, reports) = prepare_campaign(&c, data, &Settings::for_campaign(&c));
            let bad: Vec<Diagnostic> = reports
                .iter()
                .filter_map(|r| {
                    r.outcome.as_ref().err().map(|e| Diagnostic {
                        file: r.path.clone(),
                        line: 0,
                        message: e.to_string(),
                    })
                })
                .collect();
            if !bad.is_empty() {
                problems.extend(bad);
                problems.push(Diagnostic {
                    file: c.file.clone(),
                    line: 0,
                    message: format!(
                        "campaign `{}` is not served: some prompts cannot be played",
                        c.id
                    ),
                });
                continue;
            }
            for n in c.numbers.iter().chain(&c.callback_numbers) {
                by_number.insert(n.clone(), c.id.clone());
            }
            campaigns.insert(c.id.clone(), (Arc::new(c), Arc::new(prompts)));
        }
        Catalog {
            campaigns,
            by_number,
            problems,
            folder: dir.to_path_buf(),
        }
    }

    /// Whether some campaign has call-back numbers.
    pub fn has_callbacks(&self) -> bool {
        self.campaigns
            .values()
            .any(|(c, _)| !c.callback_numbers.is_empty())
    }

    pub fn is_empty(&self) -> bool {
        self.campaigns.is_empty()
    }

    /// Prints what loaded and what did not.
    pub fn report(&self) {
        for p in &self.problems {
            eprintln!("{p}");
        }
        let mut ids: Vec<&String> = self.campaigns.keys().collect();
        ids.sort();
        for id in ids {
            let (c, prompts) = &self.campaigns[id];
            let callback = if c.callback_numbers.is_empty() {
                String::new()
            } else {
                format!(", call-back numbers [{}]", c.callback_numbers.join(", "))
            };
            eprintln!(
                "kuma serve: campaign `{id}` on numbers [{}]{callback}, {} prompts ready",
                c.numbers.join(", "),
                prompts.len()
            );
        }
    }

    /// A served campaign by id, with its prepared prompts.
    pub fn get(&self, id: &str) -> Option<(Arc<Campaign>, Arc<PromptSet>)> {
        self.campaigns
            .get(id)
            .map(|(c, p)| (Arc::clone(c), Arc::clone(p)))
    }

    /// Every served campaign, sorted by id.
    pub fn campaigns(&self) -> Vec<Arc<Campaign>> {
        let mut list: Vec<Arc<Campaign>> = self
            .campaigns
            .values()
            .map(|(c, _)| Arc::clone(c))
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    /// Why files or campaigns are not served (`FILE:LINE: …`, as `kuma check`),
    /// each file named relative to the campaigns folder: these are shown in the
    /// web app, where the server's own paths have no business.
    pub fn problems(&self) -> Vec<String> {
        self.problems
            .iter()
            .map(|d| d.shown_from(&self.folder))
            .collect()
    }

    /// The campaign a dialled number reaches (or the default campaign).
    pub fn route(
        &self,
        dialled: &str,
        default: Option<&str>,
    ) -> Option<(Arc<Campaign>, Arc<PromptSet>)> {
        let id = self
            .by_number
            .get(dialled)
            .map(String::as_str)
            .or(default)?;
        self.campaigns
            .get(id)
            .map(|(c, p)| (Arc::clone(c), Arc::clone(p)))
    }
}

/// The catalog in use, replaced as a whole (SIGHUP, a change made in the web
/// app): whoever reads it keeps the snapshot they got, so a call in progress
/// keeps the campaign it started with.
pub struct Catalogs(RwLock<Arc<Catalog>>);

impl Catalogs {
    pub fn new(catalog: Catalog) -> Catalogs {
        Catalogs(RwLock::new(Arc::new(catalog)))
    }

    /// The campaigns as they are now.
    pub fn current(&self) -> Arc<Catalog> {
        match self.0.read() {
            Ok(c) => Arc::clone(&c),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// From now on, `catalog`.
    pub fn replace(&self, catalog: Arc<Catalog>) {
        let mut slot = match self.0.write() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = catalog;
    }

    /// Loads the campaigns folder `dir` again (prompts prepared into `data`'s
    /// cache) and swaps it in, unless no campaign in it can take calls (then the
    /// previous catalog stays): what SIGHUP does, and what a change saved from
    /// the web app does at once. Prints what loaded, as at start-up. Reloads run
    /// one at a time, so that two overlapping ones (a SIGHUP and a save) cannot
    /// finish out of order and leave the older folder in place. The catalog now
    /// served, or `None` when the reload failed.
    pub async fn reload(&self, dir: PathBuf, data: PathBuf) -> Option<Arc<Catalog>> {
        static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _one = ONE_AT_A_TIME.lock().await;
        match tokio::task::spawn_blocking(move || Catalog::load(&dir, &data)).await {
            Ok(c) if !c.is_empty() => {
                c.report();
                let c = Arc::new(c);
                self.replace(Arc::clone(&c));
                eprintln!("kuma serve: campaigns reloaded");
                Some(c)
            }
            Ok(c) => {
                c.report();
                eprintln!(
                    "kuma serve: reload refused: no valid campaign; keeping the previous ones"
                );
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "reload failed");
                None
            }
        }
    }
}
