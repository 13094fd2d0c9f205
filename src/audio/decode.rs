//! Decoding a station's recording (WAV, MP3, Ogg Vorbis, FLAC, AAC/M4A) into mono
//! samples, streamed to the next stage as they come out of the decoder.
//!
//! This is where untrusted bytes meet kuma, so it is written to survive any of them:
//!
//! - **bounded time and memory**: a file whose header says (or, for MP3, whose size
//!   suggests) that it is longer than the limit is refused before decoding; one that
//!   says nothing is refused as soon as the decoded audio passes the limit, so a
//!   one-hour file is never held in memory. Nothing is kept here but one packet: the
//!   mono samples go straight to the sink (the resampler). The number of packets read
//!   is capped by the file's size, so a demuxer that stops making progress cannot
//!   spin forever, and absurd sample rates and channel counts are refused up front;
//! - **damage is local**: a packet that does not decode is skipped and counted; a
//!   file cut short keeps what it has, with a warning. MP3 has no end marker and
//!   symphonia stops quietly at a half frame, so the end of an MP3 file is compared
//!   with the last frame read; the Ogg reader looks at the end of the file first and
//!   gives up when it is cut, so such a file is read again forwards only. Only a file
//!   that gives no audio at all is an error;
//! - **no panic escapes**: a panic of a decoder on a crafted file would otherwise
//!   take down `kuma check` and every other file with it, so the decode runs under
//!   `catch_unwind` and a panic becomes this file's error (the fuzz test in
//!   `tests/audio.rs` has found none).
//!
//! Mixing down to mono happens here because it needs the channel layout: the LFE
//! channel of a surround file is dropped, the others are averaged. Clipping is
//! measured here too, per channel and before mixing, because mixing hides it.

use std::fs::File;
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use symphonia::core::audio::{Channels, Position};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream, ReadOnlySource};
use symphonia::core::meta::MetadataOptions;

use super::error::{AudioError, MAX_CHANNELS};

/// Sample rates outside this range are not audio a station records (a corrupt header).
const RATES: std::ops::RangeInclusive<u32> = 1_000..=768_000;

/// Consecutive packets that fail to decode before the rest of the file is given up.
const MAX_CONSECUTIVE_BAD_PACKETS: u32 = 64;

/// A sample at or above this magnitude is at full scale.
const FULL_SCALE: f32 = 0.999;

/// This many full-scale samples in a row is clipping, not a peak that just touches 0 dBFS.
const CLIP_RUN: u32 = 3;

/// What the decoder found out about a recording besides its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInfo {
    /// Container, e.g. `wav`, `mp3`, `ogg`, `flac`, `isomp4`, `adts`.
    pub format: String,
    /// Codec, e.g. `pcm_s16le`, `mp3`, `vorbis`, `flac`, `aac`.
    pub codec: String,
    pub sample_rate: u32,
    pub channels: usize,
    /// Decoded frames (samples per channel).
    pub frames: u64,
    /// Runs of at least three full-scale samples in a row, in any channel.
    pub clipped_runs: u64,
    /// Highest absolute sample value over all channels (1.0 = 0 dBFS).
    pub peak: f32,
    /// Packets that failed to decode and were skipped.
    pub damaged_packets: u32,
    /// The file ended (or became unreadable) before its container said it would.
    pub ended_early: bool,
}

impl SourceInfo {
    pub fn duration(&self) -> Duration {
        if self.sample_rate == 0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(self.frames as f64 / f64::from(self.sample_rate))
    }
}

/// Where the decoded mono samples go (the resampler). An error from it stops decoding
/// and becomes the file's error.
pub trait MonoSink {
    /// Called once, before any samples, when the sample rate is known.
    fn start(&mut self, sample_rate: u32) -> Result<(), AudioError>;
    /// The next mono samples at the source rate (one packet's worth, never empty).
    fn samples(&mut self, mono: &[f32]) -> Result<(), AudioError>;
}

