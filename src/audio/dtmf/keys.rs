//! One call's keys from every source, each press counted once: RFC 4733 events,
//! SIP INFO and tones in the caller's audio, with kuma's own prompt kept from
//! posing as a key.
//!
//! [`CallKeys`] is sans-IO, like the detector: the call shell feeds it the audio it
//! received, the audio it sent and the RFC 4733 keys the RTP session decoded, and
//! takes the keys out. Time is the count of received samples (8 kHz), so the tests
//! run faster than real time.
//!
//! - **Both sources.** In-band detection always runs, also when telephone-event
//!   was negotiated: some gateways negotiate it and still send only tones, or send
//!   events for some keys only. A gateway that sends both gives each press twice,
//!   an event at the tone's start and a tone heard some 35 ms later (or the other
//!   way round, when the event packets are late): a key from one source is dropped
//!   when the same key came from another within [`PAIR_MS`] ([`INFO_PAIR_MS`]
//!   when one is a SIP INFO, which the signalling may delay), each key taking at
//!   most one report from each other source, so that the same key pressed twice
//!   is still two presses. SIP INFO is a third source: a phone set to send keys
//!   "both" ways (INFO and RFC 4733, some also as tones) reports a press two or
//!   three times, and each press must count once.
//! - **Echo.** On poor lines the caller's audio carries an echo of the prompt kuma
//!   plays, delayed by the network and the hybrid (tens to a few hundred ms) and
//!   weaker (G.168 assumes an echo return loss of 6 dB or more). A key heard in
//!   the caller's audio is kuma's own echo when kuma's outgoing audio, judged by the
//!   same detector window by window, sounded that key in [`ECHO_WINDOWS`] windows
//!   within the last [`ECHO_MS`]: a prompt that holds a key's tones (a jingle, music) cannot then
//!   answer a question for the caller. A prompt that merely has energy at the DTMF
//!   frequencies (any voice does) does not count, so the caller's keys over a
//!   prompt are not thrown away: the detector is measured hearing keys under speech
//!   in `table.rs`, with the campaign's own prompts as the speech, which is what
//!   their echo sounds like.

use std::collections::VecDeque;

use super::gate::Gated;
use super::{DtmfDetector, KeyEvent, SAMPLE_RATE};

/// How close in time the same key from the two sources is one press, ms.
pub const PAIR_MS: u64 = 250;
/// The same for a SIP INFO and a key from the audio (tone or RFC 4733 event),
/// ms: INFO travels with the signalling, not the media (through a proxy, over
/// TCP, from a gateway that sends it when the key is released), so it may be
/// late against the audio by far more than an event is. Pairs are one to one,
/// in order, so the same key pressed twice quickly is still two presses when
/// each source reports both.
pub const INFO_PAIR_MS: u64 = 1000;
/// How many windows of kuma's own audio must have sounded the key (the detector
/// needs four in the caller's audio; a voice may pass one now and then).
pub const ECHO_WINDOWS: usize = 3;
/// How far back kuma's own audio is searched for the key an echo would carry, ms:
/// the longest echo path expected plus the detector's own delay.
pub const ECHO_MS: u64 = 400;

fn samples(ms: u64) -> u64 {
    ms * u64::from(SAMPLE_RATE) / 1000
}

/// Where a key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// An RFC 4733 telephone-event.
    Event,
    /// A SIP INFO (`application/dtmf-relay` or `application/dtmf`).
    Info,
    /// A tone in the caller's audio.
    InBand,
}

