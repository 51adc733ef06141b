//! Durations from input (flags, action inputs, environment, HTTP bodies) without panics:
//! `Duration::from_secs_f64` panics on a negative, NaN or huge value and `Instant + huge`
//! overflows, so every duration a user or a client gives goes through [`seconds`] or
//! [`minutes`] (a clear error naming the input), and every deadline through [`deadline`].

use std::time::{Duration, Instant};

/// The longest duration accepted from input: 10 years (a deadline this far is "never", and
/// `Instant::now() + MAX` cannot overflow).
pub const MAX: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// A number of seconds ≥ 0 and ≤ [`MAX`] as a duration; else what is wrong, naming `name`.
pub fn seconds(name: &str, value: f64) -> Result<Duration, String> {
    if !value.is_finite() || value < 0.0 || value > MAX.as_secs_f64() {
        return Err(format!(
            "{name} is {value}: use a number of seconds from 0 to {} (10 years)",
            MAX.as_secs()
        ));
    }
    Duration::try_from_secs_f64(value).map_err(|e| format!("{name} is {value}: {e}"))
}

/// A number of minutes ≥ 0 and ≤ [`MAX`] as a duration; else what is wrong, naming `name`.
pub fn minutes(name: &str, value: f64) -> Result<Duration, String> {
    let max = MAX.as_secs_f64() / 60.0;
    if !value.is_finite() || value < 0.0 || value > max {
        return Err(format!(
            "{name} is {value}: use a number of minutes from 0 to {max:.0} (10 years)"
        ));
    }
    seconds(name, value * 60.0)
}

/// A whole number of seconds as a duration, at most [`MAX`].
pub fn whole_seconds(name: &str, value: u64) -> Result<Duration, String> {
    if value > MAX.as_secs() {
        return Err(format!(
            "{name} is {value}: use a number of seconds up to {} (10 years)",
            MAX.as_secs()
        ));
    }
    Ok(Duration::from_secs(value))
}

/// `now + after`, saturating at a far future instead of overflowing.
pub fn deadline(after: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(after)
        .or_else(|| now.checked_add(MAX))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_would_panic() {
        for bad in [-1.0, f64::NAN, f64::INFINITY, 1e20, 1e300] {
            assert!(seconds("--x", bad).is_err(), "{bad}");
            assert!(minutes("--x", bad).is_err(), "{bad}");
        }
        assert!(minutes("--x", 1e18).unwrap_err().starts_with("--x is "));
        assert!(whole_seconds("--x", u64::MAX).is_err());
        assert_eq!(seconds("--x", 1.5).unwrap(), Duration::from_millis(1500));
        assert_eq!(minutes("--x", 0.5).unwrap(), Duration::from_secs(30));
        assert_eq!(seconds("--x", 0.0).unwrap(), Duration::ZERO);
    }

    #[test]
    fn deadlines_saturate() {
        let far = deadline(Duration::MAX);
        assert!(far > Instant::now() + Duration::from_secs(3600));
        let near = deadline(Duration::from_secs(1));
        assert!(near <= Instant::now() + Duration::from_secs(1));
    }
}
