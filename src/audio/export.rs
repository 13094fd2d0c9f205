//! Writing a prepared prompt out as a file: for the voice providers that fetch
//! prompts by URL (the webhook channels), and for a broadcaster who wants to hear a
//! prompt exactly as a caller will.
//!
//! - **WAV µ-law / A-law** (8 kHz, 8-bit G.711, `WAVE_FORMAT_MULAW`/`ALAW` with the
//!   `fact` chunk these formats require): the very bytes a SIP call sends.
//! - **WAV PCM** (8 kHz, 16-bit): the prepared samples before G.711, the best source
//!   for a provider that encodes on its side.
//! - **MP3** (8 kHz mono, 32 kbit/s CBR, MPEG-2.5 layer III, with the LAME Info tag
//!   so that players trim the encoder's delay), with LAME through the
//!   `mp3lame-encoder` crate, which builds the LAME 3.100 sources it ships (no system
//!   library needed). Providers that take MP3 prompt URLs accept 8 kHz.
//!
//! hound writes the PCM file; it has no G.711 format, so the µ-law and A-law headers
//! are written here (44 bytes of RIFF, checked in the tests by decoding them back).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use thiserror::Error;

use super::prompt::Prompt;
use super::resample::TELEPHONE_RATE;

/// The file formats a prompt can be exported to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    WavUlaw,
    WavAlaw,
    WavPcm,
    Mp3,
}

/// Why an export failed.
#[derive(Debug, Error)]
pub enum ExportError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Wav {
        path: String,
        #[source]
        source: hound::Error,
    },
    #[error("MP3 encoder: {0}")]
    Mp3(String),
}

/// Writes `prompt` (its G.711 frames) or `pcm` (its linear samples) to `path` in `format`.
pub fn export(
    format: ExportFormat,
    prompt: &Prompt,
    pcm: &[i16],
    path: &Path,
) -> Result<(), ExportError> {
    match format {
        ExportFormat::WavUlaw => write_g711_wav(path, G711::Ulaw, &prompt.ulaw()),
        ExportFormat::WavAlaw => write_g711_wav(path, G711::Alaw, &prompt.alaw()),
        ExportFormat::WavPcm => write_pcm_wav(path, pcm),
        ExportFormat::Mp3 => {
            let bytes = encode_mp3(pcm)?;
            write_all(path, &bytes)
        }
    }
}

/// Which G.711 law a WAV file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum G711 {
    Ulaw,
    Alaw,
}

/// A G.711 WAV file's bytes: RIFF, `fmt ` (18 bytes), `fact`, `data`.
pub fn g711_wav_bytes(law: G711, codes: &[u8]) -> Vec<u8> {
    let format_tag: u16 = match law {
        G711::Alaw => 6,
        G711::Ulaw => 7,
    };
    let data_len = codes.len() as u32;
    let pad = codes.len() % 2;
    let riff_len = 4 + (8 + 18) + (8 + 4) + 8 + data_len + pad as u32;
    let mut b = Vec::with_capacity(riff_len as usize + 8);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&riff_len.to_le_bytes());
    b.extend_from_slice(b"WAVE");
    b.extend_from_slice(b"fmt ");
    b.extend_from_slice(&18u32.to_le_bytes());
    b.extend_from_slice(&format_tag.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&TELEPHONE_RATE.to_le_bytes());
    b.extend_from_slice(&TELEPHONE_RATE.to_le_bytes()); // bytes per second
    b.extend_from_slice(&1u16.to_le_bytes()); // block align
    b.extend_from_slice(&8u16.to_le_bytes()); // bits per sample
    b.extend_from_slice(&0u16.to_le_bytes()); // no extension
    b.extend_from_slice(b"fact");
    b.extend_from_slice(&4u32.to_le_bytes());
    b.extend_from_slice(&data_len.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    b.extend_from_slice(codes);
    if pad == 1 {
        b.push(0);
    }
    b
}

fn write_g711_wav(path: &Path, law: G711, codes: &[u8]) -> Result<(), ExportError> {
    write_all(path, &g711_wav_bytes(law, codes))
}

fn write_pcm_wav(path: &Path, pcm: &[i16]) -> Result<(), ExportError> {
    let wav_err = |source| ExportError::Wav {
        path: path.display().to_string(),
        source,
    };
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: TELEPHONE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(wav_err)?;
    {
        let mut samples = w.get_i16_writer(pcm.len() as u32);
        for &s in pcm {
            samples.write_sample(s);
        }
        samples.flush().map_err(wav_err)?;
    }
    w.finalize().map_err(wav_err)
}