/// Decodes a file into `sink`.
pub fn decode_file(
    path: &Path,
    max_duration: Duration,
    sink: &mut dyn MonoSink,
) -> Result<SourceInfo, AudioError> {
    if File::open(path)?.metadata()?.len() == 0 {
        return Err(AudioError::EmptyFile);
    }
    let ext = path.extension().and_then(|e| e.to_str());
    let open = |seekable: bool| -> Result<Box<dyn MediaSource>, AudioError> {
        let file = File::open(path)?;
        Ok(if seekable {
            Box::new(file)
        } else {
            Box::new(ReadOnlySource::new(file))
        })
    };
    decode_source(&open, ext, max_duration, sink)
}

/// Decodes a recording held in memory (the fuzz tests and the benchmarks use it);
/// `extension` is the file name's extension, a hint for the format.
pub fn decode_bytes(
    bytes: Vec<u8>,
    extension: Option<&str>,
    max_duration: Duration,
    sink: &mut dyn MonoSink,
) -> Result<SourceInfo, AudioError> {
    if bytes.is_empty() {
        return Err(AudioError::EmptyFile);
    }
    let bytes: Arc<[u8]> = bytes.into();
    let open = |seekable: bool| -> Result<Box<dyn MediaSource>, AudioError> {
        let cursor = Cursor::new(Arc::clone(&bytes));
        Ok(if seekable {
            Box::new(cursor)
        } else {
            Box::new(ReadOnlySource::new(cursor))
        })
    };
    decode_source(&open, extension, max_duration, sink)
}

/// Decodes a stream that can only be read forwards (an upload, a pipe): nothing is
/// known of its length until it ends, so only the decoded length limits it.
pub fn decode_stream<R: Read + Send + Sync + 'static>(
    reader: R,
    extension: Option<&str>,
    max_duration: Duration,
    sink: &mut dyn MonoSink,
) -> Result<SourceInfo, AudioError> {
    let once = Mutex::new(Some(reader));
    let open = |_seekable: bool| -> Result<Box<dyn MediaSource>, AudioError> {
        let reader = once
            .lock()
            .ok()
            .and_then(|mut r| r.take())
            .ok_or_else(|| AudioError::Malformed("the stream cannot be read twice".into()))?;
        Ok(Box::new(ReadOnlySource::new(reader)))
    };
    decode_with(&open, false, extension, max_duration, sink)
}

/// Opens the recording again: seekable (the normal way) or read forwards only.
type Open<'a> = dyn Fn(bool) -> Result<Box<dyn MediaSource>, AudioError> + 'a;

fn decode_source(
    open: &Open<'_>,
    extension: Option<&str>,
    max_duration: Duration,
    sink: &mut dyn MonoSink,
) -> Result<SourceInfo, AudioError> {
    match decode_with(open, true, extension, max_duration, sink) {
        // Some readers (Ogg) look at the end of the file first and give up when it is
        // cut short; read forwards only, they decode what is there.
        Err(AudioError::CutShortHeader) => {
            let mut info = decode_with(open, false, extension, max_duration, sink)?;
            info.ended_early = true;
            Ok(info)
        }
        other => other,
    }
}

fn decode_with(
    open: &Open<'_>,
    seekable: bool,
    extension: Option<&str>,
    max_duration: Duration,
    sink: &mut dyn MonoSink,
) -> Result<SourceInfo, AudioError> {
    let source = open(seekable)?;
    // symphonia logs what it finds wrong in a file; the report says it better, once,
    // with the file's path, so its log lines are not let through to kuma's log.
    let quiet = tracing::subscriber::NoSubscriber::default();
    let outcome = tracing::subscriber::with_default(quiet, || {
        catch_unwind(AssertUnwindSafe(|| {
            decode_inner(source, extension, max_duration, sink)
        }))
    });
    match outcome {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            Err(AudioError::DecoderPanic(what))
        }
    }
}

fn probe_error(e: SymError) -> AudioError {
    match e {
        SymError::IoError(_) => AudioError::CutShortHeader,
        SymError::Unsupported(what) if what.contains("no suitable format reader") => {
            AudioError::Unsupported {
                detail: "the content is not audio in a known format".into(),
            }
        }
        SymError::Unsupported(what) if what.contains("moov") => AudioError::Malformed(
            "an MP4/M4A file without its index (the moov box): cut short, or saved by an app that had not finished"
                .into(),
        ),
        other => AudioError::Unsupported {
            detail: other.to_string(),
        },
    }
}

