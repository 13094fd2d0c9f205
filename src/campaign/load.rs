//! Reading campaign files: TOML in, a [`Campaign`] or located [`Diagnostic`]s out.
//!
//! The file is parsed into toml's spanned document tree and walked by hand rather
//! than through serde derive, so that every mistake can name its line, the key, and
//! what was expected ("did you mean `timeout`?"), instead of a bare serde message.
//! All mistakes of a file are reported together, so a broadcaster fixes them in one
//! pass.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::validate::{self, Located};
use super::{
    Campaign, Choice, Diagnostic, InputSettings, Node, NodeKind, Replay, format_duration, limits,
    parse_duration,
};
use crate::schedule::{self, Broadcast, Schedule};

/// Every campaign of a folder, and what is wrong with the ones that failed.
#[derive(Debug, Default)]
pub struct CampaignSet {
    /// Campaigns that loaded and validated, sorted by id.
    pub campaigns: Vec<Campaign>,
    /// Problems of every file; a file with problems is not in `campaigns`.
    pub problems: Vec<Diagnostic>,
    /// Files that were read (valid or not), sorted.
    pub files: Vec<PathBuf>,
}

impl CampaignSet {
    pub fn get(&self, id: &str) -> Option<&Campaign> {
        self.campaigns.iter().find(|c| c.id == id)
    }

    /// The problems of one file.
    pub fn problems_of<'a>(&'a self, file: &'a Path) -> impl Iterator<Item = &'a Diagnostic> + 'a {
        self.problems.iter().filter(move |d| d.file == file)
    }
}

/// Loads every `*.toml` of a folder. Numbers claimed by two campaigns are a problem
/// of the second file (in name order), because a call could not know where to go.
pub fn load_folder(dir: &Path) -> CampaignSet {
    let mut set = CampaignSet::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            set.problems.push(Diagnostic {
                file: dir.to_path_buf(),
                line: 0,
                message: format!("cannot read the campaigns folder: {e}"),
            });
            return set;
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    let mut numbers: BTreeMap<String, String> = BTreeMap::new();
    for file in &files {
        match load_campaign(file) {
            Ok(c) => {
                let mut clash = Vec::new();
                for n in c.numbers.iter().chain(&c.callback_numbers) {
                    if let Some(other) = numbers.get(n) {
                        clash.push(Diagnostic {
                            file: file.clone(),
                            line: 0,
                            message: format!(
                                "number `{n}` already belongs to campaign `{other}`; each dialled number reaches one campaign"
                            ),
                        });
                    }
                }
                if clash.is_empty() {
                    for n in c.numbers.iter().chain(&c.callback_numbers) {
                        numbers.insert(n.clone(), c.id.clone());
                    }
                    set.campaigns.push(c);
                } else {
                    set.problems.extend(clash);
                }
            }
            Err(diags) => set.problems.extend(diags),
        }
    }
    if files.is_empty() {
        set.problems.push(Diagnostic {
            file: dir.to_path_buf(),
            line: 0,
            message: "no campaign files (*.toml) in this folder".into(),
        });
    }
    set.files = files;
    set
}

/// Loads and validates one campaign file.
pub fn load_campaign(path: &Path) -> Result<Campaign, Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic {
            file: path.to_path_buf(),
            line: 0,
            message: format!("cannot read: {e}"),
        }]
    })?;
    load_campaign_text(path, &text)
}

/// Loads and validates a campaign's text as if read from `path` (which names the
/// campaign and is where `audio` is relative to). The fuzz target `campaign` feeds
/// it without a file.
#[doc(hidden)]
pub fn load_campaign_text(path: &Path, text: &str) -> Result<Campaign, Vec<Diagnostic>> {
    let id = path
        .file_stem()
        .and_then(|s| s.to_str())
        .map(str::to_string)
        .unwrap_or_default();
    let mut cx = Cx::new(path, text);
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        cx.error(
            0..0,
            format!(
                "the file name `{}` is not a campaign id: use letters, digits, `-` and `_` only",
                path.display()
            ),
        );
    }
    let doc = match DeTable::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            cx.error(span, format!("not valid TOML: {}", e.message().trim()));
            return Err(cx.diags);
        }
    };
    let parsed = cx.campaign(id, doc.get_ref());
    // A file whose every part parsed (perhaps with unknown keys beside them) is
    // validated too, so that all its mistakes are reported in one pass.
    if let Some((campaign, located)) = parsed {
        validate::check(&campaign, &located, &mut |line, message| {
            cx.error_at(line, message)
        });
        if cx.diags.is_empty() {
            return Ok(campaign);
        }
    }
    Err(cx.diags)
}

