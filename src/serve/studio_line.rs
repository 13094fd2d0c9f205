//! The studio line's shell: a call to one of the `studio_numbers` is answered
//! like any call (`super::call`'s media: RTP, keys, the pacer, the recorder)
//! but drives a [`Studio`] instead of a listener's conversation. What is the
//! studio's own is here: its prompts (kuma's, in `audio/studio/`, built into
//! the binary), the sounds it plays (a campaign's prompts from the catalog,
//! the take prepared as callers would hear it), the PIN check against the
//! store, and keeping a take (`crate::catalog::replace`, as the web upload
//! does). A studio call has no row in the store and no answers; its start and
//! end are logged with the caller's pseudonym and the PIN's token name.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use chrono::Utc;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::Shared;
use super::call::{self, Answered};
use super::http::names;
use super::isolation::CallGuard;
use super::sip_shell::Command;
use crate::audio::prepare::{Settings, prepare_bytes};
use crate::audio::{Prompt, PromptSet};
use crate::catalog::replace::NewRecording;
use crate::conversation::runtime::{Conversation, Input, Output};
use crate::conversation::studio::{self, Keep, Sound, Studio};
use crate::sip::CallId;
use crate::store::PinKey;

/// What the SIP side knows of a call to the studio line.
pub struct StudioStart {
    pub call: CallId,
    /// The caller's number: turned into a pseudonym at once, never stored or logged.
    pub caller: String,
    pub offer: Option<Vec<u8>>,
    pub source: SocketAddr,
}

/// What the media shell drives: a listener's call or a studio call.
pub enum Talker {
    Listener(Conversation),
    Studio(StudioCall),
}

/// A studio call and what its shell needs of it.
pub struct StudioCall {
    studio: Studio,
    /// The caller's pseudonym (the store counts wrong PINs by it).
    caller: String,
    key: PinKey,
}

impl Talker {
    pub fn handle_input(&mut self, input: Input, now: std::time::Instant) {
        match self {
            Talker::Listener(c) => c.handle_input(input, now),
            Talker::Studio(s) => s.studio.handle_input(input, now),
        }
    }

    pub fn handle_timeout(&mut self, now: std::time::Instant) {
        match self {
            Talker::Listener(c) => c.handle_timeout(now),
            Talker::Studio(s) => s.studio.handle_timeout(now),
        }
    }

    pub fn poll_timeout(&self) -> Option<std::time::Instant> {
        match self {
            Talker::Listener(c) => c.poll_timeout(),
            Talker::Studio(s) => s.studio.poll_timeout(),
        }
    }

    pub fn poll_output(&mut self, now: std::time::Instant) -> Option<Output> {
        match self {
            Talker::Listener(c) => c.poll_output(now),
            Talker::Studio(s) => {
                let out = s.studio.poll_output(now);
                if let Some(Output::Finished(outcome)) = &out {
                    tracing::info!(
                        who = s.studio.who().unwrap_or(""),
                        ?outcome,
                        "studio call ended"
                    );
                }
                out
            }
        }
    }

    /// A write due right after the one being performed (a listener's call;
    /// the studio line's writes are its own).
    pub fn next_write(&mut self) -> Option<crate::conversation::runtime::Write> {
        match self {
            Talker::Listener(c) => c.next_write(),
            Talker::Studio(_) => None,
        }
    }

    pub fn is_finished(&self) -> bool {
        match self {
            Talker::Listener(c) => c.is_finished(),
            Talker::Studio(s) => s.studio.is_finished(),
        }
    }

    /// The store's answer to a PIN entered on the studio line: a future that
    /// owns what it needs, so the call goes on (its audio, its keys) while the
    /// store checks.
    pub fn check_pin(
        &self,
        shared: &Shared,
        pin: String,
    ) -> impl std::future::Future<Output = Input> + Send + 'static {
        let who = match self {
            Talker::Studio(s) => Some((s.key.clone(), s.caller.clone())),
            Talker::Listener(_) => None,
        };
        check_pin(shared.store.clone(), who, pin)
    }
}