impl Source {
    fn bit(self) -> u8 {
        match self {
            Source::Event => 1,
            Source::Info => 2,
            Source::InBand => 4,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Recent {
    key: char,
    at: u64,
    source: Source,
    /// The other sources whose report of this press was dropped, as
    /// [`Source::bit`]s.
    paired: u8,
}

/// A key for the call, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallKey {
    pub key: char,
    pub source: Source,
    /// Received samples before it (8 kHz).
    pub at: u64,
}

/// One call's keys; see the module doc.
#[derive(Debug, Clone, Default)]
pub struct CallKeys {
    /// The caller's audio, behind a quiet gate (the same keys, less work).
    received: Gated,
    sent: DtmfDetector,
    /// Samples of kuma's own audio so far, whether judged here or already known.
    sent_samples: u64,
    /// Windows of kuma's own audio that sounded a key: (key, sent sample).
    sent_keys: VecDeque<(char, u64)>,
    recent: VecDeque<Recent>,
    events: Vec<KeyEvent>,
    windows: Vec<(char, u64)>,
    /// Keys heard in the caller's audio and dropped as kuma's own echo.
    pub echoes: u64,
    /// Keys dropped as the second report of a press from the other source.
    pub duplicates: u64,
}

impl CallKeys {
    pub fn new() -> Self {
        Self::default()
    }

    /// A frame of the caller's audio (8 kHz linear); its new keys go to `out`. A
    /// tone may be reported up to 38 ms after it is heard (the detector follows a
    /// key heard over a sung voice before reporting it), with its start as `at`.
    pub fn received(&mut self, pcm: &[i16], out: &mut Vec<CallKey>) {
        self.events.clear();
        self.received.push(pcm, &mut self.events);
        self.take_events(out);
    }

    /// The caller's audio has ended (or stopped coming: a call on hold): the key
    /// its detector still held back, if any, goes to `out`.
    pub fn received_end(&mut self, out: &mut Vec<CallKey>) {
        self.events.clear();
        self.received.finish(&mut self.events);
        self.take_events(out);
    }

    /// The keys the caller's detector reported (`events`), but kuma's own echo.
    fn take_events(&mut self, out: &mut Vec<CallKey>) {
        let now_sent = self.sent_samples;
        for i in 0..self.events.len() {
            let e = self.events[i];
            let echo_from = now_sent.saturating_sub(samples(ECHO_MS));
            let sounded = self
                .sent_keys
                .iter()
                .filter(|&&(k, at)| k == e.key && at >= echo_from)
                .count();
            if sounded >= ECHO_WINDOWS {
                self.echoes += 1;
                continue;
            }
            self.accept(e.key, Source::InBand, e.start_sample, out);
        }
    }

    /// A frame of kuma's own audio, as sent to the caller (8 kHz linear).
    pub fn sent(&mut self, pcm: &[i16]) {
        self.events.clear();
        self.windows.clear();
        self.sent
            .push_windows(pcm, &mut self.events, &mut self.windows);
        self.sent_keys.extend(self.windows.iter().copied());
        self.sent_samples = self.sent_samples.saturating_add(pcm.len() as u64);
        self.forget_old_sent();
    }

    /// A frame of kuma's own audio, `len` samples, whose keys are already known:
    /// the detector's windows that hear one, as a prepared prompt holds them
    /// ([`Prompt::frame_keys`](crate::audio::prompt::Prompt::frame_keys)). Saves
    /// running the detector over every packet a call sends; the windows are
    /// placed at the frame's end (at most 20 ms off, against [`ECHO_MS`]).
    pub fn sent_keys(&mut self, keys: &[char], len: usize) {
        self.sent_samples = self.sent_samples.saturating_add(len as u64);
        let at = self.sent_samples;
        self.sent_keys.extend(keys.iter().map(|&k| (k, at)));
        self.forget_old_sent();
    }

    fn forget_old_sent(&mut self) {
        let keep_from = self.sent_samples.saturating_sub(samples(ECHO_MS));
        while self
            .sent_keys
            .front()
            .is_some_and(|&(_, at)| at < keep_from)
        {
            self.sent_keys.pop_front();
        }
    }

    /// A key from an RFC 4733 event; it goes to `out` unless the tone or a SIP
    /// INFO already reported it.
    pub fn event(&mut self, key: char, out: &mut Vec<CallKey>) {
        let at = self.received.samples_seen();
        self.accept(key, Source::Event, at, out);
    }

    /// A key from a SIP INFO; it goes to `out` unless the tone or an RFC 4733
    /// event already reported it.
    pub fn info(&mut self, key: char, out: &mut Vec<CallKey>) {
        let at = self.received.samples_seen();
        self.accept(key, Source::Info, at, out);
    }

    fn accept(&mut self, key: char, source: Source, at: u64, out: &mut Vec<CallKey>) {
        let window = |a: Source, b: Source| {
            samples(if a == Source::Info || b == Source::Info {
                INFO_PAIR_MS
            } else {
                PAIR_MS
            })
        };
        let keep = 2 * samples(PAIR_MS.max(INFO_PAIR_MS));
        while self
            .recent
            .front()
            .is_some_and(|r| r.at.saturating_add(keep) < at)
        {
            self.recent.pop_front();
        }
        if let Some(r) = self.recent.iter_mut().find(|r| {
            r.key == key
                && r.source != source
                && r.paired & source.bit() == 0
                && r.at.abs_diff(at) <= window(r.source, source)
        }) {
            r.paired |= source.bit();
            self.duplicates += 1;
            return;
        }
        self.recent.push_back(Recent {
            key,
            at,
            source,
            paired: 0,
        });
        out.push(CallKey { key, source, at });
    }
}

#[cfg(test)]
mod tests {
    use super::super::generate::{self, SAMPLE_RATE};
    use super::*;

    fn tone(key: char, ms: u32, dbm0: f64) -> Vec<i16> {
        generate::tone(key, ms, dbm0, dbm0, 0.0, SAMPLE_RATE).unwrap_or_default()
    }

    /// Feeds `received` and `sent` frame by frame (20 ms), with RFC 4733 `events`
    /// (key, at sample) given when the received stream reaches them.
    fn run(received: &[i16], sent: &[i16], events: &[(char, usize)]) -> (String, CallKeys) {
        run_with_info(received, sent, events, &[])
    }

    /// As [`run`], with SIP INFO keys too.
    fn run_with_info(
        received: &[i16],
        sent: &[i16],
        events: &[(char, usize)],
        infos: &[(char, usize)],
    ) -> (String, CallKeys) {
        let mut keys = CallKeys::new();
        let mut out = Vec::new();
        let silence = [0i16; 160];
        for (i, frame) in received.chunks(160).enumerate() {
            let start = i * 160;
            let s = sent
                .get(start..(start + 160).min(sent.len()))
                .unwrap_or(&silence);
            keys.sent(s);
            for &(k, at) in events {
                if (start..start + 160).contains(&at) {
                    keys.event(k, &mut out);
                }
            }
            for &(k, at) in infos {
                if (start..start + 160).contains(&at) {
                    keys.info(k, &mut out);
                }
            }
            keys.received(frame, &mut out);
        }
        (out.iter().map(|k| k.key).collect(), keys)
    }

    fn tape(parts: &[(Option<char>, u32)]) -> Vec<i16> {
        let mut v = Vec::new();
        for &(k, ms) in parts {
            match k {
                Some(k) => v.extend(tone(k, ms, -10.0)),
                None => v.extend(generate::silence(ms, SAMPLE_RATE)),
            }
        }
        v
    }

    #[test]
    fn in_band_keys_alone_are_heard() {
        let rx = tape(&[
            (None, 100),
            (Some('1'), 80),
            (None, 100),
            (Some('#'), 80),
            (None, 100),
        ]);
        assert_eq!(run(&rx, &[], &[]).0, "1#");
    }

    #[test]
    fn a_gateway_sending_events_and_tones_counts_each_press_once() {
        let rx = tape(&[
            (None, 100),
            (Some('5'), 100),
            (None, 100),
            (Some('5'), 100),
            (None, 200),
            (Some('7'), 100),
            (None, 200),
        ]);
        // Events at each tone's start, and one late by 150 ms.
        let events = [('5', 800), ('5', 2400), ('7', 4800 + 1200)];
        let (keys, k) = run(&rx, &[], &events);
        assert_eq!(keys, "557");
        assert_eq!(k.duplicates, 3);
        // Events alone, and tones alone, are still every key.
        assert_eq!(
            run(&generate::silence(900, SAMPLE_RATE), &[], &events).0,
            "557"
        );
        assert_eq!(run(&rx, &[], &[]).0, "557");
    }

    #[test]
    fn a_digit_typed_twice_quickly_by_a_gateway_sending_both_is_two_presses() {
        // "1", "1", "1" 150 ms apart (70 ms tones), each also sent as an event:
        // at the tone's start, or 100 ms late. Three presses, never six or one.
        let rx = tape(&[
            (None, 100),
            (Some('1'), 70),
            (None, 80),
            (Some('1'), 70),
            (None, 80),
            (Some('1'), 70),
            (None, 200),
        ]);
        for late in [0, 800] {
            let events = [('1', 800 + late), ('1', 2000 + late), ('1', 3200 + late)];
            let (keys, k) = run(&rx, &[], &events);
            assert_eq!(keys, "111", "events {late} samples late");
            assert_eq!(k.duplicates, 3);
        }
        assert_eq!(run(&rx, &[], &[]).0, "111");
    }

    #[test]
    fn a_phone_sending_info_events_and_tones_counts_each_quick_press_once() {
        // "4", "4", "6" 240 ms apart (as baresip types them), each sent as RFC
        // 4733, as SIP INFO 30 ms later, and as tones: three presses.
        let rx = tape(&[
            (None, 100),
            (Some('4'), 180),
            (None, 60),
            (Some('4'), 180),
            (None, 60),
            (Some('6'), 180),
            (None, 200),
        ]);
        let events = [('4', 800), ('4', 2720), ('6', 4640)];
        let infos = [('4', 1040), ('4', 2960), ('6', 4880)];
        let (keys, k) = run_with_info(&rx, &[], &events, &infos);
        assert_eq!(keys, "446");
        assert_eq!(k.duplicates, 6);
        // INFO and RFC 4733 alone (no tones), and INFO alone.
        let quiet = generate::silence(900, SAMPLE_RATE);
        let (keys, k) = run_with_info(&quiet, &[], &events, &infos);
        assert_eq!((keys.as_str(), k.duplicates), ("446", 3));
        assert_eq!(run_with_info(&quiet, &[], &[], &infos).0, "446");
    }

    #[test]
    fn a_sip_info_late_against_the_audio_is_still_the_same_press() {
        // "3", "3" 300 ms apart as tones, each also as SIP INFO that the
        // signalling delays by 700 ms (a proxy, a stalled sender): two presses.
        let rx = tape(&[
            (None, 100),
            (Some('3'), 100),
            (None, 200),
            (Some('3'), 100),
            (None, 1500),
        ]);
        let infos = [('3', 800 + 5600), ('3', 3200 + 5600)];
        let (keys, k) = run_with_info(&rx, &[], &[], &infos);
        assert_eq!((keys.as_str(), k.duplicates), ("33", 2));
        // An event that late is another press: events travel with the audio.
        let events = [('3', 800 + 5600)];
        assert_eq!(run(&rx, &[], &events).0, "333");
    }

    #[test]
    fn a_key_held_back_by_the_detector_still_reaches_the_call() {
        // A key 3 dB under a talker that the detector follows before reporting it
        // (heard over a sung voice: `DtmfDetector::finish`): the call gets it at
        // most 40 ms late, at its start, and at the end of the audio too.
        let tape = super::super::table::speech_tape(3.0, 200, 14);
        let Some(&(key, start, end)) = tape.presses.iter().find(|p| p.1 == 98_400) else {
            panic!("the press at 98,400 moved: {:?}", &tape.presses[..10]);
        };
        let from = (start as usize - 4000) / 51 * 51;
        let feed = |to: usize, end_of_audio: bool| {
            let mut keys = CallKeys::new();
            let mut out = Vec::new();
            let mut got_at = None;
            let mut fed = from;
            for frame in tape.samples[from..to].chunks(160) {
                keys.received(frame, &mut out);
                fed += frame.len();
                if !out.is_empty() && got_at.is_none() {
                    got_at = Some(fed as u64);
                }
            }
            if end_of_audio {
                keys.received_end(&mut out);
            }
            (out, got_at)
        };
        let (out, got_at) = feed(end as usize + 1600, false);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].key, key);
        let at = out[0].at + from as u64;
        assert!(at + 102 >= start && at < start + 400, "{at} vs {start}");
        // Heard once the steady span (44.6 ms) is in, reported at most 40 ms on.
        let got_at = got_at.unwrap_or(u64::MAX);
        assert!(got_at <= at + 357 + 320 + 160, "{got_at} vs {at}");
        // The audio stops while the key is held back.
        let cut = (got_at as usize).saturating_sub(200);
        assert!(feed(cut, false).0.is_empty());
        let (out, _) = feed(cut, true);
        assert_eq!(
            out.iter().map(|k| (k.key, k.at)).collect::<Vec<_>>(),
            [(key, at - from as u64)]
        );
    }

