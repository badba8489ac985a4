//! Send-time maths in the customer's time zone.
//!
//! Rules (documented in docs/scheduling.md):
//! * `at_local` is a wall-clock target. Inside a spring-forward gap it moves forward by the
//!   gap (02:30 → 03:30 on a 1-hour gap); inside a fall-back overlap it takes the earlier instant.
//! * A send window opens at the first instant whose local wall-clock time is at or after `start`
//!   (so an opening inside a gap opens when the gap ends); a send outside the window is deferred
//!   to the next opening, never dropped.
//! * Nothing is ever scheduled before the step's earliest time.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

use super::SendWindow;

/// A computed send time and the reasons it moved, one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// When to send.
    pub at: DateTime<Utc>,
    /// Human-readable adjustments (deferrals, DST shifts).
    pub notes: Vec<String>,
}

fn offsets_around(tz: Tz, naive: NaiveDateTime) -> (Duration, Duration) {
    // Transitions are far apart (the largest known gap is Samoa's skipped day), so the
    // offsets a day either side are the ones before and after this one.
    let before = tz.offset_from_utc_datetime(&(naive - Duration::hours(26))).fix();
    let after = tz.offset_from_utc_datetime(&(naive + Duration::hours(26))).fix();
    (Duration::seconds(i64::from(before.local_minus_utc())), Duration::seconds(i64::from(after.local_minus_utc())))
}

fn wall(tz: Tz, t: DateTime<Utc>) -> NaiveDateTime {
    t.with_timezone(&tz).naive_local()
}

/// The instant a wall-clock target means, moving a non-existent time forward by the gap.
pub fn resolve_wall_target(tz: Tz, naive: NaiveDateTime) -> (DateTime<Utc>, Option<String>) {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => (t.with_timezone(&Utc), None),
        LocalResult::Ambiguous(a, b) => {
            let t = a.min(b).with_timezone(&Utc);
            (t, Some(format!("{naive} happens twice in {tz} (clocks go back); the earlier one is used")))
        }
        LocalResult::None => {
            let (before, after) = offsets_around(tz, naive);
            let t = Utc.from_utc_datetime(&(naive - before));
            let gap = after - before;
            let note = format!(
                "{naive} does not exist in {tz} (clocks go forward); moved forward by {}m to {}",
                gap.num_minutes(),
                wall(tz, t).format("%H:%M")
            );
            (t, Some(note))
        }
    }
}

/// The first instant whose local wall-clock time is at or after `naive`.
pub fn first_instant_at_or_after_wall(tz: Tz, naive: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, b) => a.min(b).with_timezone(&Utc),
        LocalResult::None => {
            let (before, after) = offsets_around(tz, naive);
            // lo is before the gap (wall < naive), hi after it (wall > naive).
            let mut lo = Utc.from_utc_datetime(&(naive - after)).timestamp();
            let mut hi = Utc.from_utc_datetime(&(naive - before)).timestamp();
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                let t = DateTime::from_timestamp(mid, 0).unwrap_or_default();
                if wall(tz, t) >= naive { hi = mid } else { lo = mid }
            }
            DateTime::from_timestamp(hi, 0).unwrap_or_default()
        }
    }
}

fn day_allowed(w: &SendWindow, date: NaiveDate) -> bool {
    use chrono::Datelike;
    w.days.as_ref().is_none_or(|days| days.iter().any(|d| d.weekday() == date.weekday()))
}

/// Whether `t` falls inside the window in `tz`.
pub fn in_window(w: &SendWindow, tz: Tz, t: DateTime<Utc>) -> bool {
    let local = wall(tz, t);
    let (time, date) = (local.time(), local.date());
    let (start, end) = (w.start.0, w.end.0);
    if start == end {
        return day_allowed(w, date);
    }
    if start < end {
        time >= start && time < end && day_allowed(w, date)
    } else if time >= start {
        day_allowed(w, date)
    } else if time < end {
        date.pred_opt().is_some_and(|d| day_allowed(w, d))
    } else {
        false
    }
}

