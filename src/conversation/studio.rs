//! The studio line, sans-IO: a broadcaster calls one of the `studio_numbers`,
//! enters a PIN, picks a campaign, a language and a prompt by keypad, hears the
//! prompt as callers hear it, records a new take after a beep, listens back,
//! and keeps it (1), records again (2) or goes back (3).
//!
//! Same shape as [`super::runtime::Conversation`], and the same channel drives
//! it (`crate::serve::call`): what it hears comes in as an [`Input`] with the
//! time, what it asks goes out as an [`Output`], in order. Two things it asks
//! are the shell's work, not a listener call's: checking the PIN against the
//! store ([`Output::CheckPin`], answered by [`Input::PinChecked`]) and keeping
//! a take ([`Output::Keep`], answered by [`Input::Kept`]: the shell stores it
//! the way the web upload does, `crate::catalog::replace`). It plays kuma's own
//! prompts ([`Sound::Studio`], in `audio/studio/`), the campaigns' prompts and
//! the take itself ([`Output::PlaySounds`]). Nothing of a studio call is
//! stored as a listener call: no row, no answers.
//!
//! The menus (every list: `1`–`9` pick, `0` the next page, `*` back):
//! 1. the PIN: six digits, then `#` (or nothing: the sixth digit sends it);
//!    `*` starts again. Three wrong PINs in a call, or a PIN the store has
//!    locked, and kuma says so and hangs up (the store counts and locks).
//! 2. the campaign, among those the PIN's token may use, each said as "press
//!    N" and its first prompt, as listeners hear it first (skipped when there
//!    is one);
//! 3. the language, in the campaign's order (the listener's language menu's
//!    order), each as "press N" and the campaign's first prompt in that
//!    language (skipped when there is one);
//! 4. the prompt, in the campaign's order, each as "press N" and the prompt
//!    itself;
//! 5. the prompt as callers hear it now, then 1 record, 2 hear it again, 3 back;
//! 6. "speak after the beep", the beep, the take (ended by `#`, silence or its
//!    length limit); the take played back; 1 keep, 2 record again, 3 back.
//!
//! A menu that gets no key for [`TIMEOUT`] after it ends, or a key it does not
//! know, is played again, twice at most; then kuma says goodbye and hangs up,
//! as listener calls do. A hang-up at any point loses nothing old: a take is
//! only ever written to the campaign when the broadcaster keeps it.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::runtime::{Input, Output};
use crate::campaign::Campaign;
use crate::flow::Outcome;
use crate::store::PinCheck;

/// The languages kuma's own studio prompts exist in (`studio_language`).
pub const LANGUAGES: [&str; 2] = ["fr", "en"];
/// Digits in a PIN (`kuma token pin`).
pub const PIN_LEN: usize = 6;
/// How long a menu waits for a key after it has played.
pub const TIMEOUT: Duration = Duration::from_secs(6);
/// Menus played again after no key or a wrong one, before goodbye.
pub const RETRIES: u32 = 2;
/// Wrong PINs in one call before kuma hangs up.
pub const PIN_TRIES: u32 = 3;
/// The longest a studio call may last.
pub const MAX_CALL: Duration = Duration::from_secs(60 * 60);
/// The longest take by phone (less when the campaign's `max_prompt` is).
pub const MAX_TAKE: Duration = Duration::from_secs(10 * 60);
/// Entries a list says at once (keys 1–9).
const PAGE: usize = 9;

/// Something the studio line plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sound {
    /// One of kuma's own studio prompts (`audio/studio/LANG/NAME.wav`), in the
    /// line's language.
    Studio(&'static str),
    /// A campaign's prompt as callers hear it now.
    Prompt {
        campaign: String,
        language: String,
        prompt: String,
    },
    /// The take just recorded, as callers would hear it.
    Take(PathBuf),
}

/// A take the broadcaster keeps: the shell stores it as the web upload does
/// and answers [`Input::Kept`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keep {
    pub campaign: String,
    pub language: String,
    pub prompt: String,
    /// The recording (8 kHz WAV).
    pub take: PathBuf,
    /// The PIN's token name: who made it, for the log.
    pub who: String,
}

