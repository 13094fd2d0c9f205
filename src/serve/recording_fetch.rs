//! Fetching the voice messages a provider recorded: it announces each by URL, often
//! before the file is ready, so each fetch is tried a few times with growing pauses.
//!
//! The announcement is stored first (`recording_fetches`, pending), so a message is
//! never lost: a fetch that keeps failing stays pending and is tried again when
//! `kuma serve` next starts (and every 15 minutes), up to [`MAX_ATTEMPTS`] tries in all, after which it is
//! marked failed (its URL and last error stay for an operator). A fetched message
//! becomes an 8 kHz WAV beside the SIP recordings
//! (`DATA/recordings/CAMPAIGN/DAY/CALL-HHMMSS-NODE.wav`) and gets its `recordings`
//! row (with its measured duration) in the transaction that marks the fetch done.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Semaphore, mpsc};

use super::Shared;
use crate::audio::recording::WavRecorder;
use crate::store::PendingFetch;

/// Tries per round (a round starts when the provider announces the recording, or
/// when `kuma serve` starts).
pub const TRIES_PER_ROUND: u32 = 5;
/// Tries in all before a fetch is marked failed.
pub const MAX_ATTEMPTS: i64 = 20;
/// The pause after the first failed try; it doubles after each.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// The largest recording accepted (ten minutes of WAV at 16 kHz is 19 MB).
const MAX_BYTES: usize = 50 * 1024 * 1024;
/// The longest message kept.
const MAX_DURATION: Duration = Duration::from_secs(15 * 60);
/// Fetches at once.
const PARALLEL: usize = 4;
/// How often the fetches left pending are tried again (besides at start-up).
const SWEEP_EVERY: Duration = Duration::from_secs(15 * 60);

/// Starts the fetcher: it retries what was left pending, then fetches each id sent.
pub fn spawn(shared: Arc<Shared>) -> mpsc::UnboundedSender<i64> {
    let (tx, mut rx) = mpsc::unbounded_channel::<i64>();
    tokio::spawn(async move {
        let policy = Arc::new(shared.config.webhooks.recording_hosts.clone());
        let client = match policy.client() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "no HTTP client: provider recordings stay pending");
                return;
            }
        };
        let fetcher = Arc::new(Fetcher {
            shared,
            client,
            policy,
            running: Mutex::new(HashSet::new()),
            slots: Semaphore::new(PARALLEL),
        });
        // The first tick is at once: what was left pending is retried at start-up.
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        loop {
            tokio::select! {
                _ = sweep.tick() => match fetcher.shared.store.pending_fetches().await {
                    Ok(pending) => {
                        if !pending.is_empty() {
                            tracing::info!(count = pending.len(), "retrying pending provider recordings");
                        }
                        for f in pending {
                            fetcher.start(f.id);
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "cannot read the pending recordings"),
                },
                id = rx.recv() => {
                    let Some(id) = id else { break };
                    fetcher.start(id);
                }
            }
        }
    });
    tx
}

struct Fetcher {
    shared: Arc<Shared>,
    client: reqwest::Client,
    /// Where recordings may come from: a URL outside it is never requested.
    policy: Arc<super::fetch_policy::FetchPolicy>,
    /// Fetches in progress, so one is never run twice at once.
    running: Mutex<HashSet<i64>>,
    slots: Semaphore,
}

