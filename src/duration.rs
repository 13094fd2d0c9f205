//! Durations as broadcasters write them: `6s`, `90m`, `48h`, `2d`, `1h30m`, `500ms`.

use std::time::Duration;

/// The longest duration accepted: no setting needs more, and every deadline
/// computed from one (`now + timeout`, a `std::time::Instant` or a chrono time)
/// stays far from the end of what those types can hold, where `+` panics.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Parses a duration such as `6s`, `90m`, `48h`, `2d` or `1h30m`, at most
/// [`MAX_DURATION`] (about 100 years).
///
/// The error says what was expected, ready to follow `FILE:LINE: key: `.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let expected = "expected a duration such as \"6s\", \"90m\", \"48h\" or \"2d\"";
    let s = text.trim();
    if s.is_empty() {
        return Err(format!("empty duration, {expected}"));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("`{text}` is not a duration, {expected}"));
        }
        let (number, after) = rest.split_at(digits);
        let value: u64 = number
            .parse()
            .map_err(|_| format!("`{text}`: the number is too large"))?;
        let unit_len = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, after) = after.split_at(unit_len);
        let millis_per_unit: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => {
                return Err(format!(
                    "`{text}` has no unit, {expected} (units: ms, s, m, h, d)"
                ));
            }
            other => {
                return Err(format!(
                    "`{text}` has an unknown unit `{other}`, {expected} (units: ms, s, m, h, d)"
                ));
            }
        };
        let millis = value
            .checked_mul(millis_per_unit)
            .ok_or_else(|| format!("`{text}` is too long"))?;
        total = total
            .checked_add(Duration::from_millis(millis))
            .ok_or_else(|| format!("`{text}` is too long"))?;
        rest = after;
    }
    if total > MAX_DURATION {
        return Err(format!("`{text}` is too long (at most 100 years)"));
    }
    Ok(total)
}

/// Writes a duration back the way a broadcaster would (`1h30m`, `6s`, `250ms`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    if ms > 0 {
        out.push_str(&format!("{ms}ms"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_combinations() {
        assert_eq!(parse_duration("6s"), Ok(Duration::from_secs(6)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("48h"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration(" 2m "), Ok(Duration::from_secs(120)));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in [
            "",
            "6",
            "s",
            "6x",
            "six seconds",
            "-5s",
            "1.5h",
            "99999999999999999999d",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(!err.is_empty(), "{bad}");
        }
        assert!(parse_duration("6").unwrap_err().contains("no unit"));
        assert!(
            parse_duration("6x")
                .unwrap_err()
                .contains("unknown unit `x`")
        );
    }

    #[test]
    fn refuses_durations_past_a_century() {
        // `now + 9999999999d` panicked in the flow engine (chrono) and in the SIP
        // call (std Instant): issue 11.
        assert!(parse_duration("36500d").is_ok());
        let err = parse_duration("9999999999d").unwrap_err();
        assert!(err.contains("too long"), "{err}");
        assert!(parse_duration("36501d").unwrap_err().contains("too long"));
    }

    #[test]
    fn formats_back() {
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(6)), "6s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }
}