type Value<'i> = Spanned<DeValue<'i>>;

/// The walk's context: the file, where lines start, and the problems found.
struct Cx<'t> {
    file: PathBuf,
    text: &'t str,
    diags: Vec<Diagnostic>,
}

const TOP_KEYS: &[&str] = &[
    "title",
    "languages",
    "audio",
    "numbers",
    "callback_numbers",
    "start",
    "schedule",
    "defaults",
    "node",
    "max_prompt",
    "max_call",
    "replay",
];
const REPLAY_KEYS: &[&str] = &["back", "forward", "pause", "skip", "step"];
/// The longest `max_prompt` or `max_call` a campaign may ask for.
const MOST_PROGRAMME: std::time::Duration = std::time::Duration::from_secs(6 * 60 * 60);
const SCHEDULE_KEYS: &[&str] = &[
    "timezone",
    "broadcasts",
    "poll_window",
    "from",
    "until",
    "closed",
];
const INPUT_KEYS: &[&str] = &[
    "timeout", "retries", "invalid", "no_input", "bargein", "repeat",
];
const KINDS: &[&str] = &[
    "language", "message", "menu", "question", "record", "transfer", "hangup",
];

/// The keys each node kind takes besides `id`, `kind`, `prompt` and the input keys.
fn kind_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "language" | "message" => &["next"],
        "menu" => &["options", "on_fail"],
        "question" => &["choices", "next", "on_fail", "subscribe"],
        "record" => &["max", "next"],
        "transfer" => &["to", "on_fail"],
        _ => &[],
    }
}

impl<'t> Cx<'t> {
    fn new(path: &Path, text: &'t str) -> Self {
        Cx {
            file: path.to_path_buf(),
            text,
            diags: Vec::new(),
        }
    }