fn decode_inner(
    mut source: Box<dyn MediaSource>,
    extension: Option<&str>,
    max_duration: Duration,
    sink: &mut dyn MonoSink,
) -> Result<SourceInfo, AudioError> {
    let byte_len = source.byte_len();
    let tail = read_tail(&mut source, byte_len)?;
    let mss = MediaSourceStream::new(source, Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = extension {
        hint.with_extension(&ext.to_ascii_lowercase());
    }
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(probe_error)?;
    let format_name = format.format_info().short_name.to_string();

    let track = format
        .default_track(TrackType::Audio)
        .or_else(|| format.first_track(TrackType::Audio))
        .ok_or(AudioError::NoAudioTrack)?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or(AudioError::NoAudioTrack)?
        .clone();
    let declared_frames = track.num_frames;

    if let Some(channels) = &params.channels {
        let n = channels.count();
        if n > MAX_CHANNELS {
            return Err(AudioError::TooManyChannels(n));
        }
    }
    let mut rate = params.sample_rate;
    if let Some(r) = rate {
        check_rate(r)?;
        if let Some(frames) = declared_frames {
            let length = Duration::from_secs_f64(frames as f64 / f64::from(r));
            if length > max_duration {
                return Err(AudioError::TooLong {
                    limit: max_duration,
                    length: Some(length),
                });
            }
        }
        sink.start(r)?;
    }

    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| AudioError::Unsupported {
            detail: format!("codec not supported: {e}"),
        })?;
    let codec_name = decoder.codec_info().short_name.to_string();

    let mut info = SourceInfo {
        format: format_name,
        codec: codec_name,
        sample_rate: rate.unwrap_or(0),
        channels: params.channels.as_ref().map_or(0, Channels::count),
        frames: 0,
        clipped_runs: 0,
        peak: 0.0,
        damaged_packets: 0,
        ended_early: false,
    };
    let is_mpeg = info.format == "mp3";
    let mut last_packet: Vec<u8> = Vec::new();
    let mut max_frames = rate.map(|r| frames_in(max_duration, r));
    let mut planes: Vec<Vec<f32>> = Vec::new();
    let mut mono: Vec<f32> = Vec::new();
    let mut clip_runs: Vec<u32> = Vec::new();
    let mut consecutive_bad = 0u32;
    // A demuxer consumes at least a byte per packet; more packets than bytes means
    // it is going round in circles on damaged data.
    let max_packets = byte_len.map_or(u64::MAX, |n| n.saturating_add(1_000));
    let mut packets = 0u64;
    let mut last_error: Option<String> = None;
    let mut clean_end = false;

    loop {
        packets += 1;
        if packets > max_packets {
            info.ended_early = true;
            break;
        }
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) | Err(SymError::ResetRequired) => {
                clean_end = true;
                break;
            }
            Err(SymError::IoError(_)) => {
                // Cut short: what was decoded so far is still usable.
                info.ended_early = true;
                break;
            }
            Err(e) => {
                info.ended_early = true;
                last_error = Some(e.to_string());
                break;
            }
        };
        if packet.track_id != track_id {
            continue;
        }
        if is_mpeg {
            last_packet.clear();
            last_packet.extend_from_slice(&packet.data);
        }
        let buf = match decoder.decode(&packet) {
            Ok(buf) => buf,
            Err(SymError::DecodeError(e)) => {
                skip_damaged(&mut info, &mut consecutive_bad, e)?;
                last_error = Some(e.to_string());
                continue;
            }
            Err(SymError::IoError(e)) => {
                skip_damaged(&mut info, &mut consecutive_bad, "packet cut short")?;
                last_error = Some(e.to_string());
                continue;
            }
            Err(e) => {
                last_error = Some(e.to_string());
                info.ended_early = true;
                break;
            }
        };
        let spec = buf.spec().clone();
        let frames = buf.frames();
        if frames == 0 {
            continue;
        }
        let buf_rate = spec.rate();
        match rate {
            None => {
                check_rate(buf_rate)?;
                rate = Some(buf_rate);
                info.sample_rate = buf_rate;
                max_frames = Some(frames_in(max_duration, buf_rate));
                sink.start(buf_rate)?;
            }
            // A packet at another rate is damage (a corrupt MP3 frame header).
            Some(r) if r != buf_rate => {
                skip_damaged(&mut info, &mut consecutive_bad, "sample rate changed")?;
                continue;
            }
            Some(_) => {}
        }
        let channels = spec.channels().count();
        if channels == 0 || channels > MAX_CHANNELS {
            skip_damaged(&mut info, &mut consecutive_bad, "bad channel count")?;
            continue;
        }
        consecutive_bad = 0;
        info.channels = info.channels.max(channels);
        buf.copy_to_vecs_planar::<f32>(&mut planes);
        let used = &planes[..channels.min(planes.len())];
        let lfe = lfe_plane(spec.channels());
        mix_down(used, lfe, &mut mono);
        measure_clipping(used, &mut clip_runs, &mut info);

        info.frames += mono.len() as u64;
        if let Some(max) = max_frames
            && info.frames > max
        {
            return Err(AudioError::TooLong {
                limit: max_duration,
                length: None,
            });
        }
        sink.samples(&mono)?;
    }

    if info.frames == 0 {
        return Err(match last_error {
            Some(e) => AudioError::Malformed(e),
            None => AudioError::NoSamples,
        });
    }
    if let Some(declared) = declared_frames
        && info.frames < declared.saturating_sub(declared / 100)
    {
        info.ended_early = true;
    }
    // An MPEG stream has no end marker: symphonia stops quietly at a frame cut in
    // half. The file must end with the last frame read (or a tag after it).
    if is_mpeg && clean_end && !ends_with_frame(&tail, &last_packet) {
        info.ended_early = true;
    }
    Ok(info)
}

