//! A prepared prompt: the 20 ms G.711 frames a call sends, held once in memory and
//! shared by every call.
//!
//! A prompt is decoded, resampled and levelled once (or read back from the cache),
//! then cut into [`Frame`]s of 160 samples, each already encoded in both µ-law and
//! A-law, so that a call pays nothing per packet but a copy into its RTP buffer
//! whatever codec the peer chose. The frames live in an `Arc<[Frame]>`: a call holds
//! a [`Prompt`] (a reference count and a pointer), never a copy of the audio.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::dtmf::DtmfDetector;
use super::g711::{ALAW_SILENCE, ULAW_SILENCE, encode_alaw, encode_ulaw};
use super::resample::TELEPHONE_RATE;

/// Samples in one 20 ms frame at 8 kHz: one RTP packet of G.711.
pub const FRAME_SAMPLES: usize = 160;

/// Length of one frame.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);

/// 20 ms of a prompt in both G.711 laws.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub ulaw: [u8; FRAME_SAMPLES],
    pub alaw: [u8; FRAME_SAMPLES],
}

impl Frame {
    /// A frame of silence.
    pub const SILENCE: Frame = Frame {
        ulaw: [ULAW_SILENCE; FRAME_SAMPLES],
        alaw: [ALAW_SILENCE; FRAME_SAMPLES],
    };
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Frame(20 ms)")
    }
}

/// The keys kuma's own DTMF detector hears in one frame of a prompt: one entry
/// per detector window that ends in the frame and on its own hears a key (a frame
/// holds at most four window ends). What the echo guard
/// ([`CallKeys::sent_keys`](super::dtmf::keys::CallKeys::sent_keys)) needs of the
/// audio a call sends, found once when the prompt is prepared instead of by
/// running the detector over every packet of every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameKeys {
    keys: [char; 4],
    len: u8,
}

impl FrameKeys {
    /// No key: a frame of silence, or of speech the detector does not take for one.
    pub const NONE: FrameKeys = FrameKeys {
        keys: ['\0'; 4],
        len: 0,
    };

    /// The keys, one per window.
    pub fn as_slice(&self) -> &[char] {
        self.keys.get(..usize::from(self.len)).unwrap_or_default()
    }

    fn push(&mut self, key: char) {
        if let Some(slot) = self.keys.get_mut(usize::from(self.len)) {
            *slot = key;
            self.len += 1;
        }
    }
}

/// A prepared prompt: cheap to clone (the frames are shared).
#[derive(Clone, PartialEq, Eq)]
pub struct Prompt {
    frames: Arc<[Frame]>,
    /// What the DTMF detector hears in each frame, the prompt judged from its
    /// start; empty when it hears nothing anywhere (most prompts).
    keys: Arc<[FrameKeys]>,
}

impl std::fmt::Debug for Prompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Prompt({} frames)", self.frames.len())
    }
}

impl Prompt {
    /// Cuts 8 kHz linear samples into frames; the last frame is padded with silence.
    pub fn from_pcm(pcm: &[i16]) -> Prompt {
        let frames: Vec<Frame> = pcm
            .chunks(FRAME_SAMPLES)
            .map(|chunk| {
                let mut frame = Frame::SILENCE;
                for (i, &s) in chunk.iter().enumerate() {
                    frame.ulaw[i] = encode_ulaw(s);
                    frame.alaw[i] = encode_alaw(s);
                }
                frame
            })
            .collect();
        let mut detector = DtmfDetector::new();
        let (mut events, mut windows) = (Vec::new(), Vec::new());
        let mut keys: Vec<FrameKeys> = pcm
            .chunks(FRAME_SAMPLES)
            .map(|chunk| {
                windows.clear();
                detector.push_windows(chunk, &mut events, &mut windows);
                let mut frame = FrameKeys::NONE;
                for &(key, _) in &windows {
                    frame.push(key);
                }
                frame
            })
            .collect();
        if keys.iter().all(|k| k.len == 0) {
            keys.clear();
        }
        Prompt {
            frames: frames.into(),
            keys: keys.into(),
        }
    }

    /// The keys kuma's own detector hears in frame `index` (none past the end).
    pub fn frame_keys(&self, index: usize) -> &[char] {
        self.keys.get(index).map_or(&[], FrameKeys::as_slice)
    }

