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