/// The instants after `t`, up to `until`, at which the clocks go back, to the second: the
/// wall clock jumps back there, so a window that had closed can be open again.
fn fall_backs(tz: Tz, t: DateTime<Utc>, until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let offset = |x: DateTime<Utc>| tz.offset_from_utc_datetime(&x.naive_utc()).fix().local_minus_utc();
    let at = |s: i64| DateTime::from_timestamp(s, 0).unwrap_or_default();
    let mut found = Vec::new();
    let mut a = t;
    // Transitions are hours apart at the very least; 30-minute steps miss none.
    while a < until {
        let b = (a + Duration::minutes(30)).min(until);
        if offset(b) < offset(a) {
            let (mut lo, mut hi) = (a.timestamp(), b.timestamp());
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if offset(at(mid)) == offset(a) { lo = mid } else { hi = mid }
            }
            found.push(at(hi));
        }
        a = b;
    }
    found
}

/// The earliest instant at or after `t` inside the window: the window's next opening on an
/// allowed day, or earlier, the moment the clocks go back into the window (a window ending
/// at 01:30 reopens when 02:00 daylight time becomes 01:00 standard time).
pub fn next_opening(w: &SendWindow, tz: Tz, t: DateTime<Utc>) -> DateTime<Utc> {
    if in_window(w, tz, t) {
        return t;
    }
    let today = wall(tz, t).date();
    let mut date = today - Duration::days(1);
    let mut opening = None;
    for _ in 0..10 {
        if day_allowed(w, date) {
            let o = first_instant_at_or_after_wall(tz, date.and_time(w.start.0));
            if o >= t {
                opening = Some(o);
                break;
            }
        }
        date += Duration::days(1);
    }
    // A window with no allowed day cannot be configured (days is non-empty), but never drop a send.
    let opening = opening.unwrap_or(t);
    fall_backs(tz, t, opening).into_iter().find(|x| in_window(w, tz, *x)).unwrap_or(opening)
}

/// The first `at` local time at or after `earliest`.
pub fn at_local(tz: Tz, earliest: DateTime<Utc>, at: NaiveTime) -> (DateTime<Utc>, Option<String>) {
    let mut date = wall(tz, earliest).date() - Duration::days(1);
    loop {
        let (t, note) = resolve_wall_target(tz, date.and_time(at));
        if t >= earliest {
            return (t, note);
        }
        date += Duration::days(1);
    }
}