/// The last bytes of a seekable source (enough for an MPEG frame and its tags); the
/// source is put back at its start.
fn read_tail(
    source: &mut Box<dyn MediaSource>,
    byte_len: Option<u64>,
) -> Result<Vec<u8>, AudioError> {
    let Some(len) = byte_len.filter(|_| source.is_seekable()) else {
        return Ok(Vec::new());
    };
    let n = len.min(TAIL_BYTES);
    source.seek(SeekFrom::Start(len - n))?;
    let mut tail = Vec::with_capacity(n as usize);
    source.by_ref().take(n).read_to_end(&mut tail)?;
    source.seek(SeekFrom::Start(0))?;
    Ok(tail)
}

/// Largest MPEG audio frame (1441 bytes) and the tags that may follow it.
const TAIL_BYTES: u64 = 8 * 1024;

/// Does `tail` end with `frame`, once an ID3v1 tag (`TAG`, 128 bytes) and an APEv2
/// tag (footer `APETAGEX`) are taken off?
fn ends_with_frame(tail: &[u8], frame: &[u8]) -> bool {
    if tail.is_empty() || frame.is_empty() {
        return true; // nothing to compare: not seekable
    }
    let mut end = tail.len();
    if end >= 128 && tail[end - 128..].starts_with(b"TAG") {
        end -= 128;
    }
    if end >= 32 && tail[end - 32..end].starts_with(b"APETAGEX") {
        let size = u32::from_le_bytes([
            tail[end - 20],
            tail[end - 19],
            tail[end - 18],
            tail[end - 17],
        ]) as usize;
        let header = if tail[end - 21] & 0x80 != 0 { 32 } else { 0 };
        end = end.saturating_sub(size + header);
    }
    tail[..end].ends_with(frame)
}

fn check_rate(rate: u32) -> Result<(), AudioError> {
    if RATES.contains(&rate) {
        Ok(())
    } else {
        Err(AudioError::BadSampleRate(rate))
    }
}

fn frames_in(d: Duration, rate: u32) -> u64 {
    (d.as_secs_f64() * f64::from(rate)).ceil() as u64
}

fn skip_damaged(
    info: &mut SourceInfo,
    consecutive: &mut u32,
    what: &str,
) -> Result<(), AudioError> {
    info.damaged_packets += 1;
    *consecutive += 1;
    if *consecutive >= MAX_CONSECUTIVE_BAD_PACKETS {
        if info.frames == 0 {
            return Err(AudioError::Malformed(what.to_string()));
        }
        // Give up on the rest; what came before is kept.
        info.ended_early = true;
    }
    Ok(())
}

