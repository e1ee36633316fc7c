//! Timestamps in the form LeanSpec writes (`2025-11-05T13:35:26.669Z`, like JavaScript's
//! `toISOString`).

use std::time::SystemTime;

/// `t` as RFC 3339 UTC with milliseconds.
pub fn rfc3339_millis(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Now, as [`rfc3339_millis`].
pub fn now_rfc3339() -> String {
    rfc3339_millis(SystemTime::now())
}