/// What a studio call starts from.
pub struct Start {
    /// The campaigns served now, in the order the lists say them (by id).
    pub campaigns: Vec<Arc<Campaign>>,
    /// Where takes are recorded (one file, each take replacing the last; the
    /// shell removes it when the call ends).
    pub take: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Pin,
    CheckingPin,
    Campaigns,
    Languages,
    Prompts,
    Prompt,
    /// "Speak after the beep" plays; the recording starts when it ends.
    BeforeTake,
    Recording,
    Review,
    Keeping,
    /// The last words play; then kuma hangs up.
    Leaving(Outcome),
}

/// One studio call.
pub struct Studio {
    campaigns: Vec<Arc<Campaign>>,
    take: PathBuf,
    step: Step,
    pin: String,
    wrong_pins: u32,
    who: Option<String>,
    campaign: Option<Arc<Campaign>>,
    language: Option<String>,
    prompt: Option<String>,
    page: usize,
    retries: u32,
    /// When the menu that played gives up waiting for a key.
    deadline: Option<Instant>,
    ends_at: Instant,
    /// A menu (or the last words) plays; its end starts the wait for a key.
    playing: bool,
    recording: bool,
    outputs: VecDeque<Output>,
    finished: bool,
}

impl Studio {
    /// An answered studio call at `now`: the PIN is asked for.
    pub fn answered(start: Start, now: Instant) -> Studio {
        let mut s = Studio {
            campaigns: start.campaigns,
            take: start.take,
            step: Step::Pin,
            pin: String::new(),
            wrong_pins: 0,
            who: None,
            campaign: None,
            language: None,
            prompt: None,
            page: 0,
            retries: 0,
            deadline: None,
            ends_at: now + MAX_CALL,
            playing: false,
            recording: false,
            outputs: VecDeque::new(),
            finished: false,
        };
        s.present(Vec::new());
        s
    }

    /// The PIN's token name, once the PIN was right.
    pub fn who(&self) -> Option<&str> {
        self.who.as_deref()
    }

    /// True once [`Output::Finished`] was given and taken.
    pub fn is_finished(&self) -> bool {
        self.finished && self.outputs.is_empty()
    }

