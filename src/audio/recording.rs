//! Recording a caller's message: a WAV file written as the audio arrives, and the
//! silence detection that ends a recording early.
//!
//! Two parts, in the sans-IO style of the rest of kuma:
//!
//! - [`EndDetector`] is pure: fed 20 ms frames of 8 kHz linear audio, it says when
//!   the recording should end — the caller has been silent for
//!   [`EndSettings::silence`] after speaking, or has said nothing at all for
//!   [`EndSettings::no_speech`], or the node's `max` is reached. (`#` and the
//!   hang-up are events the flow engine sees; they end the recording from outside.)
//!   A frame is speech when its RMS is above [`EndSettings::speech_db`]; the default,
//!   -40 dBFS, is 14 dB under ITU-T's nominal talker level (-26 dBov) and well over
//!   the noise of a mobile line (-55 to -65 dBov). A short hangover keeps the
//!   detector from ending on the pause between two words.
//! - [`WavRecorder`] is the file sink: 16-bit PCM mono at 8 kHz (what every player
//!   and browser reads), written through hound. Every [`FLUSH_EVERY`] frames (one
//!   second) it writes out what it holds and rewrites the header's sizes, so after a
//!   hang-up that skips `finish`, or a crash of kuma, the file on disk is a valid WAV
//!   that lacks at most the last second. (A power cut can lose more: the data is in
//!   the operating system's cache until it writes it; `finish` syncs it.)
//!
//! [`Recorder`] puts the two together for a channel: push frames, get a verdict.

use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use super::prompt::{FRAME_DURATION, FRAME_SAMPLES};
use super::resample::TELEPHONE_RATE;

/// Frames written between two flushes: one second.
pub const FLUSH_EVERY: u32 = 50;

/// When a recording ends by itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndSettings {
    /// A frame above this RMS level (dBFS) is speech.
    pub speech_db: f32,
    /// Silence after speech that ends the recording.
    pub silence: Duration,
    /// Silence from the start, with no speech at all, that ends it.
    pub no_speech: Duration,
    /// The longest recording (the node's `max`).
    pub max: Duration,
}

impl Default for EndSettings {
    fn default() -> Self {
        EndSettings {
            speech_db: -40.0,
            silence: Duration::from_secs(5),
            no_speech: Duration::from_secs(10),
            max: Duration::from_secs(120),
        }
    }
}

/// What the detector says after a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep recording.
    Continue,
    /// The caller stopped speaking (or never started): end the recording.
    Silence,
    /// The maximum length is reached.
    Full,
}

/// Decides, frame by frame, when a recording is over. Pure: no clock, no IO.
#[derive(Debug, Clone)]
pub struct EndDetector {
    settings: EndSettings,
    threshold: f64,
    frames: u32,
    silent_run: u32,
    speech_frames: u32,
    last_speech_end: u32,
}

impl EndDetector {
    pub fn new(settings: EndSettings) -> Self {
        let threshold = 10f64.powf(f64::from(settings.speech_db) / 10.0);
        EndDetector {
            settings,
            threshold,
            frames: 0,
            silent_run: 0,
            speech_frames: 0,
            last_speech_end: 0,
        }
    }

    /// One 20 ms frame (any length is accepted; 160 samples is one frame).
    pub fn push(&mut self, frame: &[i16]) -> Verdict {
        self.frames += 1;
        let power = frame
            .iter()
            .map(|&s| {
                let x = f64::from(s) / 32768.0;
                x * x
            })
            .sum::<f64>()
            / frame.len().max(1) as f64;
        if power > self.threshold {
            self.speech_frames += 1;
            self.silent_run = 0;
            self.last_speech_end = self.frames;
        } else {
            self.silent_run += 1;
        }
        if self.elapsed() >= self.settings.max {
            return Verdict::Full;
        }
        let silent_for = FRAME_DURATION * self.silent_run;
        // A click (fewer than three frames above the threshold) is not speech.
        let limit = if self.heard_speech() {
            self.settings.silence
        } else {
            self.settings.no_speech
        };
        if silent_for >= limit {
            return Verdict::Silence;
        }
        Verdict::Continue
    }

