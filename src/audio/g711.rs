//! G.711 µ-law and A-law, the codecs every telephone network speaks.
//!
//! The encoding itself is `audio-codec-algorithms`, which is bit-exact with the ITU-T
//! G.191 reference (`g711.c` of the Software Tool Library): the tests below check it
//! over all 65,536 linear inputs and all 256 codes against the reference algorithm,
//! written out here from the standard. Other implementations differ in rounding
//! (sox, for one), so "sounds right" is not good enough to choose one.
//!
//! Here are only the conversions kuma needs: float samples to 16-bit linear (rounded,
//! saturating), and whole buffers to codes and back.

pub use audio_codec_algorithms::{decode_alaw, decode_ulaw, encode_alaw, encode_ulaw};

/// The µ-law code of silence.
pub const ULAW_SILENCE: u8 = 0xFF;
/// The A-law code of silence.
pub const ALAW_SILENCE: u8 = 0xD5;

/// A float sample (1.0 = full scale) as 16-bit linear, rounded and saturated.
pub fn to_i16(sample: f32) -> i16 {
    let scaled = (sample * 32768.0).round();
    if scaled.is_nan() {
        0
    } else {
        scaled.clamp(-32768.0, 32767.0) as i16
    }
}

/// Float samples as 16-bit linear.
pub fn pcm_from_f32(samples: &[f32]) -> Vec<i16> {
    samples.iter().copied().map(to_i16).collect()
}

/// µ-law codes of linear samples.
pub fn ulaw_encode(pcm: &[i16]) -> Vec<u8> {
    pcm.iter().copied().map(encode_ulaw).collect()
}

/// A-law codes of linear samples.
pub fn alaw_encode(pcm: &[i16]) -> Vec<u8> {
    pcm.iter().copied().map(encode_alaw).collect()
}

/// Linear samples of µ-law codes.
pub fn ulaw_decode(codes: &[u8]) -> Vec<i16> {
    codes.iter().copied().map(decode_ulaw).collect()
}

/// Linear samples of A-law codes.
pub fn alaw_decode(codes: &[u8]) -> Vec<i16> {
    codes.iter().copied().map(decode_alaw).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ITU-T G.191 STL reference, `g711.c`, written out from the standard
    /// (G.711 tables 1a/1b and 2a/2b, as implemented in the STL). Input is 16-bit
    /// left-justified linear PCM: A-law uses the top 13 bits, µ-law the top 14.
    mod g191 {
        pub fn alaw_compress(lin: i16) -> u8 {
            // 1's complement for negative values: 0 <= ix < 2048.
            let mut ix: i16 = if lin < 0 { (!lin) >> 4 } else { lin >> 4 };
            if ix > 15 {
                // Exponent 0 for ix <= 15.
                let mut iexp: i16 = 1;
                while ix > 16 + 15 {
                    ix >>= 1;
                    iexp += 1;
                }
                ix -= 16; // remove the leading 1
                ix += iexp << 4;
            }
            if lin >= 0 {
                ix |= 0x0080; // sign bit
            }
            (ix ^ 0x0055) as u8 // toggle even bits
        }

        pub fn alaw_expand(code: u8) -> i16 {
            let mut ix = i16::from(code) ^ 0x0055;
            ix &= 0x007F;
            let iexp = ix >> 4;
            let mut mant = ix & 0x000F;
            if iexp > 0 {
                mant += 16;
            }
            mant = (mant << 4) + 0x0008;
            if iexp > 1 {
                mant <<= iexp - 1;
            }
            if code > 127 { mant } else { -mant }
        }

        pub fn ulaw_compress(lin: i16) -> u8 {
            // 1's complement for negative values, then the bias of 33.
            let mut absno: i16 = if lin < 0 {
                ((!lin) >> 2) + 33
            } else {
                (lin >> 2) + 33
            };
            if absno > 0x1FFF {
                absno = 0x1FFF;
            }
            let mut i = absno >> 6;
            let mut segno: i16 = 1;
            while i != 0 {
                segno += 1;
                i >>= 1;
            }
            let high_nibble = 0x0008 - segno;
            let low_nibble = 0x000F - ((absno >> segno) & 0x000F);
            let mut code = (high_nibble << 4) | low_nibble;
            if lin >= 0 {
                code |= 0x0080;
            }
            code as u8
        }

        pub fn ulaw_expand(code: u8) -> i16 {
            let sign: i32 = if code < 0x80 { -1 } else { 1 };
            let mantissa = !i32::from(code); // 1's complement of the code
            let exponent = (mantissa >> 4) & 0x0007;
            let segment = exponent + 1;
            let mantissa = mantissa & 0x000F;
            let step = 4 << segment;
            (sign * ((0x0080 << exponent) + step * mantissa + step / 2 - 4 * 33)) as i16
        }
    }

    #[test]
    fn ulaw_encoding_is_bit_exact_with_g191_over_all_65536_inputs() {
        for x in i16::MIN..=i16::MAX {
            assert_eq!(encode_ulaw(x), g191::ulaw_compress(x), "µ-law of {x}");
        }
    }

    #[test]
    fn alaw_encoding_is_bit_exact_with_g191_over_all_65536_inputs() {
        for x in i16::MIN..=i16::MAX {
            assert_eq!(encode_alaw(x), g191::alaw_compress(x), "A-law of {x}");
        }
    }

    #[test]
    fn decoding_is_bit_exact_with_g191_for_all_256_codes() {
        for c in 0..=255u8 {
            assert_eq!(decode_ulaw(c), g191::ulaw_expand(c), "µ-law code {c}");
            assert_eq!(decode_alaw(c), g191::alaw_expand(c), "A-law code {c}");
        }
    }

    #[test]
    fn the_reference_itself_matches_known_points_of_the_standard() {
        // G.711 table 2a/2b: µ-law 0xFF and 0x7F are the two zeros, 0x80 the largest
        // positive value (8031 in 14 bits = 32124 left-justified); A-law 0xD5 is +8.
        assert_eq!(g191::ulaw_expand(0xFF), 0);
        assert_eq!(g191::ulaw_expand(0x80), 32124);
        assert_eq!(g191::ulaw_expand(0x00), -32124);
        assert_eq!(g191::alaw_expand(0xD5), 8);
        assert_eq!(g191::alaw_expand(0xAA), 32256);
        assert_eq!(g191::ulaw_compress(0), ULAW_SILENCE);
        assert_eq!(g191::alaw_compress(0), ALAW_SILENCE);
    }

    #[test]
    fn float_conversion_rounds_and_saturates() {
        assert_eq!(to_i16(0.0), 0);
        assert_eq!(to_i16(1.0), 32767);
        assert_eq!(to_i16(-1.0), -32768);
        assert_eq!(to_i16(2.0), 32767);
        assert_eq!(to_i16(f32::NAN), 0);
        assert_eq!(to_i16(0.5 / 32768.0), 1);
    }
}
