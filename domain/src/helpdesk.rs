//! The help desk's online/offline switch, what widget visitors are told, its business hours and
//! the rules its reports follow. One stream per help desk: `helpdesk-<id>`; there is one help
//! desk, [`HELP_DESK_ID`].
//!
//! Business hours are a weekly schedule in one fixed UTC offset: per weekday, zero or more
//! opening ranges in local minutes after midnight (`opens` inclusive, `closes` exclusive). A
//! range never crosses midnight: 22:00–02:00 is written as two ranges, 22:00–24:00 on one day
//! and 00:00–02:00 on the next. [`business_seconds`] counts the open time between two instants.

use crate::rules::{check_text, invalid};
use crate::{Actor, Aggregate, DomainError, Timestamp, event_family};
use serde::{Deserialize, Serialize};

/// The id of the one help desk: its stream is `helpdesk-main`. Read models that follow the help
/// desk's settings (the reports' rules) read that stream.
pub const HELP_DESK_ID: &str = "main";

/// Most opening ranges a schedule may have, over the whole week.
pub const MAX_OPENING_RANGES: usize = 56;
/// The largest UTC offset a schedule may use, either way (UTC−14:00 to UTC+14:00).
pub const MAX_UTC_OFFSET_MINUTES: i32 = 14 * 60;
/// Minutes in a day: the latest closing time.
pub const MINUTES_PER_DAY: u16 = 24 * 60;

/// One opening range on one weekday, in the schedule's local time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OpeningHours {
    /// 1 = Monday .. 7 = Sunday.
    pub weekday: u8,
    /// Minutes after local midnight the range starts (inclusive).
    pub opens: u16,
    /// Minutes after local midnight the range ends (exclusive); at most 1440 (midnight).
    pub closes: u16,
}

/// A weekly schedule of opening hours in one fixed UTC offset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BusinessHours {
    /// Local time minus UTC, in minutes (e.g. 60 for UTC+01:00, -300 for UTC−05:00).
    pub utc_offset_minutes: i32,
    /// The opening ranges, sorted by weekday then opening time (as `SetBusinessHours` stores
    /// them); ranges of one day never overlap.
    pub days: Vec<OpeningHours>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HelpDeskWentOnline {
    pub by: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HelpDeskWentOffline {
    pub by: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WidgetMessagesChanged {
    pub online_message: String,
    pub offline_message: String,
    pub by: Actor,
    pub at: Timestamp,
}

/// The help desk's opening hours were set (replacing any earlier schedule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusinessHoursSet {
    pub schedule: BusinessHours,
    pub by: Actor,
    pub at: Timestamp,
}

/// How reports measure durations changed. With `business_hours_only`, first response and
/// resolution times count only the time inside the business hours; otherwise wall-clock time.
/// Reports apply the rules to all of history when they are rebuilt, not from this event on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportRulesChanged {
    pub business_hours_only: bool,
    pub by: Actor,
    pub at: Timestamp,
}