    /// The frames, in order; clone the `Arc` to keep them.
    pub fn frames(&self) -> &Arc<[Frame]> {
        &self.frames
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Playing time (a whole number of frames).
    pub fn duration(&self) -> Duration {
        FRAME_DURATION * self.frames.len() as u32
    }

    /// The µ-law stream of the whole prompt (for export; calls use the frames).
    pub fn ulaw(&self) -> Vec<u8> {
        self.frames.iter().flat_map(|f| f.ulaw).collect()
    }

    /// The A-law stream of the whole prompt.
    pub fn alaw(&self) -> Vec<u8> {
        self.frames.iter().flat_map(|f| f.alaw).collect()
    }

    /// Sample rate of the frames.
    pub const SAMPLE_RATE: u32 = TELEPHONE_RATE;
}

/// Every prepared prompt of a campaign, by language and prompt name.
#[derive(Debug, Clone, Default)]
pub struct PromptSet {
    // Nested so that a lookup by `&str`s allocates nothing.
    by_language: HashMap<String, HashMap<String, Prompt>>,
}

impl PromptSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, language: &str, prompt: &str, p: Prompt) {
        self.by_language
            .entry(language.to_string())
            .or_default()
            .insert(prompt.to_string(), p);
    }

    /// The prompt `name` in `language`, if it was prepared.
    pub fn get(&self, language: &str, name: &str) -> Option<&Prompt> {
        self.by_language.get(language)?.get(name)
    }

    pub fn len(&self) -> usize {
        self.by_language.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every prompt with its language and name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &Prompt)> {
        self.by_language.iter().flat_map(|(l, prompts)| {
            prompts
                .iter()
                .map(move |(n, p)| (l.as_str(), n.as_str(), p))
        })
    }

    /// Bytes of audio held (both laws), for logs.
    pub fn memory_bytes(&self) -> usize {
        self.iter()
            .map(|(_, _, p)| p.len() * std::mem::size_of::<Frame>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_cut_into_padded_20_ms_frames_in_both_laws() {
        let pcm: Vec<i16> = (0..401).map(|i| (i * 50) as i16).collect();
        let p = Prompt::from_pcm(&pcm);
        assert_eq!(p.len(), 3);
        assert_eq!(p.duration(), Duration::from_millis(60));
        assert_eq!(p.frames()[0].ulaw[1], encode_ulaw(50));
        assert_eq!(p.frames()[2].alaw[80], encode_alaw(400 * 50));
        assert_eq!(p.frames()[2].ulaw[81], ULAW_SILENCE);
        assert_eq!(p.frames()[2].alaw[159], ALAW_SILENCE);
        assert_eq!(p.ulaw().len(), 480);
    }

    #[test]
    fn the_keys_in_a_prompt_are_found_once_frame_by_frame() {
        // 200 ms of silence, 150 ms of the key 5, silence: the detector's windows
        // hear 5 in the frames of the tone, nothing elsewhere.
        let mut tape = crate::audio::dtmf::tape::Tape::default();
        tape.gap(200).key('5', 150, -10.0, -10.0).gap(200);
        let pcm = tape.samples;
        let p = Prompt::from_pcm(&pcm);
        let mut feed = DtmfDetector::new();
        let (mut events, mut windows) = (Vec::new(), Vec::new());
        let mut heard = 0;
        for (i, chunk) in pcm.chunks(FRAME_SAMPLES).enumerate() {
            windows.clear();
            feed.push_windows(chunk, &mut events, &mut windows);
            let expected: Vec<char> = windows.iter().map(|&(k, _)| k).collect();
            assert_eq!(p.frame_keys(i), expected.as_slice(), "frame {i}");
            heard += expected.len();
        }
        assert!(heard >= 6, "the tone's windows: {heard}");
        assert!(p.frame_keys(0).is_empty() && p.frame_keys(p.len()).is_empty());
        // Speech-free silence holds no key at all: nothing is kept.
        assert!(Prompt::from_pcm(&[0; 1600]).keys.is_empty());
    }

    #[test]
    fn clones_share_the_frames() {
        let p = Prompt::from_pcm(&[0; 1600]);
        let q = p.clone();
        assert!(Arc::ptr_eq(p.frames(), q.frames()));
        let mut set = PromptSet::new();
        set.insert("fr", "welcome", p);
        assert!(Arc::ptr_eq(
            set.get("fr", "welcome").unwrap().frames(),
            q.frames()
        ));
        assert!(set.get("bm", "welcome").is_none());
    }
}