    fn line_of(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn error(&mut self, span: Range<usize>, message: String) {
        let line = if span == (0..0) && message.starts_with("the file name") {
            0
        } else {
            self.line_of(&span)
        };
        self.error_at(line, message);
    }

    fn error_at(&mut self, line: usize, message: String) {
        self.diags.push(Diagnostic {
            file: self.file.clone(),
            line,
            message,
        });
    }

    fn unknown_key(
        &mut self,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        place: &str,
        allowed: &[&str],
    ) {
        let k = key.get_ref().as_ref();
        let hint = closest(k, allowed)
            .map(|s| format!("did you mean `{s}`? "))
            .unwrap_or_default();
        self.error(
            key.span(),
            format!(
                "unknown key `{k}` in {place}; {hint}expected one of: {}",
                allowed.join(", ")
            ),
        );
    }

    fn type_error(&mut self, what: &str, v: &Value<'_>, expected: &str) {
        self.error(
            v.span(),
            format!("{what} must be {expected}, found {}", describe(v.get_ref())),
        );
    }

    fn string(&mut self, what: &str, v: &Value<'_>) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                self.type_error(what, v, "text in quotes");
                None
            }
        }
    }

    fn non_empty_string(&mut self, what: &str, v: &Value<'_>) -> Option<String> {
        let s = self.string(what, v)?;
        if s.trim().is_empty() {
            self.error(v.span(), format!("{what} must not be empty"));
            return None;
        }
        Some(s)
    }

    /// A list of at least one string.
    fn non_empty_strings(&mut self, what: &str, v: &Value<'_>) -> Option<Vec<(String, usize)>> {
        let list = self.strings(what, v, false)?;
        if list.is_empty() {
            self.error(
                v.span(),
                format!("{what} is an empty list; list at least one, or remove the key"),
            );
            return None;
        }
        Some(list)
    }

    /// A list of strings; with `one_or_many`, a single string is a list of one.
    fn strings(
        &mut self,
        what: &str,
        v: &Value<'_>,
        one_or_many: bool,
    ) -> Option<Vec<(String, usize)>> {
        let line = self.line_of(&v.span());
        match v.get_ref() {
            DeValue::String(s) if one_or_many => Some(vec![(s.to_string(), line)]),
            DeValue::Array(items) => {
                let mut out = Vec::new();
                let mut ok = true;
                for item in items.iter() {
                    match self.string(&format!("each entry of {what}"), item) {
                        Some(s) => out.push((s, self.line_of(&item.span()))),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            }
            _ => {
                let expected = if one_or_many {
                    "text in quotes or a list of them, e.g. [\"intro\", \"story\"]"
                } else {
                    "a list of texts in quotes, e.g. [\"a\", \"b\"]"
                };
                self.type_error(what, v, expected);
                None
            }
        }
    }

    /// A duration longer than zero and at most `max`: a typo such as `60h` for a
    /// keypad timeout would otherwise hold a silent line open for days.
    fn duration(
        &mut self,
        what: &str,
        v: &Value<'_>,
        max: std::time::Duration,
    ) -> Option<std::time::Duration> {
        let s = self.string(what, v)?;
        match parse_duration(&s) {
            Ok(d) if d.is_zero() => {
                self.error(v.span(), format!("{what} must be longer than zero"));
                None
            }
            Ok(d) if d > max => {
                self.error(
                    v.span(),
                    format!(
                        "{what}: `{}` is longer than the most allowed, {}",
                        s.trim(),
                        format_duration(max)
                    ),
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.error(v.span(), format!("{what}: {e}"));
                None
            }
        }
    }

    fn boolean(&mut self, what: &str, v: &Value<'_>) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.type_error(what, v, "true or false");
                None
            }
        }
    }

    fn count(&mut self, what: &str, v: &Value<'_>) -> Option<u32> {
        let parsed = match v.get_ref() {
            DeValue::Integer(i) => {
                let digits = i.as_str().replace('_', "");
                i64::from_str_radix(
                    digits
                        .trim_start_matches(['0', 'x', 'o', 'b'])
                        .trim_start_matches('+'),
                    i.radix(),
                )
                .ok()
                .or_else(|| digits.parse::<i64>().ok())
            }
            _ => None,
        };
        match parsed {
            Some(n) if (0..=20).contains(&n) => Some(n as u32),
            Some(n) => {
                self.error(
                    v.span(),
                    format!("{what} must be between 0 and 20, found {n}"),
                );
                None
            }
            None => {
                self.type_error(what, v, "a whole number (e.g. 2)");
                None
            }
        }
    }

    fn table<'a, 'i>(&mut self, what: &str, v: &'a Value<'i>) -> Option<&'a DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.type_error(what, v, "a table");
                None
            }
        }
    }

    /// A table of single keypad digits to ids (`options`, `choices`), in file order.
    fn digit_table(&mut self, what: &str, v: &Value<'_>) -> Option<Vec<(Choice, usize)>> {
        let t = match v.get_ref() {
            DeValue::Table(t) => t,
            _ => {
                self.type_error(
                    what,
                    v,
                    "a table of digits, e.g. { \"1\" = \"yes\", \"2\" = \"no\" }",
                );
                return None;
            }
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (k, val) in t.iter() {
            let key = k.get_ref().as_ref();
            let mut chars = key.chars();
            let digit = match (chars.next(), chars.next()) {
                (Some(d), None) if d.is_ascii_digit() => d,
                _ => {
                    self.error(
                        k.span(),
                        format!(
                            "{what}: `{key}` is not a single keypad digit; expected \"0\" to \"9\""
                        ),
                    );
                    ok = false;
                    continue;
                }
            };
            match self.non_empty_string(&format!("{what}.\"{digit}\""), val) {
                Some(target) => out.push((Choice { digit, target }, self.line_of(&val.span()))),
                None => ok = false,
            }
        }
        if t.is_empty() {
            self.error(
                v.span(),
                format!("{what} is empty; list at least one digit"),
            );
            ok = false;
        }
        ok.then_some(out)
    }

    fn input(
        &mut self,
        place: &str,
        t: &DeTable<'_>,
        base: &InputSettings,
        located: &mut Located,
    ) -> Option<InputSettings> {
        let mut s = base.clone();
        let mut ok = true;
        for (k, v) in t.iter() {
            let key = k.get_ref().as_ref();
            let what = format!("{place}: `{key}`");
            let line = self.line_of(&v.span());
            match key {
                "timeout" => match self.duration(&what, v, limits::MAX_TIMEOUT) {
                    Some(d) => s.timeout = d,
                    None => ok = false,
                },
                "retries" => match self.count(&what, v) {
                    Some(n) => s.retries = n,
                    None => ok = false,
                },
                "invalid" | "no_input" => match self.non_empty_string(&what, v) {
                    Some(p) => {
                        located.prompts.push((p.clone(), line));
                        if key == "invalid" {
                            s.invalid = Some(p)
                        } else {
                            s.no_input = Some(p)
                        }
                    }
                    None => ok = false,
                },
                "bargein" => match self.boolean(&what, v) {
                    Some(b) => s.bargein = b,
                    None => ok = false,
                },
                "repeat" => match self.string(&what, v) {
                    Some(r) if r.is_empty() => s.repeat = None,
                    Some(r) => {
                        let mut cs = r.chars();
                        match (cs.next(), cs.next()) {
                            (Some(c), None) if super::KEYPAD.contains(&c) => s.repeat = Some(c),
                            _ => {
                                self.error(
                                    v.span(),
                                    format!("{what}: `{r}` is not a key; expected one of 0-9, * or #, or \"\" for no repeat key"),
                                );
                                ok = false;
                            }
                        }
                    }
                    None => ok = false,
                },
                _ => {}
            }
        }
        ok.then_some(s)
    }

    fn campaign(&mut self, id: String, doc: &DeTable<'_>) -> Option<(Campaign, Located)> {
        let mut located = Located::default();
        for (k, _) in doc.iter() {
            if !TOP_KEYS.contains(&k.get_ref().as_ref()) {
                self.unknown_key(k, "the campaign", TOP_KEYS);
            }
        }
        let get = |key: &str| doc.get(key);
        let title = match get("title") {
            Some(v) => self.non_empty_string("`title`", v),
            None => {
                self.error_at(
                    1,
                    "missing `title` (the campaign's name, shown to broadcasters and analysts)"
                        .into(),
                );
                None
            }
        };
        let languages = match get("languages") {
            Some(v) => self
                .strings("`languages`", v, false)
                .map(|ls| (ls, self.line_of(&v.span()))),
            None => {
                self.error_at(
                    1,
                    "missing `languages` (a list of language codes such as [\"bm\", \"fr\"])"
                        .into(),
                );
                None
            }
        };
        let languages = languages.and_then(|(ls, line)| self.check_languages(ls, line));
        let audio = match get("audio") {
            Some(v) => self
                .non_empty_string("`audio`", v)
                .map(|a| (a, self.line_of(&v.span()))),
            None => {
                self.error_at(1, "missing `audio` (the folder of this campaign's recordings, relative to this file)".into());
                None
            }
        };
        let numbers = match get("numbers") {
            Some(v) => self
                .non_empty_strings("`numbers`", v)
                .map(|ns| ns.into_iter().map(|(n, _)| n).collect()),
            None => Some(Vec::new()),
        };
        // Numbers that are never answered: a call to one is refused (free for the
        // caller) and called back (`crate::outbound`).
        let callback_numbers = match get("callback_numbers") {
            Some(v) => self.non_empty_strings("`callback_numbers`", v).map(|ns| {
                let answered: Vec<String> = numbers.clone().unwrap_or_default();
                let mut out: Vec<String> = Vec::new();
                for (n, line) in ns {
                    if answered.contains(&n) {
                        self.error_at(
                            line,
                            format!("`callback_numbers`: `{n}` is also in `numbers`; a number is either answered or called back"),
                        );
                    } else if !out.contains(&n) {
                        out.push(n);
                    }
                }
                out
            }),
            None => Some(Vec::new()),
        };
        let start = match get("start") {
            Some(v) => self.non_empty_string("`start`", v).map(|s| {
                located
                    .refs
                    .push(("`start`".into(), s.clone(), self.line_of(&v.span())));
                Some(s)
            }),
            None => Some(None),
        };
        let defaults = match get("defaults") {
            Some(v) => match self.table("`[defaults]`", v) {
                Some(t) => {
                    for (k, _) in t.iter() {
                        if !INPUT_KEYS.contains(&k.get_ref().as_ref()) {
                            self.unknown_key(k, "[defaults]", INPUT_KEYS);
                        }
                    }
                    self.input("[defaults]", t, &InputSettings::default(), &mut located)
                }
                None => None,
            },
            None => Some(InputSettings::default()),
        };
        let schedule = match get("schedule") {
            Some(v) => self.schedule(v, &mut located).map(Some),
            None => Some(None),
        };
        let max_prompt = match get("max_prompt") {
            Some(v) => self.duration("`max_prompt`", v, MOST_PROGRAMME),
            None => Some(super::DEFAULT_MAX_PROMPT),
        };
        let max_call = match get("max_call") {
            Some(v) => self.duration("`max_call`", v, MOST_PROGRAMME).map(Some),
            None => Some(None),
        };
        let replay = match get("replay") {
            Some(v) => self.replay(v).map(Some),
            None => Some(None),
        };
        let nodes = match (get("node"), defaults.as_ref()) {
            (Some(v), Some(defaults)) => self.nodes(v, defaults, &mut located),
            (Some(_), None) => None,
            (None, _) => {
                self.error_at(
                    1,
                    "no [[node]]: a campaign needs at least one node (the voice menu)".into(),
                );
                None
            }
        };
        let (title, languages, (audio, audio_line), numbers, start, _defaults, schedule, nodes) = (
            title?, languages?, audio?, numbers?, start?, defaults?, schedule?, nodes?,
        );
        let callback_numbers = callback_numbers?;
        let (max_prompt, max_call, replay) = (max_prompt?, max_call?, replay?);
        let base = self.file.parent().unwrap_or(Path::new("."));
        // `node = []` parses as a list of no nodes: without `start`, there is no
        // first node to start at (and with one, validation reports it dangling).
        let Some(start) = start.or_else(|| nodes.first().map(|n| n.id.clone())) else {
            self.error_at(
                1,
                "no [[node]]: a campaign needs at least one node (the voice menu)".into(),
            );
            return None;
        };
        let mut campaign = Campaign {
            id,
            file: self.file.clone(),
            title,
            languages,
            audio_dir: base.join(audio),
            audio_line,
            numbers,
            callback_numbers,
            start,
            schedule,
            nodes,
            max_prompt,
            max_call,
            replay,
            index: Default::default(),
        };
        campaign.build_index();
        Some((campaign, located))
    }

    fn check_languages(&mut self, langs: Vec<(String, usize)>, line: usize) -> Option<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        let mut ok = true;
        for (l, line) in langs {
            let valid = (2..=8).contains(&l.len())
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !valid {
                self.error_at(line, format!("`languages`: `{l}` is not a language code; expected an ISO 639 code such as \"bm\", \"fr\", \"snk\""));
                ok = false;
            } else if out.contains(&l) {
                self.error_at(line, format!("`languages`: `{l}` is listed twice"));
                ok = false;
            } else {
                out.push(l);
            }
        }
        if ok && out.is_empty() {
            self.error_at(
                line,
                "`languages` is empty; list at least one language code".into(),
            );
            return None;
        }
        ok.then_some(out)
    }

    /// One keypad key written as text (`"4"`, `"#"`).
    fn key(&mut self, what: &str, v: &Value<'_>) -> Option<char> {
        let r = self.string(what, v)?;
        let mut cs = r.chars();
        match (cs.next(), cs.next()) {
            (Some(c), None) if super::KEYPAD.contains(&c) => Some(c),
            _ => {
                self.error(
                    v.span(),
                    format!("{what}: `{r}` is not a key; expected one of 0-9, * or #"),
                );
                None
            }
        }
    }

    /// `[replay]`: the listener's keys during messages, each defaulted.
    fn replay(&mut self, v: &Value<'_>) -> Option<Replay> {
        let t = self.table("`[replay]`", v)?;
        let mut ok = true;
        for (k, _) in t.iter() {
            if !REPLAY_KEYS.contains(&k.get_ref().as_ref()) {
                self.unknown_key(k, "[replay]", REPLAY_KEYS);
                ok = false;
            }
        }
        let mut r = Replay::default();
        for (name, slot) in [
            ("back", &mut r.back),
            ("forward", &mut r.forward),
            ("pause", &mut r.pause),
            ("skip", &mut r.skip),
        ] {
            if let Some(v) = t.get(name) {
                match self.key(&format!("[replay] `{name}`"), v) {
                    Some(c) => *slot = c,
                    None => ok = false,
                }
            }
        }
        if let Some(v) = t.get("step") {
            match self.duration("[replay] `step`", v, std::time::Duration::from_secs(600)) {
                Some(d) => r.step = d,
                None => ok = false,
            }
        }
        let keys = r.keys();
        for (i, (a, ka)) in keys.iter().enumerate() {
            if let Some((b, _)) = keys.iter().skip(i + 1).find(|(_, kb)| kb == ka) {
                self.error(
                    v.span(),
                    format!(
                        "[replay]: `{a}` and `{b}` are both the key `{ka}`; give each its own key"
                    ),
                );
                ok = false;
            }
        }
        ok.then_some(r)
    }

    fn schedule(&mut self, v: &Value<'_>, located: &mut Located) -> Option<Schedule> {
        let t = self.table("`[schedule]`", v)?;
        let mut ok = true;
        for (k, _) in t.iter() {
            if !SCHEDULE_KEYS.contains(&k.get_ref().as_ref()) {
                self.unknown_key(k, "[schedule]", SCHEDULE_KEYS);
                ok = false;
            }
        }
        let timezone = match t.get("timezone") {
            Some(v) => self.string("[schedule] `timezone`", v).and_then(|s| {
                schedule::parse_timezone(&s)
                    .map_err(|e| self.error(v.span(), format!("[schedule] `timezone`: {e}")))
                    .ok()
            }),
            None => {
                self.error(
                    v.span(),
                    "[schedule] needs `timezone`, an IANA zone such as \"Africa/Bamako\"".into(),
                );
                None
            }
        };
        let mut broadcasts = Vec::new();
        if let Some(bv) = t.get("broadcasts") {
            match self.non_empty_strings("[schedule] `broadcasts`", bv) {
                Some(list) => {
                    for (expr, line) in list {
                        match Broadcast::parse(&expr) {
                            Ok(b) => broadcasts.push(b),
                            Err(e) => {
                                self.error_at(line, format!("[schedule] `broadcasts`: {e}"));
                                ok = false;
                            }
                        }
                    }
                }
                None => ok = false,
            }
        }
        let poll_window = match t.get("poll_window") {
            Some(v) => {
                match self.duration("[schedule] `poll_window`", v, limits::MAX_POLL_WINDOW) {
                    Some(d) => Some(d),
                    None => {
                        ok = false;
                        None
                    }
                }
            }
            None => None,
        };
        if poll_window.is_some() && broadcasts.is_empty() && ok {
            self.error(
                v.span(),
                "[schedule] has a `poll_window` but no `broadcasts` to open it".into(),
            );
            ok = false;
        }
        let mut day = |key: &str| -> Option<Option<chrono::NaiveDate>> {
            match t.get(key) {
                Some(v) => {
                    let what = format!("[schedule] `{key}`");
                    // A bare TOML date (from = 2026-12-01) is as clear as a string.
                    let text = match v.get_ref() {
                        DeValue::Datetime(d) => Some(d.to_string()),
                        _ => self.string(&what, v),
                    }?;
                    schedule::parse_day(&text)
                        .and_then(limits::plausible_day)
                        .map(Some)
                        .map_err(|e| self.error(v.span(), format!("{what}: {e}")))
                        .ok()
                }
                None => Some(None),
            }
        };
        let from = day("from");
        let until = day("until");
        if let (Some(Some(f)), Some(Some(u))) = (from, until)
            && f > u
        {
            self.error(
                v.span(),
                format!("[schedule]: `from` ({f}) is after `until` ({u})"),
            );
            ok = false;
        }
        let closed = match t.get("closed") {
            Some(v) => self.non_empty_string("[schedule] `closed`", v).map(|c| {
                located.refs.push((
                    "[schedule] `closed`".into(),
                    c.clone(),
                    self.line_of(&v.span()),
                ));
                Some(c)
            }),
            None => Some(None),
        };
        let (timezone, from, until, closed) = (timezone?, from?, until?, closed?);
        ok.then_some(Schedule {
            timezone,
            broadcasts,
            poll_window,
            from,
            until,
            closed,
        })
    }

    fn nodes(
        &mut self,
        v: &Value<'_>,
        defaults: &InputSettings,
        located: &mut Located,
    ) -> Option<Vec<Node>> {
        let items = match v.get_ref() {
            DeValue::Array(items) => items,
            _ => {
                self.type_error("`node`", v, "a list of [[node]] tables");
                return None;
            }
        };
        if items.is_empty() {
            self.error(
                v.span(),
                "`node` is an empty list: a campaign needs at least one [[node]] (the voice menu)"
                    .into(),
            );
            return None;
        }
        let mut nodes = Vec::new();
        let mut ok = true;
        for item in items.iter() {
            match self.node(item, defaults, located) {
                Some(n) => nodes.push(n),
                None => ok = false,
            }
        }
        ok.then_some(nodes)
    }

    fn node(
        &mut self,
        v: &Value<'_>,
        defaults: &InputSettings,
        located: &mut Located,
    ) -> Option<Node> {
        let t = self.table("each [[node]]", v)?;
        let node_line = self.line_of(&v.span());
        let id = match t.get("id") {
            Some(idv) => self.non_empty_string("[[node]] `id`", idv),
            None => {
                self.error(v.span(), "a [[node]] has no `id`".into());
                None
            }
        }?;
        let place = format!("node `{id}`");
        let kind = match t.get("kind") {
            Some(kv) => match self.string(&format!("{place}: `kind`"), kv) {
                Some(k) if KINDS.contains(&k.as_str()) => Some(k),
                Some(k) => {
                    let hint = closest(&k, KINDS)
                        .map(|s| format!("did you mean `{s}`? "))
                        .unwrap_or_default();
                    self.error(
                        kv.span(),
                        format!(
                            "{place}: unknown kind `{k}`; {hint}expected one of: {}",
                            KINDS.join(", ")
                        ),
                    );
                    None
                }
                None => None,
            },
            None => {
                self.error(
                    v.span(),
                    format!(
                        "{place} has no `kind`; expected one of: {}",
                        KINDS.join(", ")
                    ),
                );
                None
            }
        }?;
        let mut allowed: Vec<&str> = vec!["id", "kind", "prompt"];
        allowed.extend(INPUT_KEYS);
        allowed.extend(kind_keys(&kind));
        let mut ok = true;
        for (k, _) in t.iter() {
            let key = k.get_ref().as_ref();
            if allowed.contains(&key) {
                continue;
            }
            ok = false;
            if let Some(owner) = KINDS.iter().find(|kd| kind_keys(kd).contains(&key)) {
                let takes = kind_keys(&kind);
                let takes = if takes.is_empty() {
                    "no key of its own".to_string()
                } else {
                    takes.join(", ")
                };
                self.error(
                    k.span(),
                    format!("{place}: `{key}` belongs to a {owner} node, not a {kind} node (a {kind} node takes: {takes})"),
                );
            } else {
                self.unknown_key(k, &place, &allowed);
            }
        }
        let prompts = match t.get("prompt") {
            Some(pv) => self.strings(&format!("{place}: `prompt`"), pv, true),
            None => {
                self.error(
                    v.span(),
                    format!("{place} has no `prompt` (the recording(s) it plays)"),
                );
                None
            }
        };
        let prompts = prompts.map(|ps| {
            let mut names = Vec::new();
            for (p, line) in ps {
                located.prompts.push((p.clone(), line));
                names.push(p);
            }
            names
        });
        if prompts.as_ref().is_some_and(Vec::is_empty) {
            self.error(v.span(), format!("{place}: `prompt` is an empty list"));
            ok = false;
        }
        let input = self.input(&place, t, defaults, located);

        // The keys of the node's kind.
        let mut target = |cx: &mut Self, key: &str, required: bool| -> Option<Option<String>> {
            match t.get(key) {
                Some(tv) => {
                    let s = cx.non_empty_string(&format!("{place}: `{key}`"), tv)?;
                    located.refs.push((
                        format!("{place}: `{key}`"),
                        s.clone(),
                        cx.line_of(&tv.span()),
                    ));
                    Some(Some(s))
                }
                None if required => {
                    let why = match key {
                        "next" => "the id of the node that follows",
                        "to" => "a SIP URI or tel: number to connect the caller to",
                        _ => "",
                    };
                    cx.error(
                        v.span(),
                        format!("{kind} node `{id}` needs `{key}` ({why})"),
                    );
                    None
                }
                None => Some(None),
            }
        };
        let kind = match kind.as_str() {
            "language" => target(self, "next", true)?.map(|next| NodeKind::Language { next }),
            "message" => target(self, "next", true)?.map(|next| NodeKind::Message { next }),
            "menu" => {
                let on_fail = target(self, "on_fail", false)?;
                let options = match t.get("options") {
                    Some(ov) => self.digit_table(&format!("{place}: `options`"), ov),
                    None => {
                        self.error(
                            v.span(),
                            format!("menu node `{id}` needs `options` (digit -> node id)"),
                        );
                        None
                    }
                }?;
                let options = options
                    .into_iter()
                    .map(|(c, line)| {
                        located.refs.push((
                            format!("{place}: `options.\"{}\"`", c.digit),
                            c.target.clone(),
                            line,
                        ));
                        c
                    })
                    .collect();
                Some(NodeKind::Menu { options, on_fail })
            }
            "question" => {
                let next = target(self, "next", true)?;
                let on_fail = target(self, "on_fail", false)?;
                let choices = match t.get("choices") {
                    Some(cv) => self.digit_table(&format!("{place}: `choices`"), cv),
                    None => {
                        self.error(
                            v.span(),
                            format!("question node `{id}` needs `choices` (digit -> choice id)"),
                        );
                        None
                    }
                }?;
                let mut seen: Vec<&str> = Vec::new();
                for (c, line) in &choices {
                    if seen.contains(&c.target.as_str()) {
                        self.error_at(*line, format!("{place}: choice id `{}` is used for two digits; each choice needs its own id", c.target));
                        ok = false;
                    }
                    seen.push(&c.target);
                }
                // The choice that asks for calls after each broadcast; any other
                // answer to the question unsubscribes.
                let subscribe = match t.get("subscribe") {
                    Some(sv) => {
                        let choice = self.non_empty_string(&format!("{place}: `subscribe`"), sv)?;
                        if !seen.contains(&choice.as_str()) {
                            self.error(sv.span(), format!("{place}: `subscribe` = `{choice}` is not one of this question's choices ({})", seen.join(", ")));
                            return None;
                        }
                        Some(choice)
                    }
                    None => None,
                };
                let choices = choices.into_iter().map(|(c, _)| c).collect();
                next.map(|next| NodeKind::Question {
                    choices,
                    next,
                    on_fail,
                    subscribe,
                })
            }
            "record" => {
                let next = target(self, "next", true)?;
                let max = match t.get("max") {
                    Some(mv) => self.duration(&format!("{place}: `max`"), mv, limits::MAX_RECORD),
                    None => {
                        self.error(
                            v.span(),
                            format!(
                                "record node `{id}` needs `max` (the longest message, e.g. \"2m\")"
                            ),
                        );
                        None
                    }
                }?;
                next.map(|next| NodeKind::Record { max, next })
            }
            "transfer" => {
                let on_fail = target(self, "on_fail", false)?;
                let to = match t.get("to") {
                    Some(tv) => {
                        let to = self.non_empty_string(&format!("{place}: `to`"), tv)?;
                        if !(to.starts_with("sip:")
                            || to.starts_with("sips:")
                            || to.starts_with("tel:"))
                        {
                            self.error(tv.span(), format!("{place}: `to` = `{to}` is neither a SIP URI (sip:user@host) nor a tel: number (tel:+223…)"));
                            None
                        } else {
                            Some(to)
                        }
                    }
                    None => {
                        self.error(
                            v.span(),
                            format!("transfer node `{id}` needs `to` (a SIP URI or tel: number)"),
                        );
                        None
                    }
                }?;
                Some(NodeKind::Transfer { to, on_fail })
            }
            _ => Some(NodeKind::Hangup),
        };
        let (prompts, input, kind) = (prompts?, input?, kind?);
        ok.then_some(Node {
            id,
            line: node_line,
            prompts,
            input,
            kind,
        })
    }
}

fn describe(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => format!("the text \"{s}\""),
        DeValue::Integer(i) => format!("the number {}", i.as_str()),
        DeValue::Float(f) => format!("the number {}", f.as_str()),
        DeValue::Boolean(b) => format!("{b}"),
        DeValue::Datetime(d) => format!("the date {d}"),
        DeValue::Array(_) => "a list".into(),
        DeValue::Table(_) => "a table".into(),
    }
}

/// " (did you mean `x`?)" when a known name is close to the one written.
pub(super) fn suggest(word: &str, candidates: &[&str]) -> String {
    closest(word, candidates)
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

/// The allowed key closest to a misspelt one, if it is close enough to be a typo.
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