impl Fetcher {
    /// Runs a round for fetch `id` unless one is running. The fetch is read again
    /// once it is marked running: a list read earlier may still show it pending
    /// after a round that just ended refused or stored it, and it must not be
    /// requested (or counted) twice.
    fn start(self: &Arc<Self>, id: i64) {
        let fresh = match self.running.lock() {
            Ok(mut set) => set.insert(id),
            Err(poisoned) => poisoned.into_inner().insert(id),
        };
        if !fresh {
            return;
        }
        let me = Arc::clone(self);
        tokio::spawn(async move {
            match me.shared.store.pending_fetch(id).await {
                Ok(Some(f)) => me.round(f).await,
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(fetch = id, error = %e, "cannot read the pending recording")
                }
            }
            match me.running.lock() {
                Ok(mut set) => set.remove(&id),
                Err(poisoned) => poisoned.into_inner().remove(&id),
            };
        });
    }

    /// Up to [`TRIES_PER_ROUND`] tries, pausing longer after each failure.
    async fn round(&self, f: PendingFetch) {
        if let Err(why) = self.policy.check(&f.url) {
            return self.refuse(&f, &why).await;
        }
        let mut pause = FIRST_PAUSE;
        for attempt in 0..TRIES_PER_ROUND {
            let outcome = {
                let Ok(_slot) = self.slots.acquire().await else {
                    return;
                };
                self.try_once(&f).await
            };
            let store = &self.shared.store;
            match outcome {
                Ok((file, duration)) => {
                    let file_str = file.to_string_lossy().into_owned();
                    match store
                        .fetch_done(f.id, &f.node, &file_str, duration, Utc::now())
                        .await
                    {
                        Ok(Some(rid)) => {
                            tracing::info!(
                                fetch = f.id,
                                recording = rid,
                                call = f.call,
                                "provider recording stored"
                            )
                        }
                        Ok(None) => {
                            let _ = std::fs::remove_file(&file);
                        }
                        Err(e) => {
                            tracing::error!(fetch = f.id, error = %e, "cannot store the recording row");
                            let _ = std::fs::remove_file(&file);
                        }
                    }
                    return;
                }
                Err(Failure::Refused(why)) => return self.refuse(&f, &why).await,
                Err(Failure::Failed(error)) => {
                    let tries = f.attempts + i64::from(attempt) + 1;
                    let give_up = tries >= MAX_ATTEMPTS;
                    tracing::warn!(fetch = f.id, call = f.call, tries, %error, "provider recording not fetched yet");
                    if let Err(e) = store.fetch_failed(f.id, &error, give_up, Utc::now()).await {
                        tracing::error!(fetch = f.id, error = %e, "cannot count the failed fetch");
                    }
                    if give_up {
                        return;
                    }
                    if attempt + 1 < TRIES_PER_ROUND {
                        tokio::time::sleep(pause).await;
                        pause *= 2;
                    }
                }
            }
        }
    }

    /// A URL the policy refuses (at once, on a redirect, or by its address): never
    /// requested (or not followed), marked failed, and not tried again.
    async fn refuse(&self, f: &PendingFetch, why: &str) {
        metrics::counter!(super::http::names::RECORDINGS_REFUSED).increment(1);
        tracing::warn!(fetch = f.id, call = f.call, reason = %why, "provider recording refused: not fetched (recording_hosts)");
        let error = format!("refused: {why}");
        if let Err(e) = self
            .shared
            .store
            .fetch_failed(f.id, &error, true, Utc::now())
            .await
        {
            tracing::error!(fetch = f.id, error = %e, "cannot mark the refused fetch");
        }
    }

    /// One GET, then the audio decoded into an 8 kHz WAV: its path and duration.
    async fn try_once(&self, f: &PendingFetch) -> Result<(PathBuf, Duration), Failure> {
        let mut request = self.client.get(&f.url);
        let token = self.shared.config.webhooks.twilio_auth_token.as_ref();
        if let Some((sid, token)) = twilio_credentials(token, f) {
            request = request.basic_auth(sid, Some(token));
        }
        let response = request.send().await.map_err(|e| {
            if e.is_redirect() || super::fetch_policy::refused_address(&e) {
                Failure::Refused(super::fetch_policy::error_chain(&e))
            } else {
                Failure::Failed(format!("request failed: {e}"))
            }
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP {status}").into());
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BYTES as u64)
        {
            return Err(format!("larger than {MAX_BYTES} bytes").into());
        }
        let ext = extension(
            response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            &f.url,
        );
        let mut response = response;
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("download failed: {e}"))?
        {
            if bytes.len() + chunk.len() > MAX_BYTES {
                return Err(format!("larger than {MAX_BYTES} bytes").into());
            }
            bytes.extend_from_slice(&chunk);
        }
        if bytes.is_empty() {
            return Err(Failure::Failed("empty file".into()));
        }
        let day = f.created_at.format("%Y-%m-%d").to_string();
        let dir = self
            .shared
            .data
            .join("recordings")
            .join(&f.campaign)
            .join(day);
        let name = format!(
            "{}-{}-{}.wav",
            f.call,
            f.created_at.format("%H%M%S"),
            f.node
        );
        let id = f.id;
        tokio::task::spawn_blocking(move || store_wav(&dir, &name, id, ext, &bytes))
            .await
            .map_err(|e| format!("decoder task failed: {e}"))?
            .map_err(Failure::Failed)
    }
}