/// See [`Talker::check_pin`]; `who` is the PIN key and the caller's pseudonym
/// (`None`: not a studio call, so no PIN is right).
async fn check_pin(
    store: crate::store::Store,
    who: Option<(PinKey, String)>,
    pin: String,
) -> Input {
    let Some((key, caller)) = who else {
        return Input::PinChecked(crate::store::PinCheck::Wrong);
    };
    match store
        .tokens()
        .check_pin(&key, &pin, &caller, Utc::now())
        .await
    {
        Ok(answer) => {
            let result = match &answer {
                crate::store::PinCheck::Ok { name, .. } => {
                    tracing::info!(who = %name, "studio PIN accepted");
                    "ok"
                }
                other => {
                    tracing::info!(answer = ?other, "studio PIN refused");
                    if *other == crate::store::PinCheck::Locked {
                        "locked"
                    } else {
                        "wrong"
                    }
                }
            };
            metrics::counter!(names::STUDIO_PINS, "result" => result).increment(1);
            Input::PinChecked(answer)
        }
        Err(e) => {
            // No store, no studio: nobody gets in while it cannot check.
            tracing::warn!(error = %e, "studio PIN not checked: the store is away");
            metrics::counter!(names::STUDIO_PINS, "result" => "unchecked").increment(1);
            Input::PinChecked(crate::store::PinCheck::Wrong)
        }
    }
}

/// The studio prompts' files, built into the binary: (name, French, English).
macro_rules! studio_files {
    ($($name:literal),* $(,)?) => {
        &[$((
            $name,
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/audio/studio/fr/", $name, ".wav")) as &[u8],
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/audio/studio/en/", $name, ".wav")) as &[u8],
        )),*]
    };
}

static STUDIO_FILES: &[(&str, &[u8], &[u8])] = studio::with_studio_prompts!(studio_files);

/// kuma's studio prompts, prepared once (as a campaign's are), by language.
fn studio_prompts() -> &'static PromptSet {
    static SET: OnceLock<PromptSet> = OnceLock::new();
    SET.get_or_init(|| {
        let mut set = PromptSet::new();
        for (name, fr, en) in STUDIO_FILES {
            for (lang, bytes) in [("fr", fr), ("en", en)] {
                match prepare_bytes(bytes.to_vec(), Some("wav"), &Settings::default()) {
                    Ok(p) => set.insert(lang, name, p.prompt()),
                    Err(e) => tracing::error!(%lang, %name, error = %e, "studio prompt unusable"),
                }
            }
        }
        set
    })
}

/// What [`Sound`]s play, those that can be played, in order. A take is
/// prepared off the call's task (it may be minutes long).
pub async fn sounds(shared: &Shared, sounds: Vec<Sound>) -> Vec<Prompt> {
    let mut out = Vec::with_capacity(sounds.len());
    for s in sounds {
        let prompt = match s {
            Sound::Studio(name) => studio_prompts()
                .get(&shared.config.studio_language, name)
                .cloned(),
            Sound::Prompt {
                campaign,
                language,
                prompt,
            } => shared
                .catalog()
                .get(&campaign)
                .and_then(|(_, set)| set.get(&language, &prompt).cloned()),
            Sound::Take(path) => tokio::task::spawn_blocking(move || take(&path))
                .await
                .ok()
                .flatten(),
        };
        out.extend(prompt);
    }
    out
}

/// The take at `path` as callers would hear it, if it can be played.
fn take(path: &Path) -> Option<Prompt> {
    let bytes = std::fs::read(path).ok()?;
    match prepare_bytes(bytes, Some("wav"), &Settings::default()) {
        Ok(p) => Some(p.prompt()),
        Err(e) => {
            tracing::info!(error = %e, "the take cannot be played back");
            None
        }
    }
}

/// What `kuma serve` says at start of the studio line: its numbers, and the
/// campaigns whose numbers it takes over.
pub fn report(config: &super::ServeConfig, catalog: &crate::catalog::Catalog) -> Vec<String> {
    if config.studio_numbers.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![format!(
        "studio line on numbers [{}] ({}): broadcasters record prompts with their PIN (kuma token pin)",
        config.studio_numbers.join(", "),
        config.studio_language
    )];
    for c in catalog.campaigns() {
        for n in c.numbers.iter().chain(&c.callback_numbers) {
            if config.studio_numbers.contains(n) {
                lines.push(format!(
                    "number {n} of campaign `{}` is a studio number: its calls reach the studio line",
                    c.id
                ));
            }
        }
    }
    lines
}