/// Index of the LFE plane among the planes of a positioned layout with more than two
/// channels (the planes are in the order of the position bits).
fn lfe_plane(channels: &Channels) -> Option<usize> {
    match channels {
        Channels::Positioned(pos)
            if pos.bits().count_ones() > 2 && pos.contains(Position::LFE1) =>
        {
            let below = pos.bits() & (Position::LFE1.bits() - 1);
            Some(below.count_ones() as usize)
        }
        _ => None,
    }
}

/// Averages the planes (without the LFE plane) into `mono`.
fn mix_down(planes: &[Vec<f32>], lfe: Option<usize>, mono: &mut Vec<f32>) {
    let frames = planes.iter().map(Vec::len).min().unwrap_or(0);
    mono.clear();
    let used: Vec<&[f32]> = planes
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != lfe)
        .map(|(_, p)| &p[..frames])
        .collect();
    match used.as_slice() {
        [] => mono.resize(frames, 0.0),
        [only] => mono.extend(only.iter().map(|s| sanitize(*s))),
        [l, r] => mono.extend(l.iter().zip(r.iter()).map(|(a, b)| sanitize(0.5 * (a + b)))),
        many => {
            let scale = 1.0 / many.len() as f32;
            mono.resize(frames, 0.0);
            for plane in many {
                for (m, s) in mono.iter_mut().zip(plane.iter()) {
                    *m += s;
                }
            }
            for m in mono.iter_mut() {
                *m = sanitize(*m * scale);
            }
        }
    }
}

/// A damaged float file can hold NaN or infinities; they would poison every later stage.
fn sanitize(s: f32) -> f32 {
    if s.is_finite() {
        s.clamp(-4.0, 4.0)
    } else {
        0.0
    }
}

fn measure_clipping(planes: &[Vec<f32>], runs: &mut Vec<u32>, info: &mut SourceInfo) {
    runs.resize(planes.len(), 0);
    for (plane, run) in planes.iter().zip(runs.iter_mut()) {
        for &s in plane {
            let a = if s.is_finite() { s.abs() } else { 0.0 };
            if a > info.peak {
                info.peak = a;
            }
            if a >= FULL_SCALE {
                *run += 1;
                if *run == CLIP_RUN {
                    info.clipped_runs += 1;
                }
            } else {
                *run = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stereo_is_averaged_and_surround_drops_the_lfe() {
        let mut mono = Vec::new();
        mix_down(&[vec![1.0, 0.0], vec![0.0, 1.0]], None, &mut mono);
        assert_eq!(mono, vec![0.5, 0.5]);
        let planes = vec![
            vec![0.3],
            vec![0.3],
            vec![0.3],
            vec![1.0],
            vec![0.3],
            vec![0.3],
        ];
        mix_down(&planes, Some(3), &mut mono);
        assert!((mono[0] - 0.3).abs() < 1e-6);
    }

    #[test]
    fn lfe_plane_is_found_from_the_position_bits() {
        let layout = Position::FRONT_LEFT
            | Position::FRONT_RIGHT
            | Position::FRONT_CENTER
            | Position::LFE1
            | Position::REAR_LEFT
            | Position::REAR_RIGHT;
        assert_eq!(lfe_plane(&Channels::Positioned(layout)), Some(3));
        let stereo = Position::FRONT_LEFT | Position::FRONT_RIGHT;
        assert_eq!(lfe_plane(&Channels::Positioned(stereo)), None);
    }

    #[test]
    fn clipping_counts_runs_not_single_peaks() {
        let mut info = SourceInfo {
            format: String::new(),
            codec: String::new(),
            sample_rate: 8000,
            channels: 1,
            frames: 0,
            clipped_runs: 0,
            peak: 0.0,
            damaged_packets: 0,
            ended_early: false,
        };
        let mut runs = Vec::new();
        measure_clipping(
            &[vec![0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.2]],
            &mut runs,
            &mut info,
        );
        assert_eq!(info.clipped_runs, 1);
        assert_eq!(info.peak, 1.0);
    }

    #[test]
    fn nan_and_infinity_become_silence() {
        let mut mono = Vec::new();
        mix_down(&[vec![f32::NAN, f32::INFINITY, 0.5]], None, &mut mono);
        assert_eq!(mono, vec![0.0, 0.0, 0.5]);
    }
}