/// Why a try did not bring the recording.
enum Failure {
    /// The policy refuses it (a redirect elsewhere, no public address): final.
    Refused(String),
    /// Worth another try (not ready yet, a network error, a bad file).
    Failed(String),
}

impl From<String> for Failure {
    fn from(s: String) -> Failure {
        Failure::Failed(s)
    }
}

/// Twilio accounts may require HTTP authentication for recordings: the account
/// SID (from the recording's URL) and the auth token, sent only to Twilio's own
/// API over HTTPS.
fn twilio_credentials(
    token: Option<&super::config::Secret>,
    f: &PendingFetch,
) -> Option<(String, String)> {
    if f.provider != "twilio" {
        return None;
    }
    let token = token?;
    let rest = f.url.strip_prefix("https://api.twilio.com/")?;
    let mut parts = rest.split('/');
    let sid = parts.by_ref().skip_while(|p| *p != "Accounts").nth(1)?;
    (sid.starts_with("AC") && sid.chars().all(|c| c.is_ascii_alphanumeric()))
        .then(|| (sid.to_string(), token.0.clone()))
}

/// The format hint for the decoder, from the content type or the URL.
fn extension(content_type: Option<&str>, url: &str) -> &'static str {
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    if ct.contains("mpeg") || ct.contains("mp3") || url.ends_with(".mp3") {
        "mp3"
    } else {
        "wav"
    }
}

/// Decodes `bytes` (any format the prompt decoder reads) to 8 kHz mono and writes
/// it as `dir/name`.
fn store_wav(
    dir: &Path,
    name: &str,
    id: i64,
    ext: &str,
    bytes: &[u8],
) -> Result<(PathBuf, Duration), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let part = dir.join(format!(".fetch-{id}.{ext}"));
    std::fs::write(&part, bytes).map_err(|e| format!("cannot write {}: {e}", part.display()))?;
    let decoded = crate::audio::prepare::decode_file_8k(&part, MAX_DURATION);
    let _ = std::fs::remove_file(&part);
    let (samples, _) = decoded.map_err(|e| format!("not a recording kuma can read: {e}"))?;
    let path = dir.join(name);
    let mut wav = WavRecorder::create(&path).map_err(|e| e.to_string())?;
    let pcm: Vec<i16> = samples
        .iter()
        .map(|s| (s.clamp(-1.0, 1.0) * f32::from(i16::MAX)) as i16)
        .collect();
    for frame in pcm.chunks(crate::audio::prompt::FRAME_SAMPLES) {
        wav.write_frame(frame).map_err(|e| e.to_string())?;
    }
    let duration = wav.finish_synced().map_err(|e| e.to_string())?;
    Ok((path, duration))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilio_credentials_go_to_twilio_only() {
        let token = super::super::config::Secret("tok".into());
        let fetch = |provider: &str, url: &str| PendingFetch {
            id: 1,
            call: 1,
            campaign: "c".into(),
            node: "n".into(),
            url: url.into(),
            provider: provider.into(),
            attempts: 0,
            created_at: Utc::now(),
        };
        let url = "https://api.twilio.com/2010-04-01/Accounts/AC123/Recordings/RE1";
        assert_eq!(
            twilio_credentials(Some(&token), &fetch("twilio", url)),
            Some(("AC123".into(), "tok".into()))
        );
        assert_eq!(twilio_credentials(None, &fetch("twilio", url)), None);
        assert_eq!(
            twilio_credentials(Some(&token), &fetch("africastalking", url)),
            None
        );
        let elsewhere =
            "https://api.twilio.com.evil.example/2010-04-01/Accounts/AC123/Recordings/RE1";
        assert_eq!(
            twilio_credentials(Some(&token), &fetch("twilio", elsewhere)),
            None
        );
        let plain = "http://api.twilio.com/2010-04-01/Accounts/AC123/Recordings/RE1";
        assert_eq!(
            twilio_credentials(Some(&token), &fetch("twilio", plain)),
            None
        );
    }

    #[test]
    fn the_format_hint() {
        assert_eq!(extension(Some("audio/mpeg"), "https://x/r"), "mp3");
        assert_eq!(extension(None, "https://x/r.mp3"), "mp3");
        assert_eq!(extension(Some("audio/x-wav"), "https://x/r"), "wav");
    }
}
