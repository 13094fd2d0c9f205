//! Campaigns: the TOML files broadcasters write, loaded into checked, ready-to-run
//! definitions.
//!
//! `load` turns one file into a [`Campaign`] or a list of [`Diagnostic`]s
//! (`FILE:LINE: what is wrong`); `validate` checks the graph of nodes and that every
//! prompt has a recording in every language. The flow engine only ever sees a
//! campaign that passed both, so it never has to guess what a broken file meant.

pub mod edit;
#[cfg(test)]
pub(crate) mod fixture;
pub mod history;
pub mod limits;
mod load;
pub mod node_edit;
#[cfg(test)]
mod tests;
mod validate;

pub use crate::duration::{format_duration, parse_duration};
pub use load::{CampaignSet, load_campaign, load_campaign_text, load_folder};

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::schedule::Schedule;

/// Extensions a recording may have, in the order they are looked for.
///
/// The format page names wav, mp3, ogg and flac; m4a and aac (phones' voice
/// notes) are accepted too (documented in campaigns/README.md).
pub const AUDIO_EXTENSIONS: &[&str] = &["wav", "mp3", "ogg", "flac", "m4a", "aac"];

/// Keys a caller can press.
pub const KEYPAD: &[char] = &['1', '2', '3', '4', '5', '6', '7', '8', '9', '0', '*', '#'];

/// One mistake in a campaign file, located so a broadcaster can fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line; 0 when the problem is the file as a whole (unreadable).
    pub line: usize,
    pub message: String,
}

impl Diagnostic {
    /// The same problem for a web client: its file named relative to the
    /// campaigns `folder` (`stop.toml:12: …`, `../audio/stop/bm/q1.wav: …`),
    /// never by the server's own path.
    pub fn shown_from(&self, folder: &Path) -> String {
        Diagnostic {
            file: PathBuf::from(shown_path(&self.file, folder)),
            line: self.line,
            message: self.message.clone(),
        }
        .to_string()
    }
}

/// A path as the web app shows it: relative to the campaigns `folder` when it
/// is inside it or beside it, else only its last three parts (an audio folder
/// kept elsewhere: `CAMPAIGN/LANG/PROMPT.wav`), so that the server's layout
/// does not reach a broadcaster's screen.
pub fn shown_path(path: &Path, folder: &Path) -> String {
    if let Ok(inside) = path.strip_prefix(folder) {
        return inside.display().to_string();
    }
    // Beside it: `audio = "../audio/…"` from the campaigns folder.
    if let Some(parent) = folder.parent()
        && !parent.as_os_str().is_empty()
        && let Ok(beside) = path.strip_prefix(parent)
    {
        return Path::new("..").join(beside).display().to_string();
    }
    let parts: Vec<_> = path.components().rev().take(3).collect();
    let tail: PathBuf = parts.into_iter().rev().collect();
    tail.display().to_string()
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

/// A campaign that loaded and validated: safe to run.
#[derive(Debug, Clone, Serialize)]
pub struct Campaign {
    /// File name without `.toml`.
    pub id: String,
    #[serde(skip)]
    pub file: PathBuf,
    pub title: String,
    pub languages: Vec<String>,
    /// Folder of recordings (already resolved against the campaign file's folder).
    #[serde(skip)]
    pub audio_dir: PathBuf,
    /// The line of `audio` in the file.
    #[serde(skip)]
    pub audio_line: usize,
    pub numbers: Vec<String>,
    /// Dialled numbers that are never answered: kuma refuses the call (so it costs
    /// the caller nothing) and calls the caller back.
    pub callback_numbers: Vec<String>,
    pub start: String,
    pub schedule: Option<Schedule>,
    pub nodes: Vec<Node>,
    /// The longest a prompt's recording may be (`max_prompt`): a message may be a
    /// whole programme.
    #[serde(skip)]
    pub max_prompt: Duration,
    /// The longest a call may last (`max_call`); `None`: the server's limit.
    #[serde(skip)]
    pub max_call: Option<Duration>,
    /// The listener's keys during messages (`[replay]`); `None`: the campaign did
    /// not ask for them, and keys during a message barge in as before.
    #[serde(skip)]
    pub replay: Option<Replay>,
    #[serde(skip)]
    index: HashMap<String, usize>,
}

/// The default `max_prompt`: an hour-long programme.
pub const DEFAULT_MAX_PROMPT: Duration = Duration::from_secs(60 * 60);

/// The keys a listener presses while a message (a programme) plays: `[replay]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replay {
    /// Back `step`.
    pub back: char,
    /// Forward `step`.
    pub forward: char,
    /// Pause; pressed again, resume.
    pub pause: char,
    /// Stop the message and go on to its `next`.
    pub skip: char,
    /// How far `back` and `forward` move.
    pub step: Duration,
}

impl Default for Replay {
    fn default() -> Self {
        Replay {
            back: '4',
            forward: '6',
            pause: '5',
            skip: '#',
            step: Duration::from_secs(10),
        }
    }
}