    #[test]
    fn an_event_for_another_key_is_not_paired() {
        let rx = tape(&[(None, 100), (Some('2'), 100), (None, 200)]);
        assert_eq!(run(&rx, &[], &[('3', 800)]).0, "32");
    }

    #[test]
    fn the_echo_of_kumas_own_tones_is_no_key() {
        // kuma plays a prompt with a key's tones in it (a jingle); its echo comes
        // back 120 ms later and 8 dB weaker.
        let sent = tape(&[(None, 100), (Some('9'), 150), (None, 400)]);
        let mut rx = generate::silence(120, SAMPLE_RATE);
        rx.extend(generate::gain(&sent, -8.0));
        let (keys, k) = run(&rx, &sent, &[]);
        assert_eq!(keys, "");
        assert_eq!(k.echoes, 1);
        // The caller pressing the same key later is heard.
        let mut later = rx.clone();
        later.extend(tape(&[(None, 500), (Some('9'), 100), (None, 100)]));
        assert_eq!(run(&later, &sent, &[]).0, "9");
    }

    #[test]
    fn the_echo_of_a_prepared_prompt_is_no_key_either() {
        // As above, with kuma's audio given as the keys its prepared prompt holds
        // (what a call does): the same echo is dropped, the caller's key heard.
        let sent = tape(&[(None, 100), (Some('9'), 150), (None, 400)]);
        let prompt = crate::audio::Prompt::from_pcm(&sent);
        let mut rx = generate::silence(120, SAMPLE_RATE);
        rx.extend(generate::gain(&sent, -8.0));
        rx.extend(tape(&[(None, 500), (Some('9'), 100), (None, 100)]));
        let mut keys = CallKeys::new();
        let mut out = Vec::new();
        for (i, frame) in rx.chunks(160).enumerate() {
            keys.sent_keys(prompt.frame_keys(i), 160);
            keys.received(frame, &mut out);
        }
        assert_eq!(out.iter().map(|k| k.key).collect::<String>(), "9");
        assert!(out.first().is_some_and(|k| k.at > 8 * (120 + 650)));
        assert_eq!(keys.echoes, 1);
    }

    #[test]
    fn keys_over_the_echo_of_a_spoken_prompt_are_heard() {
        // The prompt (the campaign's French recording) echoes back 10 dB down while
        // the caller presses keys at a normal level.
        let prompt = super::super::table::french_prompts();
        let sent = prompt.get(..8000 * 6).unwrap_or_default().to_vec();
        let mut rx = generate::silence(150, SAMPLE_RATE);
        rx.extend(generate::gain(&sent, -10.0));
        let mut presses = Vec::new();
        for (i, key) in "0123456789".chars().enumerate() {
            let at = 4000 + i * 4000;
            let t = tone(key, 100, -12.0);
            for (j, x) in t.iter().enumerate() {
                if let Some(y) = rx.get_mut(at + j) {
                    *y = y.saturating_add(*x);
                }
            }
            presses.push(key);
        }
        let (keys, k) = run(&rx, &sent, &[]);
        assert_eq!(keys, presses.iter().collect::<String>());
        assert_eq!(k.echoes, 0);
    }
}
