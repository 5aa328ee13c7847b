//! The `Date` header value, formatted once a second per thread (as hyper caches it).

use std::cell::RefCell;
use std::time::UNIX_EPOCH;

/// An IMF-fixdate is always this long: `Sun, 06 Nov 1994 08:49:37 GMT`.
const LEN: usize = 29;

thread_local! {
    static CACHED: RefCell<(u64, [u8; LEN])> = const { RefCell::new((u64::MAX, [0; LEN])) };
}

/// Appends the current date, in HTTP's format, to `out`.
pub(super) fn extend(out: &mut Vec<u8>) {
    let now = crate::poll_clock::system_now();
    let second = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            let text = httpdate::fmt_http_date(now);
            if text.len() == LEN {
                cached.1.copy_from_slice(text.as_bytes());
                cached.0 = second;
            } else {
                // Not reached for dates of this era; written as it is all the same.
                out.extend_from_slice(text.as_bytes());
                return;
            }
        }
        out.extend_from_slice(&cached.1);
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn the_date_parses_back_to_now() {
        let mut out = Vec::new();
        extend(&mut out);
        let text = String::from_utf8(out).unwrap();
        let parsed = httpdate::parse_http_date(&text).unwrap();
        let drift = SystemTime::now().duration_since(parsed).unwrap();
        assert!(drift.as_secs() < 2, "{text}");
    }
}