/// Stores a kept take as the prompt's new recording, as the web upload does.
pub async fn keep(shared: &Shared, k: Keep) -> Input {
    let Some((campaign, _)) = shared.catalog().get(&k.campaign) else {
        tracing::warn!(campaign = %k.campaign, "take not kept: the campaign is no longer served");
        return Input::Kept { ok: false };
    };
    let bytes = match tokio::fs::read(&k.take).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "take not kept: cannot read it");
            return Input::Kept { ok: false };
        }
    };
    let new = NewRecording {
        campaign,
        language: k.language,
        prompt: k.prompt,
        ext: "wav",
        bytes,
        who: k.who,
        via: "phone",
    };
    let ok = match shared.catalog.replace_prompt(new, &shared.data).await {
        Ok(_) => true,
        Err(e) => {
            tracing::info!(error = %e, "take not kept");
            false
        }
    };
    let result = if ok { "stored" } else { "refused" };
    metrics::counter!(names::STUDIO_TAKES, "result" => result).increment(1);
    Input::Kept { ok }
}

/// Runs a studio call to its end, then tells the SIP side it is gone.
pub async fn run(
    shared: Arc<Shared>,
    start: StudioStart,
    events: mpsc::UnboundedReceiver<crate::sip::Event>,
    cmd: mpsc::UnboundedSender<Command>,
) {
    let id = start.call;
    let span = tracing::info_span!("studio", call = %id, caller = tracing::field::Empty);
    if let Err(e) = answer(&shared, start, events, &cmd).instrument(span).await {
        tracing::warn!(call = %id, error = %e, "studio call failed");
        let _ = cmd.send(Command::HangUp { call: id });
    }
    let _ = cmd.send(Command::Gone { call: id });
}

async fn answer(
    shared: &Arc<Shared>,
    start: StudioStart,
    mut events: mpsc::UnboundedReceiver<crate::sip::Event>,
    cmd: &mpsc::UnboundedSender<Command>,
) -> anyhow::Result<()> {
    let StudioStart {
        call: id,
        caller,
        offer,
        source,
    } = start;
    let mut guard = CallGuard::new(cmd, id, &shared.store);
    let caller = shared.pseudonyms.pseudonym(&caller);
    tracing::Span::current().record("caller", caller.as_str());
    tracing::info!("studio call");
    let reject = |code: u16| {
        let _ = cmd.send(Command::Reject { call: id, code });
    };
    let Some(offer) = offer else {
        reject(488);
        guard.done();
        return Ok(());
    };
    let (socket, local, answer) = match call::answer_offer(shared, &offer, source) {
        Ok(media) => media,
        Err((code, _)) => {
            reject(code);
            guard.done();
            return Ok(());
        }
    };
    // Prepared before the first prompt is due (once per process).
    tokio::task::spawn_blocking(|| {
        studio_prompts();
    })
    .await?;
    let _ = cmd.send(Command::Accept {
        call: id,
        sdp: answer.sdp,
    });
    // No audio before the caller's ACK (see `call::confirmed`).
    if call::confirmed(&mut events).await.is_err() {
        guard.done();
        return Ok(());
    }
    let take: PathBuf = shared
        .data
        .join("studio")
        .join(format!("take-{}.wav", rand::random::<u64>()));
    let studio = Studio::answered(
        studio::Start {
            campaigns: shared.catalog().campaigns(),
            take: take.clone(),
        },
        tokio::time::Instant::now().into_std(),
    );
    let talker = Talker::Studio(StudioCall {
        studio,
        caller,
        key: PinKey::new(&shared.pseudonyms),
    });
    let answered = Answered {
        id,
        prompts: Arc::new(PromptSet::new()),
        socket,
        media: answer.media,
        local,
        source,
        guard,
    };
    let out = call::drive(shared, answered, talker, events, cmd).await;
    // A take that was not kept goes with the call.
    if let Err(e) = tokio::fs::remove_file(&take).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, "cannot remove the studio take");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_studio_prompt_is_built_in_and_plays_in_both_languages() {
        for name in studio::PROMPTS {
            assert!(
                STUDIO_FILES.iter().any(|(n, _, _)| *n == name),
                "{name} is not built in"
            );
        }
        let set = studio_prompts();
        for lang in studio::LANGUAGES {
            for name in studio::PROMPTS {
                let p = set
                    .get(lang, name)
                    .unwrap_or_else(|| panic!("{lang}/{name} does not play"));
                assert!(!p.is_empty(), "{lang}/{name} is empty");
            }
        }
    }
}