/// An 8 kHz 16-bit mono PCM WAV file's bytes (for serving over HTTP).
pub fn pcm_wav_bytes(pcm: &[i16]) -> Result<Vec<u8>, ExportError> {
    let wav_err = |source| ExportError::Wav {
        path: "(memory)".into(),
        source,
    };
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: TELEPHONE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = io::Cursor::new(Vec::with_capacity(44 + pcm.len() * 2));
    {
        let mut w = hound::WavWriter::new(&mut out, spec).map_err(wav_err)?;
        let mut samples = w.get_i16_writer(pcm.len() as u32);
        for &s in pcm {
            samples.write_sample(s);
        }
        samples.flush().map_err(wav_err)?;
        w.finalize().map_err(wav_err)?;
    }
    Ok(out.into_inner())
}

/// An MP3 (8 kHz mono, 32 kbit/s) of 8 kHz linear samples.
pub fn encode_mp3(pcm: &[i16]) -> Result<Vec<u8>, ExportError> {
    use mp3lame_encoder::{Bitrate, Builder, FlushGap, MonoPcm, Quality};
    let e = |what: &str, err: &dyn std::fmt::Display| ExportError::Mp3(format!("{what}: {err}"));
    let mut builder = Builder::new().ok_or_else(|| ExportError::Mp3("cannot start LAME".into()))?;
    builder.set_num_channels(1).map_err(|x| e("channels", &x))?;
    builder
        .set_sample_rate(TELEPHONE_RATE)
        .map_err(|x| e("sample rate", &x))?;
    builder
        .set_brate(Bitrate::Kbps32)
        .map_err(|x| e("bit rate", &x))?;
    builder
        .set_quality(Quality::Best)
        .map_err(|x| e("quality", &x))?;
    let mut encoder = builder.build().map_err(|x| e("setup", &x))?;
    let mut out = Vec::with_capacity(mp3lame_encoder::max_required_buffer_size(pcm.len()));
    // LAME wants its buffer sized for the samples of each call.
    for chunk in pcm.chunks(8_000) {
        out.reserve(mp3lame_encoder::max_required_buffer_size(chunk.len()));
        encoder
            .encode_to_vec(MonoPcm(chunk), &mut out)
            .map_err(|x| e("encode", &x))?;
    }
    out.reserve(mp3lame_encoder::max_required_buffer_size(0));
    encoder
        .flush_to_vec::<FlushGap>(&mut out)
        .map_err(|x| e("flush", &x))?;
    // LAME left its first frame blank for the Info tag, which tells decoders the
    // encoder's delay and padding so that they play exactly the prompt (gapless).
    let n = encoder.lame_tag_size();
    let mut tag = Vec::with_capacity(n);
    if n > 0
        && out.len() >= n
        && encoder.lame_tag_encode_to_vec(&mut tag).is_some()
        && tag.len() == n
    {
        out[..n].copy_from_slice(&tag);
    }
    Ok(out)
}

fn write_all(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let io_err = |source| ExportError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut f = BufWriter::new(File::create(path).map_err(io_err)?);
    f.write_all(bytes).map_err(io_err)?;
    f.flush().map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::g711::{decode_ulaw, encode_ulaw};

    #[test]
    fn a_ulaw_wav_has_the_canonical_header() {
        let b = g711_wav_bytes(G711::Ulaw, &[0xFF; 3]);
        assert_eq!(&b[0..4], b"RIFF");
        assert_eq!(
            u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize,
            b.len() - 8
        );
        assert_eq!(u16::from_le_bytes([b[20], b[21]]), 7);
        assert_eq!(&b[38..42], b"fact");
        assert_eq!(&b[50..54], b"data");
        assert_eq!(b.len(), 58 + 3 + 1);
    }

    #[test]
    fn mp3_encoding_gives_frames() {
        let pcm: Vec<i16> = (0..8000)
            .map(|i| encode_ulaw(((i as f32 * 0.3).sin() * 8000.0) as i16))
            .map(decode_ulaw)
            .collect();
        let mp3 = encode_mp3(&pcm).unwrap();
        assert!(mp3.len() > 1000, "{} bytes", mp3.len());
        // MPEG-2.5 layer III frame sync, and the Info tag in the first frame.
        assert_eq!(mp3[0], 0xFF);
        assert_eq!(mp3[1] & 0xE0, 0xE0);
        assert!(mp3[..200].windows(4).any(|w| w == b"Info"));
    }
}