impl Replay {
    /// The keys, in the order `kuma check` names them.
    pub fn keys(&self) -> [(&'static str, char); 4] {
        [
            ("back", self.back),
            ("forward", self.forward),
            ("pause", self.pause),
            ("skip", self.skip),
        ]
    }
}

impl Campaign {
    /// The node with this id. Every id the engine holds came from the campaign,
    /// so `None` only happens if a caller's saved state outlived a campaign edit.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.index.get(id).map(|&i| &self.nodes[i])
    }

    /// Question nodes in file order: the order results are shown in.
    pub fn questions(&self) -> impl Iterator<Item = (&Node, &[Choice])> {
        self.nodes.iter().filter_map(|n| match &n.kind {
            NodeKind::Question { choices, .. } => Some((n, choices.as_slice())),
            _ => None,
        })
    }

    /// The recording file of a prompt in a language, if there is one.
    pub fn recording(&self, language: &str, prompt: &str) -> Option<PathBuf> {
        find_recording(&self.audio_dir.join(language), prompt)
    }

    /// Every prompt name the campaign uses (node prompts and input prompts), once each.
    pub fn prompt_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for node in &self.nodes {
            let input = [
                node.input.invalid.as_deref(),
                node.input.no_input.as_deref(),
            ];
            for name in node
                .prompts
                .iter()
                .map(String::as_str)
                .chain(input.into_iter().flatten())
            {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        names
    }

    fn build_index(&mut self) {
        self.index = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.clone(), i))
            .collect();
    }
}

/// Looks for `<dir>/<prompt>.<ext>` for every accepted extension.
pub fn find_recording(dir: &Path, prompt: &str) -> Option<PathBuf> {
    AUDIO_EXTENSIONS
        .iter()
        .map(|ext| dir.join(format!("{prompt}.{ext}")))
        .find(|p| p.is_file())
}

/// One node of the voice menu.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub id: String,
    /// Line of the node's `id` key, for messages about the node.
    #[serde(skip)]
    pub line: usize,
    pub prompts: Vec<String>,
    pub input: InputSettings,
    #[serde(flatten)]
    pub kind: NodeKind,
}

/// How a node waits for keys: the `[defaults]` table, overridden per node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputSettings {
    #[serde(serialize_with = "serialize_duration")]
    pub timeout: Duration,
    pub retries: u32,
    pub invalid: Option<String>,
    pub no_input: Option<String>,
    pub bargein: bool,
    /// `None` when the campaign turned the repeat key off (`repeat = ""`).
    pub repeat: Option<char>,
}

impl Default for InputSettings {
    fn default() -> Self {
        InputSettings {
            timeout: Duration::from_secs(6),
            retries: 2,
            invalid: None,
            no_input: None,
            bargein: true,
            repeat: Some('*'),
        }
    }
}

fn serialize_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

/// A digit of a menu or question and what it leads to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Choice {
    pub digit: char,
    /// Node id (menu options) or choice id (question choices).
    pub target: String,
}

/// What a node does; the keys each kind takes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum NodeKind {
    Language {
        next: String,
    },
    Message {
        next: String,
    },
    Menu {
        options: Vec<Choice>,
        on_fail: Option<String>,
    },
    Question {
        choices: Vec<Choice>,
        next: String,
        on_fail: Option<String>,
        /// The choice that subscribes the caller to calls after each broadcast
        /// (any other answer unsubscribes them).
        #[serde(skip_serializing_if = "Option::is_none")]
        subscribe: Option<String>,
    },
    Record {
        #[serde(serialize_with = "serialize_duration")]
        max: Duration,
        next: String,
    },
    Transfer {
        to: String,
        on_fail: Option<String>,
    },
    Hangup,
}

impl NodeKind {
    pub fn name(&self) -> &'static str {
        match self {
            NodeKind::Language { .. } => "language",
            NodeKind::Message { .. } => "message",
            NodeKind::Menu { .. } => "menu",
            NodeKind::Question { .. } => "question",
            NodeKind::Record { .. } => "record",
            NodeKind::Transfer { .. } => "transfer",
            NodeKind::Hangup => "hangup",
        }
    }

    /// Node ids this node can lead to (without the schedule's `closed`).
    pub fn successors(&self) -> Vec<&str> {
        match self {
            NodeKind::Language { next }
            | NodeKind::Message { next }
            | NodeKind::Record { next, .. } => {
                vec![next]
            }
            NodeKind::Menu { options, on_fail } => options
                .iter()
                .map(|c| c.target.as_str())
                .chain(on_fail.as_deref())
                .collect(),
            NodeKind::Question { next, on_fail, .. } => std::iter::once(next.as_str())
                .chain(on_fail.as_deref())
                .collect(),
            NodeKind::Transfer { on_fail, .. } => on_fail.as_deref().into_iter().collect(),
            NodeKind::Hangup => vec![],
        }
    }
}