/// When a step whose earliest time is `earliest` may go out.
pub fn step_time(earliest: DateTime<Utc>, tz: Tz, at: Option<NaiveTime>, window: Option<&SendWindow>) -> Plan {
    let mut notes = Vec::new();
    let mut t = earliest;
    if let Some(at) = at {
        let (target, note) = at_local(tz, earliest, at);
        notes.push(format!(
            "at_local {}: first {} local at or after the delay",
            at.format("%H:%M"),
            at.format("%H:%M")
        ));
        notes.extend(note);
        t = target;
    }
    if let Some(w) = window {
        let opened = next_opening(w, tz, t);
        if opened > t
            && let LocalResult::None = tz.from_local_datetime(&wall(tz, opened).date().and_time(w.start.0))
        {
            notes.push(format!(
                "the window opening {} does not exist on {} in {tz} (clocks go forward); it opens at {}",
                w.start.0.format("%H:%M"),
                wall(tz, opened).date(),
                wall(tz, opened).format("%H:%M")
            ));
        }
        if opened > t {
            notes.push(format!(
                "deferred: {} local is outside the send window {}–{}; next opening {} local",
                wall(tz, t).format("%a %H:%M"),
                w.start.0.format("%H:%M"),
                w.end.0.format("%H:%M"),
                wall(tz, opened).format("%a %Y-%m-%d %H:%M"),
            ));
            t = opened;
        }
    }
    Plan { at: t, notes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::LocalTime;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("rfc3339").with_timezone(&Utc)
    }
    fn hm(s: &str) -> NaiveTime {
        NaiveTime::parse_from_str(s, "%H:%M").expect("HH:MM")
    }
    fn window(start: &str, end: &str) -> SendWindow {
        SendWindow { start: LocalTime(hm(start)), end: LocalTime(hm(end)), days: None }
    }

    // Expected instants below were computed with Python's zoneinfo, not with this code.

    #[test]
    fn at_local_in_spring_forward_gap_moves_by_the_gap() {
        // Europe/Berlin 2026-03-29: 02:00 → 03:00. 02:30 does not exist.
        let (t, note) = at_local(chrono_tz::Europe::Berlin, utc("2026-03-28T23:00:00Z"), hm("02:30"));
        assert_eq!(t, utc("2026-03-29T01:30:00Z")); // 03:30 CEST
        assert!(note.is_some_and(|n| n.contains("moved forward by 60m")));
    }

    #[test]
    fn at_local_in_fall_back_overlap_takes_the_earlier_instant() {
        // America/New_York 2026-11-01: 02:00 EDT → 01:00 EST; 01:30 happens twice.
        let (t, _) = at_local(chrono_tz::America::New_York, utc("2026-11-01T04:00:00Z"), hm("01:30"));
        assert_eq!(t, utc("2026-11-01T05:30:00Z")); // 01:30 EDT
    }

    #[test]
    fn a_window_reopened_by_the_clocks_going_back_is_used() {
        // New York, 1 November 2026: 02:00 EDT (06:00Z) becomes 01:00 EST, inside 21:00-01:30.
        let ny = chrono_tz::America::New_York;
        let p = step_time(utc("2026-11-01T05:40:00Z"), ny, None, Some(&window("21:00", "01:30")));
        assert_eq!(p.at, utc("2026-11-01T06:00:00Z"), "{:?}", p.notes);
        assert!(in_window(&window("21:00", "01:30"), ny, p.at));
        // Before the transition the window is still shut, so nothing earlier would do.
        assert!(!in_window(&window("21:00", "01:30"), ny, utc("2026-11-01T05:59:59Z")));
        // A window the repeated hour does not reach opens as usual.
        let p = step_time(utc("2026-11-01T05:40:00Z"), ny, None, Some(&window("09:00", "17:00")));
        assert_eq!(p.at, utc("2026-11-01T14:00:00Z"));
    }

    #[test]
    fn window_defers_to_next_opening_in_local_time() {
        // 23:00 in Kolkata (+05:30) is outside 09:00–21:00 → 09:00 next day = 03:30Z.
        let p = step_time(utc("2026-06-10T17:30:00Z"), chrono_tz::Asia::Kolkata, None, Some(&window("09:00", "21:00")));
        assert_eq!(p.at, utc("2026-06-11T03:30:00Z"));
        assert_eq!(p.notes.len(), 1);
        // Inside the window nothing moves.
        let p = step_time(utc("2026-06-10T06:00:00Z"), chrono_tz::Asia::Kolkata, None, Some(&window("09:00", "21:00")));
        assert_eq!(p.at, utc("2026-06-10T06:00:00Z"));
        assert!(p.notes.is_empty());
    }

    #[test]
    fn window_opening_inside_a_gap_opens_when_the_gap_ends() {
        // Berlin 2026-03-29, window from 02:30: first wall time ≥ 02:30 is 03:00 CEST = 01:00Z.
        let p =
            step_time(utc("2026-03-28T22:00:00Z"), chrono_tz::Europe::Berlin, None, Some(&window("02:30", "21:00")));
        assert_eq!(p.at, utc("2026-03-29T01:00:00Z"));
    }

    #[test]
    fn overnight_window_and_odd_offsets() {
        // Chatham +13:45 in southern summer. 12:00Z = 01:45 local, inside 20:00–02:00.
        assert!(in_window(&window("20:00", "02:00"), chrono_tz::Pacific::Chatham, utc("2026-01-10T12:00:00Z")));
        // Kathmandu +05:45: 03:00Z = 08:45 local, before 09:00 → opens 03:15Z.
        let p =
            step_time(utc("2026-05-01T03:00:00Z"), chrono_tz::Asia::Kathmandu, None, Some(&window("09:00", "21:00")));
        assert_eq!(p.at, utc("2026-05-01T03:15:00Z"));
    }

    #[test]
    fn at_local_then_window_with_negative_dst_dublin() {
        // Europe/Dublin uses negative DST (IST is standard, GMT the "winter" offset).
        // 2026-01-15 10:00 local = 10:00Z; 2026-07-15 10:00 local = 09:00Z.
        let (t, _) = at_local(chrono_tz::Europe::Dublin, utc("2026-01-15T00:00:00Z"), hm("10:00"));
        assert_eq!(t, utc("2026-01-15T10:00:00Z"));
        let (t, _) = at_local(chrono_tz::Europe::Dublin, utc("2026-07-15T00:00:00Z"), hm("10:00"));
        assert_eq!(t, utc("2026-07-15T09:00:00Z"));
    }

    #[test]
    fn extreme_offsets_plus_14_and_minus_11() {
        // Kiritimati +14: 08:00Z is 22:00 local → 09:00 local next day = 19:00Z the same UTC day.
        let p = step_time(
            utc("2026-06-10T08:00:00Z"),
            chrono_tz::Pacific::Kiritimati,
            None,
            Some(&window("09:00", "21:00")),
        );
        assert_eq!(p.at, utc("2026-06-10T19:00:00Z"));
        // Pago Pago −11: 19:00Z is 08:00 local → 09:00 local = 20:00Z.
        let p = step_time(
            utc("2026-06-10T19:00:00Z"),
            chrono_tz::Pacific::Pago_Pago,
            None,
            Some(&window("09:00", "21:00")),
        );
        assert_eq!(p.at, utc("2026-06-10T20:00:00Z"));
    }

    #[test]
    fn never_before_earliest() {
        let earliest = utc("2026-06-10T10:00:01Z");
        let (t, _) = at_local(chrono_tz::UTC, earliest, hm("10:00"));
        assert_eq!(t, utc("2026-06-11T10:00:00Z"));
    }

    mod properties {
        use chrono::Timelike;
        use proptest::prelude::*;

        use super::*;

        fn zone() -> impl Strategy<Value = Tz> {
            (0..chrono_tz::TZ_VARIANTS.len()).prop_map(|i| chrono_tz::TZ_VARIANTS[i])
        }
        fn instant() -> impl Strategy<Value = DateTime<Utc>> {
            // 2020 … 2036: covers historical and future DST rules.
            (1_577_836_800_i64..2_082_758_400).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap_or_default())
        }
        fn hhmm() -> impl Strategy<Value = NaiveTime> {
            (0u32..24, 0u32..60).prop_map(|(h, m)| NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default())
        }
        fn window() -> impl Strategy<Value = SendWindow> {
            (hhmm(), hhmm()).prop_filter("non-empty", |(a, b)| a != b).prop_map(|(start, end)| SendWindow {
                start: LocalTime(start),
                end: LocalTime(end),
                days: None,
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Never early, never in quiet hours, and minimal: no allowed instant between the
            /// earliest time and the chosen one.
            #[test]
            fn window_sends_are_on_time_in_hours_and_minimal(tz in zone(), earliest in instant(), w in window()) {
                let p = step_time(earliest, tz, None, Some(&w));
                prop_assert!(p.at >= earliest);
                prop_assert!(in_window(&w, tz, p.at), "{} local is outside {:?}", p.at.with_timezone(&tz), w);
                prop_assert!(p.at - earliest <= Duration::days(2));
                if p.at > earliest {
                    prop_assert!(!in_window(&w, tz, p.at - Duration::seconds(1)), "an earlier second was allowed");
                    let mid = earliest + (p.at - earliest) / 2;
                    prop_assert!(!in_window(&w, tz, mid), "{mid} was allowed");
                }
            }

            /// `at_local` lands on that wall-clock time (or just after a gap), at or after the
            /// delay, and within a day and a bit of it.
            #[test]
            fn at_local_is_on_time_and_on_the_clock(tz in zone(), earliest in instant(), at in hhmm()) {
                let (t, note) = at_local(tz, earliest, at);
                prop_assert!(t >= earliest);
                prop_assert!(t - earliest <= Duration::hours(50));
                let local = t.with_timezone(&tz).time();
                if note.as_deref().is_none_or(|n| !n.contains("does not exist")) {
                    prop_assert_eq!((local.hour(), local.minute()), (at.hour(), at.minute()));
                } else {
                    // The target did not exist that day, and the send is after it on the clock.
                    let l = t.with_timezone(&tz).naive_local();
                    let skipped = [l.date(), l.date() - Duration::days(1)].into_iter().map(|d| d.and_time(at)).find(|n| {
                        matches!(tz.from_local_datetime(n), LocalResult::None) && *n < l
                    });
                    prop_assert!(skipped.is_some(), "{l} is not just after a skipped {at}");
                }
            }
        }
    }
}