    /// When [`Studio::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.finished {
            return None;
        }
        Some(self.deadline.map_or(self.ends_at, |d| d.min(self.ends_at)))
    }

    /// Fires what is due at `now`: a menu's wait, the call's length limit.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.finished {
            return;
        }
        if now >= self.ends_at {
            self.ends_at = now + MAX_CALL;
            self.deadline = None;
            self.stop_recording();
            self.leave(Vec::new(), Outcome::TooLong);
            return;
        }
        if self.deadline.is_some_and(|d| d <= now) {
            self.deadline = None;
            self.pin.clear();
            self.retry(false);
        }
    }

    /// The next thing to do.
    pub fn poll_output(&mut self, _now: Instant) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Something the channel heard at `now`.
    pub fn handle_input(&mut self, input: Input, now: Instant) {
        if self.finished {
            return;
        }
        match input {
            Input::Key(k) => self.key(k, now),
            Input::PlayFinished => {
                if !std::mem::take(&mut self.playing) {
                    return;
                }
                match self.step {
                    Step::Leaving(outcome) => self.finish(true, outcome),
                    Step::BeforeTake => self.record(),
                    _ => self.deadline = Some(now + TIMEOUT),
                }
            }
            Input::RecordingClosed { .. } => {
                if std::mem::take(&mut self.recording) && self.step == Step::Recording {
                    self.step = Step::Review;
                    self.present(Vec::new());
                }
            }
            Input::PinChecked(answer) => self.pin_checked(answer),
            Input::Kept { ok } => {
                if self.step != Step::Keeping {
                    return;
                }
                if ok {
                    self.step = Step::Prompts;
                    self.present(vec![Sound::Studio("saved")]);
                } else {
                    self.step = Step::Prompt;
                    self.present(vec![Sound::Studio("not_saved")]);
                }
            }
            Input::HungUp => {
                self.stop_recording();
                self.finish(false, Outcome::CallerHangup);
            }
            Input::MediaTimeout | Input::TransferResult { .. } => {
                self.stop_recording();
                self.finish(true, Outcome::CallerHangup);
            }
        }
    }

    fn key(&mut self, k: char, now: Instant) {
        match self.step {
            Step::CheckingPin | Step::Keeping | Step::Leaving(_) | Step::BeforeTake => return,
            Step::Recording => {
                if k == '#' {
                    self.stop_recording();
                }
                return;
            }
            _ => {}
        }
        // A key stops the menu that plays (barge-in) and its wait.
        if std::mem::take(&mut self.playing) {
            self.outputs.push_back(Output::StopPlayback);
        }
        self.deadline = None;
        match self.step {
            Step::Pin => self.pin_key(k, now),
            Step::Campaigns => {
                let n = self.campaigns.len();
                if let Some(i) = self.pick(k, n, false) {
                    self.campaign = self.campaigns.get(i).cloned();
                    self.page = 0;
                    self.step = Step::Languages;
                    self.enter_languages();
                }
            }
            Step::Languages => {
                let langs = self.campaign_languages();
                if let Some(i) = self.pick(k, langs.len(), true) {
                    self.language = langs.get(i).cloned();
                    self.page = 0;
                    self.step = Step::Prompts;
                    self.present(Vec::new());
                }
            }
            Step::Prompts => {
                let names = self.prompt_names();
                if let Some(i) = self.pick(k, names.len(), true) {
                    self.prompt = names.get(i).cloned();
                    self.step = Step::Prompt;
                    self.present(Vec::new());
                }
            }
            Step::Prompt => match k {
                '1' => self.before_take(),
                '2' => self.present(Vec::new()),
                '3' | '*' => {
                    self.step = Step::Prompts;
                    self.present(Vec::new());
                }
                _ => self.retry(true),
            },
            Step::Review => match k {
                '1' => self.keep(),
                '2' => self.before_take(),
                '3' | '*' => {
                    self.step = Step::Prompts;
                    self.present(Vec::new());
                }
                _ => self.retry(true),
            },
            Step::CheckingPin
            | Step::Keeping
            | Step::Leaving(_)
            | Step::BeforeTake
            | Step::Recording => {}
        }
    }

    fn pin_key(&mut self, k: char, now: Instant) {
        match k {
            '0'..='9' => {
                self.pin.push(k);
                if self.pin.len() >= PIN_LEN {
                    self.check_pin();
                } else {
                    // Between digits, the same wait as after a menu.
                    self.deadline = Some(now + TIMEOUT);
                }
            }
            '#' if !self.pin.is_empty() => self.check_pin(),
            '*' => {
                self.pin.clear();
                self.present(Vec::new());
            }
            _ => self.retry(true),
        }
    }

    fn check_pin(&mut self) {
        let pin = std::mem::take(&mut self.pin);
        self.step = Step::CheckingPin;
        self.outputs.push_back(Output::CheckPin { pin });
    }

    fn pin_checked(&mut self, answer: PinCheck) {
        if self.step != Step::CheckingPin {
            return;
        }
        match answer {
            PinCheck::Ok { name, campaigns } => {
                self.campaigns
                    .retain(|c| campaigns.is_empty() || campaigns.contains(&c.id));
                self.who = Some(name);
                self.retries = 0;
                if self.campaigns.is_empty() {
                    self.leave(vec![Sound::Studio("no_campaign")], Outcome::Completed);
                    return;
                }
                self.step = Step::Campaigns;
                self.page = 0;
                if self.campaigns.len() == 1 {
                    self.campaign = self.campaigns.first().cloned();
                    self.step = Step::Languages;
                    self.enter_languages();
                } else {
                    self.present(Vec::new());
                }
            }
            PinCheck::Wrong => {
                self.wrong_pins += 1;
                if self.wrong_pins >= PIN_TRIES {
                    self.leave(vec![Sound::Studio("wrong_pin")], Outcome::Completed);
                } else {
                    self.step = Step::Pin;
                    self.present(vec![Sound::Studio("wrong_pin")]);
                }
            }
            PinCheck::Locked => self.leave(vec![Sound::Studio("locked")], Outcome::Completed),
        }
    }

    /// The languages step, or straight to the prompts when there is one.
    fn enter_languages(&mut self) {
        let langs = self.campaign_languages();
        if langs.len() == 1 {
            self.language = langs.into_iter().next();
            self.step = Step::Prompts;
        }
        self.present(Vec::new());
    }

    /// The entry a key picks in a list of `n` (on the page said), `None` when
    /// the key moved the list (next page, back) or was not known.
    fn pick(&mut self, k: char, n: usize, can_go_back: bool) -> Option<usize> {
        match k {
            '1'..='9' => {
                let i = self.page * PAGE + (k as usize - '1' as usize);
                if i < n && i < (self.page + 1) * PAGE {
                    self.retries = 0;
                    return Some(i);
                }
                self.retry(true);
            }
            '0' if n > PAGE => {
                self.page = if (self.page + 1) * PAGE < n {
                    self.page + 1
                } else {
                    0
                };
                self.present(Vec::new());
            }
            '*' if can_go_back => self.back(),
            _ => self.retry(true),
        }
        None
    }

    /// One list up: from the prompts to the languages (or the campaigns, when
    /// the language was not asked), from the languages to the campaigns.
    fn back(&mut self) {
        self.page = 0;
        let many_languages = self.campaign_languages().len() > 1;
        let many_campaigns = self.campaigns.len() > 1;
        self.step = match self.step {
            Step::Prompts if many_languages => Step::Languages,
            Step::Prompts | Step::Languages if many_campaigns => Step::Campaigns,
            other => other,
        };
        self.present(Vec::new());
    }

    fn before_take(&mut self) {
        self.retries = 0;
        self.step = Step::BeforeTake;
        self.playing = true;
        self.outputs
            .push_back(Output::PlaySounds(vec![Sound::Studio("after_beep")]));
    }

    fn record(&mut self) {
        let max = self
            .campaign
            .as_ref()
            .map_or(MAX_TAKE, |c| c.max_prompt.min(MAX_TAKE));
        self.step = Step::Recording;
        self.recording = true;
        self.outputs.push_back(Output::Record {
            path: self.take.clone(),
            max,
        });
    }

    fn keep(&mut self) {
        let (Some(c), Some(language), Some(prompt)) =
            (&self.campaign, &self.language, &self.prompt)
        else {
            return;
        };
        self.retries = 0;
        self.step = Step::Keeping;
        self.outputs.push_back(Output::Keep(Keep {
            campaign: c.id.clone(),
            language: language.clone(),
            prompt: prompt.clone(),
            take: self.take.clone(),
            who: self.who.clone().unwrap_or_default(),
        }));
    }

    fn stop_recording(&mut self) {
        if self.recording {
            self.outputs.push_back(Output::StopRecording);
        }
    }

    /// After no key or a key the menu does not know: the menu again (after
    /// "that key does nothing here"), or goodbye when it was played enough.
    fn retry(&mut self, invalid: bool) {
        self.retries += 1;
        if self.retries > RETRIES {
            self.leave(Vec::new(), Outcome::NoInput);
            return;
        }
        let before = if invalid {
            vec![Sound::Studio("invalid")]
        } else {
            Vec::new()
        };
        if self.step == Step::Pin {
            self.pin.clear();
        }
        self.present(before);
    }

    /// Says `last`, then goodbye, then hangs up.
    fn leave(&mut self, mut last: Vec<Sound>, outcome: Outcome) {
        if std::mem::take(&mut self.playing) {
            self.outputs.push_back(Output::StopPlayback);
        }
        self.deadline = None;
        self.step = Step::Leaving(outcome);
        last.push(Sound::Studio("goodbye"));
        self.playing = true;
        self.outputs.push_back(Output::PlaySounds(last));
    }

    fn finish(&mut self, hang_up: bool, outcome: Outcome) {
        if hang_up {
            self.outputs.push_back(Output::HangUp);
        }
        self.outputs.push_back(Output::Finished(outcome));
        self.finished = true;
        self.playing = false;
        self.deadline = None;
    }

    /// Plays `before`, then the current step's menu.
    fn present(&mut self, mut sounds: Vec<Sound>) {
        sounds.extend(self.menu());
        self.playing = true;
        self.deadline = None;
        self.outputs.push_back(Output::PlaySounds(sounds));
    }

    fn campaign_languages(&self) -> Vec<String> {
        self.campaign
            .as_ref()
            .map(|c| c.languages.clone())
            .unwrap_or_default()
    }

    fn prompt_names(&self) -> Vec<String> {
        self.campaign
            .as_ref()
            .map(|c| c.prompt_names().into_iter().map(String::from).collect())
            .unwrap_or_default()
    }

    /// What the current step says.
    fn menu(&self) -> Vec<Sound> {
        let first_prompt = |c: &Campaign, language: &str| {
            c.prompt_names().first().map(|p| Sound::Prompt {
                campaign: c.id.clone(),
                language: language.to_string(),
                prompt: (*p).to_string(),
            })
        };
        match self.step {
            Step::Pin => vec![Sound::Studio("welcome")],
            Step::Campaigns => {
                let entries: Vec<Option<Sound>> = self
                    .campaigns
                    .iter()
                    .map(|c| first_prompt(c, c.languages.first().map_or("", String::as_str)))
                    .collect();
                self.list("choose_campaign", entries, false)
            }
            Step::Languages => {
                let Some(c) = &self.campaign else {
                    return Vec::new();
                };
                let entries = c.languages.iter().map(|l| first_prompt(c, l)).collect();
                self.list("choose_language", entries, self.campaigns.len() > 1)
            }
            Step::Prompts => {
                let (Some(c), Some(language)) = (&self.campaign, &self.language) else {
                    return Vec::new();
                };
                let entries = self
                    .prompt_names()
                    .into_iter()
                    .map(|prompt| {
                        Some(Sound::Prompt {
                            campaign: c.id.clone(),
                            language: language.clone(),
                            prompt,
                        })
                    })
                    .collect();
                let can_go_back = self.campaigns.len() > 1 || c.languages.len() > 1;
                self.list("choose_prompt", entries, can_go_back)
            }
            Step::Prompt => {
                let mut out = vec![Sound::Studio("current")];
                if let (Some(c), Some(language), Some(prompt)) =
                    (&self.campaign, &self.language, &self.prompt)
                {
                    out.push(Sound::Prompt {
                        campaign: c.id.clone(),
                        language: language.clone(),
                        prompt: prompt.clone(),
                    });
                }
                out.push(Sound::Studio("record_menu"));
                out
            }
            Step::Review => vec![
                Sound::Studio("listen_back"),
                Sound::Take(self.take.clone()),
                Sound::Studio("keep_menu"),
            ],
            Step::CheckingPin
            | Step::BeforeTake
            | Step::Recording
            | Step::Keeping
            | Step::Leaving(_) => Vec::new(),
        }
    }

    /// A list's page: its title, "press N" and the entry's sound for each,
    /// then how to hear more and go back.
    fn list(&self, title: &'static str, entries: Vec<Option<Sound>>, back: bool) -> Vec<Sound> {
        let mut out = vec![Sound::Studio(title)];
        let n = entries.len();
        for (i, entry) in entries
            .into_iter()
            .enumerate()
            .skip(self.page * PAGE)
            .take(PAGE)
        {
            out.push(Sound::Studio("press"));
            out.push(Sound::Studio(DIGITS[i % PAGE]));
            out.extend(entry);
        }
        if n > PAGE {
            out.push(Sound::Studio("more"));
        }
        if back {
            out.push(Sound::Studio("back"));
        }
        out
    }
}