    /// The caller said something (more than a click).
    pub fn heard_speech(&self) -> bool {
        self.speech_frames >= 3
    }

    pub fn elapsed(&self) -> Duration {
        FRAME_DURATION * self.frames
    }

    /// Where the last speech ended: the recording's useful length.
    pub fn speech_end(&self) -> Duration {
        FRAME_DURATION * self.last_speech_end
    }
}

/// Why writing a recording failed.
#[derive(Debug, Error)]
pub enum RecordingError {
    #[error("recording {path}: {source}")]
    Wav {
        path: PathBuf,
        #[source]
        source: hound::Error,
    },
}

/// A WAV file being written as the caller speaks.
pub struct WavRecorder<W: Write + Seek> {
    wav: hound::WavWriter<W>,
    path: PathBuf,
    frames: u32,
    since_flush: u32,
}

impl WavRecorder<BufWriter<File>> {
    /// Creates (or replaces) the file.
    pub fn create(path: &Path) -> Result<Self, RecordingError> {
        let wav = hound::WavWriter::create(path, spec()).map_err(|source| RecordingError::Wav {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(WavRecorder {
            wav,
            path: path.to_path_buf(),
            frames: 0,
            since_flush: 0,
        })
    }
}

fn spec() -> hound::WavSpec {
    hound::WavSpec {
        channels: 1,
        sample_rate: TELEPHONE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

impl<W: Write + Seek> WavRecorder<W> {
    /// A recorder writing to any seekable writer (tests use a `Cursor`).
    pub fn new(writer: W, name: &Path) -> Result<Self, RecordingError> {
        let wav = hound::WavWriter::new(writer, spec()).map_err(|source| RecordingError::Wav {
            path: name.to_path_buf(),
            source,
        })?;
        Ok(WavRecorder {
            wav,
            path: name.to_path_buf(),
            frames: 0,
            since_flush: 0,
        })
    }

    fn err(&self, source: hound::Error) -> RecordingError {
        RecordingError::Wav {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends one frame; every second, makes the file on disk whole.
    pub fn write_frame(&mut self, frame: &[i16]) -> Result<(), RecordingError> {
        for &s in frame {
            if let Err(e) = self.wav.write_sample(s) {
                return Err(self.err(e));
            }
        }
        self.frames += 1;
        self.since_flush += 1;
        if self.since_flush >= FLUSH_EVERY {
            self.since_flush = 0;
            if let Err(e) = self.wav.flush() {
                return Err(self.err(e));
            }
        }
        Ok(())
    }

    /// Length written so far.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(f64::from(self.wav.len()) / f64::from(TELEPHONE_RATE))
    }

    /// Completes the header; the file is whole.
    pub fn finish(self) -> Result<Duration, RecordingError> {
        let d = self.duration();
        let path = self.path.clone();
        self.wav
            .finalize()
            .map_err(|source| RecordingError::Wav { path, source })?;
        Ok(d)
    }
}

impl WavRecorder<BufWriter<File>> {
    /// Completes the header and asks the disk to keep it (a hang-up's last step).
    pub fn finish_synced(self) -> Result<Duration, RecordingError> {
        let path = self.path.clone();
        let d = self.finish()?;
        File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| RecordingError::Wav {
                path,
                source: hound::Error::IoError(e),
            })?;
        Ok(d)
    }
}

/// A caller's recording: the detector and the file together.
pub struct Recorder<W: Write + Seek> {
    pub detector: EndDetector,
    pub sink: WavRecorder<W>,
}

impl<W: Write + Seek> Recorder<W> {
    pub fn new(sink: WavRecorder<W>, settings: EndSettings) -> Self {
        Recorder {
            detector: EndDetector::new(settings),
            sink,
        }
    }

    /// Writes a frame and says whether to go on.
    pub fn push(&mut self, frame: &[i16; FRAME_SAMPLES]) -> Result<Verdict, RecordingError> {
        self.sink.write_frame(frame)?;
        Ok(self.detector.push(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn tone(amp: f32) -> [i16; FRAME_SAMPLES] {
        let mut f = [0i16; FRAME_SAMPLES];
        for (i, s) in f.iter_mut().enumerate() {
            *s = (amp * 32767.0 * (i as f32 * 0.5).sin()) as i16;
        }
        f
    }

    #[test]
    fn speech_then_five_seconds_of_silence_ends_the_recording() {
        let mut d = EndDetector::new(EndSettings::default());
        for _ in 0..100 {
            assert_eq!(d.push(&tone(0.1)), Verdict::Continue); // 2 s of speech
        }
        let mut frames = 0;
        while d.push(&tone(0.001)) == Verdict::Continue {
            frames += 1;
            assert!(frames < 1000);
        }
        assert_eq!(frames + 1, 250); // 5 s of 20 ms frames
        assert!(d.heard_speech());
        assert_eq!(d.speech_end(), Duration::from_secs(2));
    }

    #[test]
    fn a_pause_between_words_does_not_end_it_and_no_speech_ends_it_later() {
        let mut d = EndDetector::new(EndSettings::default());
        for _ in 0..10 {
            d.push(&tone(0.1));
        }
        for _ in 0..150 {
            assert_eq!(d.push(&[0; FRAME_SAMPLES]), Verdict::Continue); // 3 s pause
        }
        let mut quiet = EndDetector::new(EndSettings::default());
        let mut n = 0;
        while quiet.push(&[0; FRAME_SAMPLES]) == Verdict::Continue {
            n += 1;
        }
        assert_eq!(n + 1, 500);
        assert!(!quiet.heard_speech());
    }

    #[test]
    fn the_maximum_length_ends_it() {
        let settings = EndSettings {
            max: Duration::from_secs(1),
            ..EndSettings::default()
        };
        let mut d = EndDetector::new(settings);
        let verdicts: Vec<Verdict> = (0..50).map(|_| d.push(&tone(0.2))).collect();
        assert_eq!(verdicts[48], Verdict::Continue);
        assert_eq!(verdicts[49], Verdict::Full);
    }

    #[test]
    fn the_file_is_a_valid_wav_after_every_second_even_without_finish() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("message.wav");
        let mut rec = WavRecorder::create(&path).unwrap();
        for _ in 0..75 {
            rec.write_frame(&tone(0.1)).unwrap();
        }
        // A crash: nothing more runs, not even the destructor.
        std::mem::forget(rec);
        let reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(reader.spec().sample_rate, 8000);
        assert_eq!(reader.len(), 50 * 160, "all but the last half second");

        let path = dir.path().join("whole.wav");
        let mut rec = WavRecorder::create(&path).unwrap();
        for _ in 0..75 {
            rec.write_frame(&tone(0.1)).unwrap();
        }
        assert_eq!(rec.finish_synced().unwrap(), Duration::from_millis(1500));
        assert_eq!(hound::WavReader::open(&path).unwrap().len(), 75 * 160);
    }

    #[test]
    fn a_recorder_writes_every_frame_and_reports_the_verdict() {
        let sink = WavRecorder::new(Cursor::new(Vec::new()), Path::new("mem.wav")).unwrap();
        let mut r = Recorder::new(
            sink,
            EndSettings {
                max: Duration::from_millis(100),
                ..EndSettings::default()
            },
        );
        let v: Vec<Verdict> = (0..5).map(|_| r.push(&tone(0.1)).unwrap()).collect();
        assert_eq!(v[4], Verdict::Full);
        assert_eq!(r.sink.finish().unwrap(), Duration::from_millis(100));
    }
}