event_family! {
    /// Everything that happens to the help desk's availability, schedule and report rules.
    pub enum HelpDeskEvent {
        HelpDeskWentOnline,
        HelpDeskWentOffline,
        WidgetMessagesChanged,
        BusinessHoursSet,
        ReportRulesChanged,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum HelpDeskCommand {
    GoOnline {
        by: Actor,
        at: Timestamp,
    },
    GoOffline {
        by: Actor,
        at: Timestamp,
    },
    SetWidgetMessages {
        online_message: String,
        offline_message: String,
        by: Actor,
        at: Timestamp,
    },
    /// Replaces the weekly schedule; ranges may come in any order.
    SetBusinessHours {
        schedule: BusinessHours,
        by: Actor,
        at: Timestamp,
    },
    /// Whether report durations count business hours only. Turning it on needs a schedule.
    ChangeReportRules {
        business_hours_only: bool,
        by: Actor,
        at: Timestamp,
    },
}

/// Widget messages shown until an admin sets others.
pub const DEFAULT_ONLINE_MESSAGE: &str = "We're online. Ask us anything!";
pub const DEFAULT_OFFLINE_MESSAGE: &str =
    "We're away right now. Leave a message and we'll get back to you.";

#[derive(Debug, Clone, PartialEq)]
pub struct HelpDesk {
    pub online: bool,
    pub online_message: String,
    pub offline_message: String,
    /// The opening hours, once set.
    pub business_hours: Option<BusinessHours>,
    /// Whether report durations count business hours only.
    pub business_hours_only: bool,
}

impl Default for HelpDesk {
    fn default() -> Self {
        HelpDesk {
            online: false,
            online_message: DEFAULT_ONLINE_MESSAGE.into(),
            offline_message: DEFAULT_OFFLINE_MESSAGE.into(),
            business_hours: None,
            business_hours_only: false,
        }
    }
}

impl HelpDesk {
    /// What a widget visitor is told now.
    pub fn visitor_message(&self) -> &str {
        if self.online {
            &self.online_message
        } else {
            &self.offline_message
        }
    }
}

impl Aggregate for HelpDesk {
    type Command = HelpDeskCommand;
    type Event = HelpDeskEvent;
    const STREAM_PREFIX: &'static str = "helpdesk";

    fn decide(&self, command: HelpDeskCommand) -> Result<Vec<HelpDeskEvent>, DomainError> {
        match command {
            HelpDeskCommand::GoOnline { by, at } if !self.online => {
                Ok(vec![HelpDeskWentOnline { by, at }.into()])
            }
            HelpDeskCommand::GoOffline { by, at } if self.online => {
                Ok(vec![HelpDeskWentOffline { by, at }.into()])
            }
            HelpDeskCommand::GoOnline { .. } | HelpDeskCommand::GoOffline { .. } => {
                Err(DomainError::NoChange)
            }
            HelpDeskCommand::SetWidgetMessages {
                online_message,
                offline_message,
                by,
                at,
            } => {
                check_text("online_message", &online_message, 1_000, false)?;
                check_text("offline_message", &offline_message, 1_000, false)?;
                if online_message == self.online_message && offline_message == self.offline_message
                {
                    return Err(DomainError::NoChange);
                }
                Ok(vec![
                    WidgetMessagesChanged {
                        online_message,
                        offline_message,
                        by,
                        at,
                    }
                    .into(),
                ])
            }
            HelpDeskCommand::SetBusinessHours { schedule, by, at } => {
                let schedule = checked_schedule(schedule)?;
                if self.business_hours.as_ref() == Some(&schedule) {
                    return Err(DomainError::NoChange);
                }
                Ok(vec![BusinessHoursSet { schedule, by, at }.into()])
            }
            HelpDeskCommand::ChangeReportRules {
                business_hours_only,
                by,
                at,
            } => {
                if business_hours_only == self.business_hours_only {
                    return Err(DomainError::NoChange);
                }
                if business_hours_only && self.business_hours.is_none() {
                    return Err(invalid(
                        "business_hours_only",
                        "set the business hours before counting durations in them",
                    ));
                }
                Ok(vec![
                    ReportRulesChanged {
                        business_hours_only,
                        by,
                        at,
                    }
                    .into(),
                ])
            }
        }
    }

    fn evolve(mut self, event: &HelpDeskEvent) -> Self {
        match event {
            HelpDeskEvent::HelpDeskWentOnline(_) => self.online = true,
            HelpDeskEvent::HelpDeskWentOffline(_) => self.online = false,
            HelpDeskEvent::WidgetMessagesChanged(e) => {
                self.online_message = e.online_message.clone();
                self.offline_message = e.offline_message.clone();
            }
            HelpDeskEvent::BusinessHoursSet(e) => self.business_hours = Some(e.schedule.clone()),
            HelpDeskEvent::ReportRulesChanged(e) => {
                self.business_hours_only = e.business_hours_only;
            }
        }
        self
    }
}

/// The schedule with its ranges sorted, or why it is not a valid one.
fn checked_schedule(mut schedule: BusinessHours) -> Result<BusinessHours, DomainError> {
    if schedule.utc_offset_minutes.abs() > MAX_UTC_OFFSET_MINUTES {
        return Err(invalid(
            "schedule.utc_offset_minutes",
            format!("must be within ±{MAX_UTC_OFFSET_MINUTES} minutes of UTC"),
        ));
    }
    if schedule.days.is_empty() {
        return Err(invalid("schedule.days", "needs at least one opening range"));
    }
    if schedule.days.len() > MAX_OPENING_RANGES {
        return Err(invalid(
            "schedule.days",
            format!("at most {MAX_OPENING_RANGES} opening ranges a week"),
        ));
    }
    for range in &schedule.days {
        if !(1..=7).contains(&range.weekday) {
            return Err(invalid(
                "schedule.days.weekday",
                "must be from 1 (Monday) to 7 (Sunday)",
            ));
        }
        if range.closes > MINUTES_PER_DAY {
            return Err(invalid(
                "schedule.days.closes",
                format!("must be at most {MINUTES_PER_DAY} minutes after midnight"),
            ));
        }
        if range.opens >= range.closes {
            return Err(invalid(
                "schedule.days.opens",
                "must be before the closing time",
            ));
        }
    }
    schedule.days.sort();
    for pair in schedule.days.windows(2) {
        if pair[0].weekday == pair[1].weekday && pair[1].opens < pair[0].closes {
            return Err(invalid(
                "schedule.days",
                format!("opening ranges overlap on weekday {}", pair[0].weekday),
            ));
        }
    }
    Ok(schedule)
}

const MICROS_PER_MINUTE: i64 = 60_000_000;
const MICROS_PER_DAY: i64 = 24 * 60 * MICROS_PER_MINUTE;

/// The weekday (1 = Monday .. 7 = Sunday) of a day counted from 1970-01-01, a Thursday.
fn weekday(day: i64) -> u8 {
    ((day + 3).rem_euclid(7) + 1) as u8
}

/// Length of a range in minutes, as `business_seconds` counts it (0 for a malformed range).
fn range_minutes(range: &OpeningHours) -> i64 {
    let closes = range.closes.min(MINUTES_PER_DAY);
    i64::from(closes.saturating_sub(range.opens))
}

/// Microseconds of `[from, to)` inside the schedule's opening ranges.
fn business_micros(schedule: &BusinessHours, from: Timestamp, to: Timestamp) -> i64 {
    if to <= from {
        return 0;
    }
    let offset = i64::from(schedule.utc_offset_minutes) * MICROS_PER_MINUTE;
    let (from, to) = (from.0.saturating_add(offset), to.0.saturating_add(offset));
    let weekly: i64 = schedule
        .days
        .iter()
        .filter(|r| (1..=7).contains(&r.weekday))
        .map(|r| range_minutes(r) * MICROS_PER_MINUTE)
        .sum();
    let first_day = from.div_euclid(MICROS_PER_DAY);
    let last_day = (to - 1).div_euclid(MICROS_PER_DAY);
    let mut total = 0i64;
    let mut day = first_day;
    while day <= last_day {
        // Days strictly between the first and the last lie wholly inside the span: whole
        // weeks of them count the weekly total at once.
        if day > first_day && last_day - day >= 7 {
            let weeks = (last_day - day) / 7;
            total = total.saturating_add(weeks.saturating_mul(weekly));
            day += weeks * 7;
            continue;
        }
        let midnight = day.saturating_mul(MICROS_PER_DAY);
        let wd = weekday(day);
        for range in schedule.days.iter().filter(|r| r.weekday == wd) {
            let opens = midnight.saturating_add(i64::from(range.opens) * MICROS_PER_MINUTE);
            let closes = opens.saturating_add(range_minutes(range) * MICROS_PER_MINUTE);
            let (start, end) = (opens.max(from), closes.min(to));
            if end > start {
                total = total.saturating_add(end - start);
            }
        }
        day += 1;
    }
    total
}

/// Whole seconds of `[from, to)` inside the schedule's opening hours (0 if `to <= from`).
/// Works day by day, and whole weeks at once, so long spans cost no more than a few weeks.
/// The schedule is taken as `SetBusinessHours` accepts it (ranges of a day do not overlap).
pub fn business_seconds(schedule: &BusinessHours, from: Timestamp, to: Timestamp) -> i64 {
    business_micros(schedule, from, to) / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DomainEvent;
    use crate::harness::given;

    const T0: Timestamp = Timestamp::from_secs(1_700_000_000);

    #[test]
    fn the_switch_changes_what_visitors_are_told() {
        let state = given::<HelpDesk>([])
            .when(HelpDeskCommand::GoOnline {
                by: Actor::System,
                at: T0,
            })
            .then([HelpDeskWentOnline {
                by: Actor::System,
                at: T0,
            }
            .into()]);
        assert_eq!(state.visitor_message(), DEFAULT_ONLINE_MESSAGE);
        assert_eq!(
            HelpDesk::default().visitor_message(),
            DEFAULT_OFFLINE_MESSAGE
        );
        given::<HelpDesk>([HelpDeskWentOnline {
            by: Actor::System,
            at: T0,
        }
        .into()])
        .when(HelpDeskCommand::GoOnline {
            by: Actor::System,
            at: T0,
        })
        .then_err(DomainError::NoChange);
        given::<HelpDesk>([])
            .when(HelpDeskCommand::GoOffline {
                by: Actor::System,
                at: T0,
            })
            .then_err(DomainError::NoChange);
    }

    #[test]
    fn widget_messages_are_configurable() {
        let state = given::<HelpDesk>([])
            .when(HelpDeskCommand::SetWidgetMessages {
                online_message: "Hi!".into(),
                offline_message: "Back at 9.".into(),
                by: Actor::System,
                at: T0,
            })
            .then_accepted();
        assert_eq!(state.visitor_message(), "Back at 9.");
        given::<HelpDesk>([])
            .when(HelpDeskCommand::SetWidgetMessages {
                online_message: "".into(),
                offline_message: "x".into(),
                by: Actor::System,
                at: T0,
            })
            .then_err(DomainError::Invalid {
                field: "online_message",
                reason: "must not be empty".into(),
            });
    }

    #[test]
    fn every_help_desk_event_survives_the_logs_encoding() {
        let events: Vec<HelpDeskEvent> = vec![
            HelpDeskWentOnline {
                by: Actor::System,
                at: T0,
            }
            .into(),
            HelpDeskWentOffline {
                by: Actor::System,
                at: T0,
            }
            .into(),
            WidgetMessagesChanged {
                online_message: "a".into(),
                offline_message: "b".into(),
                by: Actor::System,
                at: T0,
            }
            .into(),
            BusinessHoursSet {
                schedule: weekdays_nine_to_five(60),
                by: Actor::System,
                at: T0,
            }
            .into(),
            ReportRulesChanged {
                business_hours_only: true,
                by: Actor::System,
                at: T0,
            }
            .into(),
        ];
        assert_eq!(events.len(), HelpDeskEvent::event_types().len());
        for event in events {
            assert_eq!(crate::harness::round_trip(&event), event);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Business hours and report rules.

    /// Monday 2024-01-01 00:00 UTC.
    const MONDAY: i64 = 1_704_067_200;
    const HOUR: i64 = 3_600;
    const DAY: i64 = 24 * HOUR;

    fn utc(secs_after_monday: i64) -> Timestamp {
        Timestamp::from_secs(MONDAY + secs_after_monday)
    }

    fn range(weekday: u8, opens: u16, closes: u16) -> OpeningHours {
        OpeningHours {
            weekday,
            opens,
            closes,
        }
    }

    fn schedule(utc_offset_minutes: i32, days: Vec<OpeningHours>) -> BusinessHours {
        BusinessHours {
            utc_offset_minutes,
            days,
        }
    }

    /// Monday to Friday, 09:00 to 17:00 local time.
    fn weekdays_nine_to_five(utc_offset_minutes: i32) -> BusinessHours {
        schedule(
            utc_offset_minutes,
            (1..=5).map(|d| range(d, 9 * 60, 17 * 60)).collect(),
        )
    }

    fn set(schedule: BusinessHours) -> HelpDeskCommand {
        HelpDeskCommand::SetBusinessHours {
            schedule,
            by: Actor::System,
            at: T0,
        }
    }

    fn rules(business_hours_only: bool) -> HelpDeskCommand {
        HelpDeskCommand::ChangeReportRules {
            business_hours_only,
            by: Actor::System,
            at: T0,
        }
    }

    #[test]
    fn business_hours_are_stored_sorted_and_an_equal_schedule_changes_nothing() {
        let shuffled = schedule(
            0,
            vec![
                range(3, 13 * 60, 17 * 60),
                range(1, 9 * 60, 12 * 60),
                range(3, 9 * 60, 12 * 60),
            ],
        );
        let sorted = schedule(
            0,
            vec![
                range(1, 9 * 60, 12 * 60),
                range(3, 9 * 60, 12 * 60),
                range(3, 13 * 60, 17 * 60),
            ],
        );
        let state = given::<HelpDesk>([])
            .when(set(shuffled.clone()))
            .then([BusinessHoursSet {
                schedule: sorted.clone(),
                by: Actor::System,
                at: T0,
            }
            .into()]);
        assert_eq!(state.business_hours, Some(sorted.clone()));
        given::<HelpDesk>([BusinessHoursSet {
            schedule: sorted,
            by: Actor::System,
            at: T0,
        }
        .into()])
        .when(set(shuffled))
        .then_err(DomainError::NoChange);
        // Adjacent ranges touch without overlapping; a range may close at midnight.
        given::<HelpDesk>([])
            .when(set(schedule(
                -14 * 60,
                vec![range(7, 0, 60), range(7, 60, 1440)],
            )))
            .then_accepted();
    }

    #[test]
    fn invalid_schedules_are_refused_precisely() {
        let refused = |s: BusinessHours, field: &'static str, reason: &str| {
            given::<HelpDesk>([])
                .when(set(s))
                .then_err(DomainError::Invalid {
                    field,
                    reason: reason.into(),
                });
        };
        refused(
            schedule(0, vec![range(0, 60, 120)]),
            "schedule.days.weekday",
            "must be from 1 (Monday) to 7 (Sunday)",
        );
        refused(
            schedule(0, vec![range(8, 60, 120)]),
            "schedule.days.weekday",
            "must be from 1 (Monday) to 7 (Sunday)",
        );
        refused(
            schedule(0, vec![range(1, 120, 120)]),
            "schedule.days.opens",
            "must be before the closing time",
        );
        refused(
            schedule(0, vec![range(1, 600, 540)]),
            "schedule.days.opens",
            "must be before the closing time",
        );
        refused(
            schedule(0, vec![range(1, 600, 1441)]),
            "schedule.days.closes",
            "must be at most 1440 minutes after midnight",
        );
        refused(
            schedule(14 * 60 + 1, vec![range(1, 60, 120)]),
            "schedule.utc_offset_minutes",
            "must be within ±840 minutes of UTC",
        );
        refused(
            schedule(-14 * 60 - 1, vec![range(1, 60, 120)]),
            "schedule.utc_offset_minutes",
            "must be within ±840 minutes of UTC",
        );
        refused(
            schedule(
                0,
                vec![range(2, 9 * 60, 12 * 60), range(2, 11 * 60, 13 * 60)],
            ),
            "schedule.days",
            "opening ranges overlap on weekday 2",
        );
        refused(
            schedule(
                0,
                vec![range(2, 9 * 60, 12 * 60), range(2, 9 * 60, 12 * 60)],
            ),
            "schedule.days",
            "opening ranges overlap on weekday 2",
        );
        refused(
            schedule(0, vec![]),
            "schedule.days",
            "needs at least one opening range",
        );
        let too_many = (0..=MAX_OPENING_RANGES as u16)
            .map(|i| range((i % 7) as u8 + 1, i * 10, i * 10 + 5))
            .collect();
        refused(
            schedule(0, too_many),
            "schedule.days",
            "at most 56 opening ranges a week",
        );
    }

    #[test]
    fn report_rules_count_business_hours_only_once_a_schedule_exists() {
        given::<HelpDesk>([])
            .when(rules(true))
            .then_err(DomainError::Invalid {
                field: "business_hours_only",
                reason: "set the business hours before counting durations in them".into(),
            });
        given::<HelpDesk>([])
            .when(rules(false))
            .then_err(DomainError::NoChange);
        let hours: HelpDeskEvent = BusinessHoursSet {
            schedule: weekdays_nine_to_five(0),
            by: Actor::System,
            at: T0,
        }
        .into();
        let state =
            given::<HelpDesk>([hours.clone()])
                .when(rules(true))
                .then([ReportRulesChanged {
                    business_hours_only: true,
                    by: Actor::System,
                    at: T0,
                }
                .into()]);
        assert!(state.business_hours_only);
        let on: HelpDeskEvent = ReportRulesChanged {
            business_hours_only: true,
            by: Actor::System,
            at: T0,
        }
        .into();
        given::<HelpDesk>([hours.clone(), on.clone()])
            .when(rules(true))
            .then_err(DomainError::NoChange);
        let state = given::<HelpDesk>([hours, on])
            .when(rules(false))
            .then_accepted();
        assert!(!state.business_hours_only);
    }

    #[test]
    fn business_seconds_skip_nights_and_weekends() {
        let s = weekdays_nine_to_five(0);
        // Monday 10:00 to 12:00: two hours.
        assert_eq!(
            business_seconds(&s, utc(10 * HOUR), utc(12 * HOUR)),
            2 * HOUR
        );
        // Monday 16:00 to Tuesday 10:00: one hour each side of the night.
        assert_eq!(
            business_seconds(&s, utc(16 * HOUR), utc(DAY + 10 * HOUR)),
            2 * HOUR
        );
        // Friday 16:30 to Monday 09:30: half an hour each side of the weekend.
        assert_eq!(
            business_seconds(
                &s,
                utc(4 * DAY + 16 * HOUR + 1_800),
                utc(7 * DAY + 9 * HOUR + 1_800)
            ),
            HOUR
        );
        // Saturday to Sunday: nothing.
        assert_eq!(business_seconds(&s, utc(5 * DAY), utc(7 * DAY)), 0);
        // A whole year of weeks, from a Monday: 40 hours a week.
        assert_eq!(
            business_seconds(&s, utc(0), utc(52 * 7 * DAY)),
            52 * 40 * HOUR
        );
        // Empty and reversed spans.
        assert_eq!(business_seconds(&s, utc(10 * HOUR), utc(10 * HOUR)), 0);
        assert_eq!(business_seconds(&s, utc(12 * HOUR), utc(10 * HOUR)), 0);
    }

    #[test]
    fn business_seconds_follow_ranges_across_midnight() {
        // Open Monday 22:00 to Tuesday 02:00, as two ranges.
        let s = schedule(0, vec![range(1, 22 * 60, 1440), range(2, 0, 2 * 60)]);
        assert_eq!(
            business_seconds(&s, utc(23 * HOUR), utc(DAY + HOUR)),
            2 * HOUR
        );
        assert_eq!(business_seconds(&s, utc(0), utc(7 * DAY)), 4 * HOUR);
        // Tuesday 01:00 to the next Monday 23:00: one hour, then one more.
        assert_eq!(
            business_seconds(&s, utc(DAY + HOUR), utc(7 * DAY + 23 * HOUR)),
            2 * HOUR
        );
    }

    #[test]
    fn business_seconds_use_the_schedules_utc_offset() {
        // 09:00–17:00 at UTC+02:00 is 07:00–15:00 UTC.
        let east = weekdays_nine_to_five(120);
        assert_eq!(business_seconds(&east, utc(6 * HOUR), utc(8 * HOUR)), HOUR);
        assert_eq!(
            business_seconds(&east, utc(14 * HOUR), utc(16 * HOUR)),
            HOUR
        );
        // 09:00–17:00 at UTC−05:00 is 14:00–22:00 UTC: Friday's hours end on Friday 22:00 UTC,
        // and Monday 00:00–09:00 UTC is still Sunday evening there.
        let west = weekdays_nine_to_five(-300);
        assert_eq!(
            business_seconds(&west, utc(20 * HOUR), utc(DAY + 2 * HOUR)),
            2 * HOUR
        );
        assert_eq!(business_seconds(&west, utc(0), utc(9 * HOUR)), 0);
        assert_eq!(
            business_seconds(&west, utc(4 * DAY + 21 * HOUR), utc(5 * DAY + 3 * HOUR)),
            HOUR
        );
        // A local Monday starting before UTC's: 00:00–01:00 at UTC+14:00 is Sunday 10:00 UTC.
        let far_east = schedule(14 * 60, vec![range(1, 0, 60)]);
        assert_eq!(business_seconds(&far_east, utc(-DAY), utc(0)), HOUR);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// Valid schedules: per weekday, up to three ranges cut from sorted distinct minutes.
        fn schedule() -> impl Strategy<Value = BusinessHours> {
            (
                -840i32..=840,
                proptest::collection::vec(proptest::collection::btree_set(0u16..=1440, 0..7), 7),
            )
                .prop_map(|(utc_offset_minutes, cuts)| {
                    let mut days = Vec::new();
                    for (i, cuts) in cuts.into_iter().enumerate() {
                        let cuts: Vec<u16> = cuts.into_iter().collect();
                        for pair in cuts.chunks_exact(2) {
                            days.push(OpeningHours {
                                weekday: i as u8 + 1,
                                opens: pair[0],
                                closes: pair[1],
                            });
                        }
                    }
                    BusinessHours {
                        utc_offset_minutes,
                        days,
                    }
                })
        }

        /// Instants within a few weeks of each other, at any microsecond.
        fn instant() -> impl Strategy<Value = i64> {
            (0i64..30 * 86_400_000_000).prop_map(|m| 1_704_067_200_000_000 + m)
        }

        /// Minute by minute: the reference `business_micros` must agree with.
        fn naive_micros(s: &BusinessHours, from: i64, to: i64) -> i64 {
            if to <= from {
                return 0;
            }
            let offset = i64::from(s.utc_offset_minutes) * MICROS_PER_MINUTE;
            let (from, to) = (from + offset, to + offset);
            let mut total = 0;
            let mut minute = from.div_euclid(MICROS_PER_MINUTE);
            while minute * MICROS_PER_MINUTE < to {
                let day = minute.div_euclid(24 * 60);
                let of_day = minute.rem_euclid(24 * 60);
                let open = s.days.iter().any(|r| {
                    r.weekday == weekday(day)
                        && i64::from(r.opens) <= of_day
                        && of_day < i64::from(r.closes)
                });
                if open {
                    let start = (minute * MICROS_PER_MINUTE).max(from);
                    let end = ((minute + 1) * MICROS_PER_MINUTE).min(to);
                    total += end - start;
                }
                minute += 1;
            }
            total
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn generated_schedules_are_valid(s in schedule()) {
                prop_assume!(!s.days.is_empty());
                prop_assert_eq!(checked_schedule(s.clone()), Ok(s));
            }

            #[test]
            fn business_time_is_at_most_wall_time_and_adds_up_over_a_split(
                s in schedule(),
                a in instant(),
                b in instant(),
                c in instant(),
            ) {
                let mut t = [a, b, c];
                t.sort();
                let [from, split, to] = t.map(Timestamp);
                let whole = business_micros(&s, from, to);
                prop_assert!(whole <= to.0 - from.0);
                prop_assert_eq!(
                    business_micros(&s, from, split) + business_micros(&s, split, to),
                    whole
                );
                prop_assert!(business_seconds(&s, from, to) <= (to.0 - from.0) / 1_000_000);
                // In whole seconds, the split adds up exactly too.
                let secs = |t: Timestamp| Timestamp::from_secs(t.0.div_euclid(1_000_000));
                let (from, split, to) = (secs(from), secs(split), secs(to));
                prop_assert_eq!(
                    business_seconds(&s, from, split) + business_seconds(&s, split, to),
                    business_seconds(&s, from, to)
                );
            }

            #[test]
            fn business_time_agrees_with_counting_minute_by_minute(
                s in schedule(),
                a in instant(),
                b in instant(),
            ) {
                let (from, to) = (a.min(b), a.max(b));
                prop_assert_eq!(
                    business_micros(&s, Timestamp(from), Timestamp(to)),
                    naive_micros(&s, from, to)
                );
            }

            #[test]
            fn whole_weeks_count_the_weekly_total(s in schedule(), start in instant(), weeks in 0i64..200) {
                let weekly: i64 = s.days.iter().map(|r| i64::from(r.closes - r.opens) * 60).sum();
                let to = Timestamp(start).plus_secs(weeks * 7 * 86_400);
                prop_assert_eq!(business_seconds(&s, Timestamp(start), to) , weeks * weekly);
            }
        }
    }
}