/// The studio prompts that say the keys 1 to 9.
pub const DIGITS: [&str; PAGE] = ["d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9"];

/// Calls `$then!` with the name of every studio prompt the line plays (each
/// exists in every one of [`LANGUAGES`], as `audio/studio/LANG/NAME.wav`): the
/// one list that [`PROMPTS`] and the files built into the binary
/// (`serve::studio_line`) are both made from.
macro_rules! with_studio_prompts {
    ($then:ident) => {
        $then!(
            "welcome",
            "wrong_pin",
            "locked",
            "no_campaign",
            "choose_campaign",
            "choose_language",
            "choose_prompt",
            "press",
            "more",
            "back",
            "current",
            "record_menu",
            "after_beep",
            "listen_back",
            "keep_menu",
            "saved",
            "not_saved",
            "invalid",
            "goodbye",
            "d1",
            "d2",
            "d3",
            "d4",
            "d5",
            "d6",
            "d7",
            "d8",
            "d9",
        )
    };
}
pub(crate) use with_studio_prompts;

macro_rules! name_array {
    ($($name:literal),* $(,)?) => {
        [$($name),*]
    };
}

/// Every studio prompt the line plays.
pub const PROMPTS: [&str; 28] = with_studio_prompts!(name_array);

#[cfg(test)]
mod tests {
    //! Whole studio calls with a fake clock and a fake phone that plays every
    //! prompt in two seconds, records what it is asked to, and answers the
    //! PIN check and the keep as the test says.

