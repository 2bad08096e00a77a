//! Graph's date-time text (`2024-05-01T09:30:00Z`) from milliseconds since the Unix epoch,
//! without a calendar dependency: the days-to-civil conversion of Howard Hinnant's algorithms.

/// The civil date (year, month 1–12, day 1–31) of a day count since 1970-01-01.
fn civil_from_days(days_since_epoch: i64) -> (i64, u32, u32) {
    let shifted = days_since_epoch + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn split(milliseconds_since_epoch: i64) -> (i64, u32, u32, i64, i64, i64) {
    let seconds = milliseconds_since_epoch.div_euclid(1_000);
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let second_of_day = seconds.rem_euclid(86_400);
    (
        year,
        month,
        day,
        second_of_day / 3_600,
        second_of_day % 3_600 / 60,
        second_of_day % 60,
    )
}

/// The day count since 1970-01-01 of a civil date (the inverse of `civil_from_days`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Parses Graph's `DateTimeOffset` in UTC — `2024-05-01T09:30:00Z`, with optional fractional
/// seconds (`.123Z`), or a bare date `2024-05-01` (midnight) — into milliseconds since the epoch.
/// `None` for anything else, including impossible dates (`2023-02-29`).
pub fn parse_date_time(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if !text.is_ascii() || bytes.len() < 10 {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|byte| byte.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)? as u32, number(8..10)? as u32);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > days_in_month {
        return None;
    }
    let mut milliseconds = 0;
    let mut seconds_of_day = 0;
    if bytes.len() > 10 {
        if bytes.len() < 20 || bytes[10] != b'T' || bytes[13] != b':' || bytes[16] != b':' {
            return None;
        }
        let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        seconds_of_day = hour * 3_600 + minute * 60 + second;
        let rest = &text[19..];
        let fraction = rest.strip_suffix('Z')?;
        if let Some(digits) = fraction.strip_prefix('.') {
            if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
                return None;
            }
            let padded = format!("{digits:0<3}");
            milliseconds = padded[..3].parse::<i64>().ok()?;
        } else if !fraction.is_empty() {
            return None;
        }
    }
    Some((days_from_civil(year, month, day) * 86_400 + seconds_of_day) * 1_000 + milliseconds)
}

/// `2024-05-01T09:30:00Z`: Graph's `DateTimeOffset` in UTC.
pub fn format_date_time(milliseconds_since_epoch: i64) -> String {
    let (year, month, day, hour, minute, second) = split(milliseconds_since_epoch);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

/// `2024-05-01T09:30:00`: the form of `innerError.date` in Graph's error envelope.
pub fn format_error_date(milliseconds_since_epoch: i64) -> String {
    let (year, month, day, hour, minute, second) = split(milliseconds_since_epoch);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_inverts_formatting_and_refuses_impossible_dates() {
        for milliseconds in [
            0,
            951_782_400_000,
            1_700_000_000_000,
            1_714_555_800_000,
            -86_400_000,
        ] {
            assert_eq!(
                parse_date_time(&format_date_time(milliseconds)),
                Some(milliseconds)
            );
        }
        assert_eq!(
            parse_date_time("2024-05-01T09:30:00.123Z"),
            Some(1_714_555_800_123)
        );
        assert_eq!(parse_date_time("2024-05-01T09:30:00.1Z"), Some(1_714_555_800_100));
        assert_eq!(parse_date_time("2024-05-01"), Some(1_714_521_600_000));
        for bad in [
            "",
            "2024",
            "2023-02-29",
            "2024-13-01",
            "2024-04-31",
            "2024-05-01T24:00:00Z",
            "2024-05-01T09:30:00",
            "2024-05-01T09:30:00+01:00",
            "2024-05-01T09:30:00.Z",
            "2024-05-01 09:30:00Z",
            "２０２４-05-01",
            "2024-05-01T09:30:00ZZ",
            "+024-05-01",
        ] {
            assert_eq!(parse_date_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn dates_are_those_of_the_calendar() {
        assert_eq!(format_date_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_date_time(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(format_date_time(951_782_400_999), "2000-02-29T00:00:00Z");
        assert_eq!(format_date_time(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(format_date_time(1_714_555_800_123), "2024-05-01T09:30:00Z");
        assert_eq!(format_error_date(1_714_555_800_123), "2024-05-01T09:30:00");
        assert_eq!(format_date_time(-1_000), "1969-12-31T23:59:59Z");
    }
}