    use std::path::Path;

    use super::*;
    use crate::campaign::load_campaign_text;

    const PLAY: Duration = Duration::from_secs(2);

    const BETA: &str = r#"
title = "Beta"
languages = ["fr"]
audio = "../audio/stop-trafficking-mali"

[[node]]
id = "hello"
kind = "message"
prompt = "welcome"
next = "bye"

[[node]]
id = "bye"
kind = "hangup"
prompt = "goodbye"
"#;

    fn campaigns() -> Vec<Arc<Campaign>> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mali = root.join("campaigns/stop-trafficking-mali.toml");
        let text = std::fs::read_to_string(&mali).unwrap();
        let alpha = load_campaign_text(&mali, &text).unwrap();
        let beta = load_campaign_text(&root.join("campaigns/beta.toml"), BETA).unwrap();
        vec![Arc::new(beta), Arc::new(alpha)]
    }

    struct Phone {
        studio: Studio,
        now: Instant,
        outputs: Vec<Output>,
        playing_until: Option<Instant>,
        recording: Option<Instant>,
        /// What the store says of the next PIN.
        pin_answer: PinCheck,
        pins: Vec<String>,
        keep_ok: bool,
        kept: Vec<Keep>,
    }

    fn ok(campaigns: &[&str]) -> PinCheck {
        PinCheck::Ok {
            name: "presenter".into(),
            campaigns: campaigns.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn phone(pin_answer: PinCheck) -> Phone {
        let now = Instant::now();
        let studio = Studio::answered(
            Start {
                campaigns: campaigns(),
                take: PathBuf::from("/data/studio/take-1.wav"),
            },
            now,
        );
        let mut p = Phone {
            studio,
            now,
            outputs: Vec::new(),
            playing_until: None,
            recording: None,
            pin_answer,
            pins: Vec::new(),
            keep_ok: true,
            kept: Vec::new(),
        };
        p.perform();
        p
    }

    impl Phone {
        fn perform(&mut self) {
            while let Some(o) = self.studio.poll_output(self.now) {
                self.outputs.push(o.clone());
                match o {
                    Output::PlaySounds(s) if s.is_empty() => {
                        self.studio.handle_input(Input::PlayFinished, self.now)
                    }
                    Output::PlaySounds(_) => self.playing_until = Some(self.now + PLAY),
                    Output::StopPlayback => self.playing_until = None,
                    Output::Record { .. } => {
                        self.playing_until = None;
                        self.recording = Some(self.now);
                    }
                    Output::StopRecording => {
                        if let Some(since) = self.recording.take() {
                            let duration = self.now - since;
                            self.studio
                                .handle_input(Input::RecordingClosed { duration }, self.now);
                        }
                    }
                    Output::CheckPin { pin } => {
                        self.pins.push(pin);
                        let answer = Input::PinChecked(self.pin_answer.clone());
                        self.studio.handle_input(answer, self.now);
                    }
                    Output::Keep(k) => {
                        self.kept.push(k);
                        let ok = self.keep_ok;
                        self.studio.handle_input(Input::Kept { ok }, self.now);
                    }
                    _ => {}
                }
            }
        }

        fn wait(&mut self, d: Duration) {
            let until = self.now + d;
            loop {
                let mut next = until;
                if let Some(t) = self.playing_until {
                    next = next.min(t);
                }
                if let Some(t) = self.studio.poll_timeout() {
                    next = next.min(t.max(self.now));
                }
                self.now = next;
                if self.playing_until.is_some_and(|t| t <= self.now) {
                    self.playing_until = None;
                    self.studio.handle_input(Input::PlayFinished, self.now);
                }
                self.studio.handle_timeout(self.now);
                self.perform();
                if self.now >= until || self.studio.is_finished() {
                    return;
                }
            }
        }

        fn hear(&mut self, input: Input) {
            self.studio.handle_input(input, self.now);
            self.perform();
        }

        /// Presses keys, one a second, once what plays has played.
        fn keys(&mut self, keys: &str) {
            self.wait(PLAY);
            for k in keys.chars() {
                self.hear(Input::Key(k));
                self.wait(Duration::from_secs(1));
            }
        }

        /// The last sounds asked for.
        fn last_play(&self) -> Vec<Sound> {
            self.outputs
                .iter()
                .rev()
                .find_map(|o| match o {
                    Output::PlaySounds(s) if !s.is_empty() => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default()
        }

        fn outcome(&self) -> Option<Outcome> {
            self.outputs.iter().find_map(|o| match o {
                Output::Finished(o) => Some(*o),
                _ => None,
            })
        }

        fn hung_up(&self) -> bool {
            self.outputs.contains(&Output::HangUp)
        }
    }

    fn studio(name: &'static str) -> Sound {
        Sound::Studio(name)
    }

    fn prompt(campaign: &str, language: &str, prompt: &str) -> Sound {
        Sound::Prompt {
            campaign: campaign.into(),
            language: language.into(),
            prompt: prompt.into(),
        }
    }

    #[test]
    fn the_pin_is_asked_for_then_sent_after_six_digits_or_hash() {
        let mut p = phone(PinCheck::Wrong);
        assert_eq!(p.last_play(), vec![studio("welcome")]);
        p.keys("123456");
        assert_eq!(p.pins, vec!["123456".to_string()]);
        assert_eq!(p.last_play(), vec![studio("wrong_pin"), studio("welcome")]);
        p.keys("12*654321");
        assert_eq!(
            p.pins.last().map(String::as_str),
            Some("654321"),
            "* starts again"
        );
        p.keys("99#");
        assert_eq!(p.pins.last().map(String::as_str), Some("99"));
        // Three wrong PINs: kuma says so, goodbye, and hangs up; no hint.
        assert_eq!(p.last_play(), vec![studio("wrong_pin"), studio("goodbye")]);
        p.wait(PLAY);
        assert!(p.hung_up());
        assert!(p.studio.is_finished());
        assert!(p.kept.is_empty());
    }

    #[test]
    fn a_locked_pin_is_told_and_the_line_hangs_up() {
        let mut p = phone(PinCheck::Locked);
        p.keys("123456");
        assert_eq!(p.last_play(), vec![studio("locked"), studio("goodbye")]);
        p.wait(PLAY);
        assert!(p.hung_up());
        assert_eq!(p.outcome(), Some(Outcome::Completed));
    }

    #[test]
    fn a_token_limited_to_one_campaign_hears_only_that_one() {
        let mut p = phone(ok(&["beta"]));
        p.keys("123456");
        // One campaign, one language: straight to its prompts.
        assert_eq!(
            p.last_play(),
            vec![
                studio("choose_prompt"),
                studio("press"),
                studio("d1"),
                prompt("beta", "fr", "welcome"),
                studio("press"),
                studio("d2"),
                prompt("beta", "fr", "goodbye"),
            ]
        );
        let said_alpha = p.outputs.iter().any(|o| {
            matches!(o, Output::PlaySounds(s) if s.iter().any(|s| matches!(s, Sound::Prompt { campaign, .. } if campaign == "stop-trafficking-mali")))
        });
        assert!(!said_alpha, "the other campaign is never offered");
        // A token for no campaign that is served: told, and goodbye.
        let mut p = phone(ok(&["gone"]));
        p.keys("123456");
        assert_eq!(
            p.last_play(),
            vec![studio("no_campaign"), studio("goodbye")]
        );
    }

    /// To the prompt menu of `main_menu` in Bambara of the example.
    fn to_prompt() -> Phone {
        let mut p = phone(ok(&[]));
        p.keys("123456");
        let menu = p.last_play();
        assert_eq!(menu.first(), Some(&studio("choose_campaign")));
        assert!(menu.contains(&prompt("beta", "fr", "welcome")));
        assert!(menu.contains(&prompt("stop-trafficking-mali", "bm", "choose_language")));
        p.keys("2");
        let menu = p.last_play();
        assert_eq!(
            menu,
            vec![
                studio("choose_language"),
                studio("press"),
                studio("d1"),
                prompt("stop-trafficking-mali", "bm", "choose_language"),
                studio("press"),
                studio("d2"),
                prompt("stop-trafficking-mali", "fr", "choose_language"),
                studio("press"),
                studio("d3"),
                prompt("stop-trafficking-mali", "snk", "choose_language"),
                studio("back"),
            ]
        );
        p.keys("1");
        let menu = p.last_play();
        assert_eq!(menu.first(), Some(&studio("choose_prompt")));
        assert!(menu.contains(&studio("more")), "more than nine prompts");
        let names = p.studio.prompt_names();
        let i = names.iter().position(|n| n == "main_menu").unwrap();
        assert!(i < 9, "on the first page");
        p.keys(&(i + 1).to_string());
        assert_eq!(
            p.last_play(),
            vec![
                studio("current"),
                prompt("stop-trafficking-mali", "bm", "main_menu"),
                studio("record_menu"),
            ]
        );
        p
    }

    fn record(p: &mut Phone, seconds: u64) {
        p.keys("1");
        assert_eq!(p.last_play(), vec![studio("after_beep")]);
        p.wait(PLAY);
        assert!(
            matches!(p.outputs.last(), Some(Output::Record { path, .. }) if path.ends_with("take-1.wav"))
        );
        p.wait(Duration::from_secs(seconds));
        p.hear(Input::Key('#'));
        assert_eq!(
            p.last_play(),
            vec![
                studio("listen_back"),
                Sound::Take(PathBuf::from("/data/studio/take-1.wav")),
                studio("keep_menu"),
            ]
        );
    }

    #[test]
    fn a_take_is_recorded_heard_and_kept() {
        let mut p = to_prompt();
        record(&mut p, 3);
        assert!(p.kept.is_empty(), "nothing kept before 1");
        p.keys("1");
        assert_eq!(
            p.kept,
            vec![Keep {
                campaign: "stop-trafficking-mali".into(),
                language: "bm".into(),
                prompt: "main_menu".into(),
                take: PathBuf::from("/data/studio/take-1.wav"),
                who: "presenter".into(),
            }]
        );
        let after = p.last_play();
        assert_eq!(after.first(), Some(&studio("saved")));
        assert_eq!(
            after.get(1),
            Some(&studio("choose_prompt")),
            "back to the list"
        );
        assert!(!p.hung_up());
    }

    #[test]
    fn a_retake_replaces_the_take_and_a_refused_one_is_said() {
        let mut p = to_prompt();
        record(&mut p, 3);
        p.keys("2"); // record again
        assert_eq!(p.last_play(), vec![studio("after_beep")]);
        p.wait(PLAY);
        p.wait(Duration::from_secs(2));
        p.hear(Input::Key('#'));
        p.keep_ok = false;
        p.keys("1");
        assert_eq!(p.kept.len(), 1, "one keep, of the second take");
        assert_eq!(p.last_play().first(), Some(&studio("not_saved")));
        assert_eq!(p.last_play().last(), Some(&studio("record_menu")));
    }

    #[test]
    fn a_hang_up_while_recording_closes_the_take_and_keeps_nothing() {
        let mut p = to_prompt();
        p.keys("1");
        p.wait(PLAY);
        p.wait(Duration::from_secs(4));
        p.hear(Input::HungUp);
        assert!(p.outputs.contains(&Output::StopRecording));
        assert_eq!(p.outcome(), Some(Outcome::CallerHangup));
        assert!(p.studio.is_finished());
        assert!(p.kept.is_empty(), "the old prompt stays");
        assert!(
            !p.outputs.iter().any(|o| matches!(o, Output::Keep(_))),
            "nothing to store"
        );
    }

    #[test]
    fn silence_replays_the_menu_twice_then_goodbye() {
        let mut p = phone(ok(&[]));
        p.wait(PLAY + TIMEOUT);
        assert_eq!(p.last_play(), vec![studio("welcome")]);
        p.wait(PLAY + TIMEOUT);
        p.wait(PLAY + TIMEOUT);
        assert_eq!(p.last_play(), vec![studio("goodbye")]);
        p.wait(PLAY);
        assert!(p.hung_up());
        assert_eq!(p.outcome(), Some(Outcome::NoInput));
        let welcomes = p
            .outputs
            .iter()
            .filter(|o| **o == Output::PlaySounds(vec![studio("welcome")]))
            .count();
        assert_eq!(welcomes, 3, "asked, then twice again");
    }

    #[test]
    fn zero_turns_the_page_and_star_goes_back() {
        let mut p = phone(ok(&[]));
        p.keys("123456");
        p.keys("2"); // the example campaign
        p.keys("2"); // fr
        p.keys("0");
        let page = p.last_play();
        let names = p.studio.prompt_names();
        assert_eq!(
            page.get(1..4).map(<[Sound]>::to_vec),
            Some(vec![
                studio("press"),
                studio("d1"),
                prompt("stop-trafficking-mali", "fr", &names[9]),
            ])
        );
        p.keys("*");
        assert_eq!(p.last_play().first(), Some(&studio("choose_language")));
        p.keys("*");
        assert_eq!(p.last_play().first(), Some(&studio("choose_campaign")));
        p.keys("7");
        assert_eq!(
            p.last_play().first(),
            Some(&studio("invalid")),
            "no campaign 7"
        );
    }
}
