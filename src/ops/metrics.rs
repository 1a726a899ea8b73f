//! Every metric the daemon exports, by name, with one tiny recording function
//! each. Without an installed recorder (the HTTP listener off) recording is a
//! no-op of the `metrics` facade. Labels only ever carry fixed vocabularies
//! (outcomes, statuses, codes): never ids, keys or secrets.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::Utc;
use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::warn;

use crate::api::{Answer, PollError};
use crate::domain::status::Status;
use crate::store::Recorded;

/// Polls, by `outcome` and HTTP `status` code (`"none"` when no answer came).
pub const POLLS: &str = "issuance_watcher_polls_total";
/// Status transitions recorded, by `from` (`"none"` for the first sighting) and `to`.
pub const TRANSITIONS: &str = "issuance_watcher_transitions_total";
/// Flags raised, by `kind` (`DUE_SOON`, `OVERDUE`).
pub const FLAGS_RAISED: &str = "issuance_watcher_flags_raised_total";
/// Issuances being watched, by last seen `status` (`UNSEEN` before the first answer).
pub const ACTIVE: &str = "issuance_watcher_active_issuances";
/// Open `DUE_SOON` flags.
pub const DUE_SOON: &str = "issuance_watcher_due_soon";
/// Open `OVERDUE` flags.
pub const OVERDUE: &str = "issuance_watcher_overdue";
/// Time a lookup took, in seconds (histogram).
pub const REQUEST_SECONDS: &str = "issuance_watcher_request_duration_seconds";
/// Seconds since the last poll the API answered (absent until one has).
pub const SINCE_LAST_SUCCESS: &str = "issuance_watcher_seconds_since_last_successful_poll";
/// Pauses of all polling started or lengthened, by `reason` (`retry_after`, `auth`).
pub const PAUSES: &str = "issuance_watcher_pauses_total";
/// Grants taken from the request budget shared by every daemon on the
/// database, by `outcome` (`granted`, `paused`: another daemon's pause in force
/// or the database unreachable).
pub const BUDGET_GRANTS: &str = "issuance_watcher_budget_grants_total";
/// Request slots of the shared budget, by `use` (`granted`; `missed`: not
/// used within its lateness allowance, dropped unsent).
pub const BUDGET_SLOTS: &str = "issuance_watcher_budget_slots_total";
/// Size of the SQLite write-ahead log in bytes (grows while readers hold old snapshots).
pub const WAL_BYTES: &str = "issuance_watcher_database_wal_bytes";
/// 1 while the API refuses our credentials.
pub const AUTH_FAILING: &str = "issuance_watcher_auth_failing";
/// Poll results dropped because the lease they were polled under had ended
/// (the daemon was paused or slow and another took the issuances over).
pub const STALE_RESULTS: &str = "issuance_watcher_stale_results_total";
/// Events written to the outbox, by `type`.
pub const EVENTS: &str = "issuance_watcher_events_total";
/// Delivery attempts by `sink` and `outcome` (`delivered`, `failed`, `gave_up`, `disabled`).
pub const DELIVERIES: &str = "issuance_watcher_deliveries_total";
/// 1 while a sink is disabled (nothing is sent to it), by `sink`.
pub const SINK_DISABLED: &str = "issuance_watcher_sink_disabled";
/// 1 while this daemon holds a sink (sends its deliveries), by `sink`.
pub const SINK_HELD: &str = "issuance_watcher_sink_held";
/// Events not yet delivered, by `sink`.
pub const DELIVERIES_PENDING: &str = "issuance_watcher_deliveries_pending";
/// Age of the oldest undelivered event, by `sink` (0 when none).
pub const OLDEST_UNDELIVERED: &str = "issuance_watcher_oldest_undelivered_seconds";
/// Time one delivery attempt took, in seconds (histogram).
pub const DELIVERY_SECONDS: &str = "issuance_watcher_delivery_duration_seconds";

/// The point balance last polled (absent until `balance.interval` polls it).
pub const POINT_BALANCE: &str = "issuance_watcher_point_balance";
/// Points expiring within 30 days, as last polled.
pub const POINTS_EXPIRING: &str = "issuance_watcher_points_expiring_30d";
/// Charge requests finished, by `state` (`created`, `refused`, `unknown`, `rejected`).
pub const CHARGE_REQUESTS: &str = "issuance_watcher_charge_requests_total";
/// Charge requests of unknown outcome that nobody resolved, read from the
/// database (whoever sent them, a dead process too): each may be a charge
/// nobody watches, and each blocks every new charge.
pub const UNKNOWN_CHARGES: &str = "issuance_watcher_unknown_charge_requests";
/// 1 while the top-up rule is suspended (it asks for nothing until a person
/// resumes it), as the daemon last read it; 0 otherwise.
pub const TOP_UP_SUSPENDED: &str = "issuance_watcher_top_up_suspended";

/// Latency buckets for [`REQUEST_SECONDS`], in seconds.
pub const REQUEST_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// What kind of metric a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One exported metric: its name, kind, unit and help text (the `# HELP` line).
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Option<Unit>,
    pub help: &'static str,
}

const fn metric(kind: Kind, unit: Option<Unit>, name: &'static str, help: &'static str) -> Metric {
    Metric {
        name,
        kind,
        unit,
        help,
    }
}
const SECONDS: Option<Unit> = Some(Unit::Seconds);
const COUNTER: Kind = Kind::Counter;
const GAUGE: Kind = Kind::Gauge;
const HISTOGRAM: Kind = Kind::Histogram;

/// Every metric the daemon exports.
#[rustfmt::skip] // a table: one metric a line
pub const ALL: &[Metric] = &[
    metric(COUNTER, None, POLLS, "Polls by outcome and HTTP status code"),
    metric(COUNTER, None, TRANSITIONS, "Status transitions recorded, by from/to status"),
    metric(COUNTER, None, FLAGS_RAISED, "DUE_SOON / OVERDUE flags raised, by kind"),
    metric(GAUGE, None, ACTIVE, "Issuances being watched, by last seen status"),
    metric(GAUGE, None, DUE_SOON, "Open DUE_SOON flags"),
    metric(GAUGE, None, OVERDUE, "Open OVERDUE flags"),
    metric(HISTOGRAM, SECONDS, REQUEST_SECONDS, "Time one lookup took"),
    metric(GAUGE, SECONDS, SINCE_LAST_SUCCESS, "Seconds since the API last answered a poll"),
    metric(COUNTER, None, PAUSES, "Pauses of all polling (Retry-After, auth), by reason"),
    metric(COUNTER, None, BUDGET_GRANTS, "Grants from the request budget all daemons share, by outcome"),
    metric(COUNTER, None, BUDGET_SLOTS, "Request slots of the shared budget, granted or missed"),
    metric(GAUGE, None, AUTH_FAILING, "1 while the API refuses our credentials"),
    metric(GAUGE, Some(Unit::Bytes), WAL_BYTES, "Size of the SQLite write-ahead log"),
    metric(COUNTER, None, STALE_RESULTS, "Poll results dropped because their lease had ended"),
    metric(COUNTER, None, EVENTS, "Events written to the outbox, by type"),
    metric(COUNTER, None, DELIVERIES, "Webhook delivery attempts, by sink and outcome"),
    metric(GAUGE, None, SINK_DISABLED, "1 while a webhook sink is disabled, by sink"),
    metric(GAUGE, None, SINK_HELD, "1 while this daemon holds a webhook sink (sends its deliveries), by sink"),
    metric(GAUGE, None, DELIVERIES_PENDING, "Events not yet delivered, by sink"),
    metric(GAUGE, SECONDS, OLDEST_UNDELIVERED, "Age of the oldest undelivered event, by sink"),
    metric(HISTOGRAM, SECONDS, DELIVERY_SECONDS, "Time one webhook delivery attempt took"),
    metric(GAUGE, None, POINT_BALANCE, "The point balance last polled"),
    metric(GAUGE, None, POINTS_EXPIRING, "Points expiring within 30 days, as last polled"),
    metric(COUNTER, None, CHARGE_REQUESTS, "Charge requests finished, by state"),
    metric(GAUGE, None, UNKNOWN_CHARGES, "Charge requests of unknown outcome nobody resolved"),
    metric(GAUGE, None, TOP_UP_SUSPENDED, "1 while the top-up rule is suspended"),
];

/// Registers the help text of every metric in [`ALL`].
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    for m in ALL {
        let (name, help) = (m.name, m.help);
        match (m.kind, m.unit) {
            (Kind::Counter, None) => describe_counter!(name, help),
            (Kind::Counter, Some(unit)) => describe_counter!(name, unit, help),
            (Kind::Gauge, None) => describe_gauge!(name, help),
            (Kind::Gauge, Some(unit)) => describe_gauge!(name, unit, help),
            (Kind::Histogram, None) => describe_histogram!(name, help),
            (Kind::Histogram, Some(unit)) => describe_histogram!(name, unit, help),
        }
    }
}

/// One poll's result: `outcome` is a fixed word (`observed`, `not_found`,
/// `rate_limited`, `unauthorized`, `failed`), `status` the HTTP code if any.
pub fn poll(outcome: &'static str, status: Option<u16>, latency: Duration) {
    let status = status.map_or_else(|| "none".to_owned(), |s| s.to_string());
    metrics::counter!(POLLS, "outcome" => outcome, "status" => status).increment(1);
    metrics::histogram!(REQUEST_SECONDS).record(latency.as_secs_f64());
}

/// One lookup's answer, labelled by its outcome and HTTP status code.
pub fn polled(answer: &Answer) {
    let outcome = match &answer.result {
        Ok(_) => "observed",
        Err(PollError::NotFound { .. }) => "not_found",
        Err(PollError::RateLimited) => "rate_limited",
        Err(PollError::Unauthorized { .. }) => "unauthorized",
        Err(PollError::Server { .. }) => "server_error",
        Err(PollError::Refused { .. }) => "refused",
        Err(PollError::Redirected { .. }) => "redirected",
        Err(PollError::Timeout(_)) => "timeout",
        Err(PollError::Transport(_)) => "transport_error",
        Err(PollError::BodyTooLarge { .. }) => "body_too_large",
        Err(PollError::Malformed(_)) => "malformed",
        Err(PollError::UnknownStatus(_)) => "unknown_status",
        Err(PollError::Token(_)) => "token_error",
    };
    poll(outcome, answer.http_status, answer.latency);
}

/// What one batch wrote: transitions by from/to, flags raised by kind, and
/// the results it dropped as stale.
pub fn recorded(recorded: &Recorded) {
    if recorded.stale > 0 {
        metrics::counter!(STALE_RESULTS).increment(recorded.stale);
    }
    for t in &recorded.transitions {
        // `from` comes from the database: only known statuses become label values.
        let from = match t.from.as_deref().map(str::parse::<Status>) {
            None => "none",
            Some(Ok(status)) => status.as_str(),
            Some(Err(_)) => "other",
        };
        transition(from, t.to.as_str());
    }
    for f in &recorded.flags_raised {
        flag_raised(f.kind.as_str());
    }
}

/// A polled balance.
pub fn balance(balance: i64, expiring_30d: i64) {
    metrics::gauge!(POINT_BALANCE).set(balance as f64);
    metrics::gauge!(POINTS_EXPIRING).set(expiring_30d as f64);
}

/// Whether the top-up rule is suspended.
pub fn top_up_suspended(suspended: bool) {
    metrics::gauge!(TOP_UP_SUSPENDED).set(f64::from(u8::from(suspended)));
}

/// A charge request finished in `state`.
pub fn charge_request(state: &'static str) {
    metrics::counter!(CHARGE_REQUESTS, "state" => state).increment(1);
}

pub fn transition(from: &'static str, to: &'static str) {
    metrics::counter!(TRANSITIONS, "from" => from, "to" => to).increment(1);
}

pub fn flag_raised(kind: &'static str) {
    metrics::counter!(FLAGS_RAISED, "kind" => kind).increment(1);
}

/// `count` events of type `event_type` were written.
pub fn events_written(event_type: &str, count: u64) {
    // Another program may write any text: only known types become label values.
    let label = event_type
        .parse::<crate::domain::EventType>()
        .map_or("other", |t| t.as_str());
    metrics::counter!(EVENTS, "type" => label).increment(count);
}

/// One delivery attempt to `sink` (a configured name) and its `outcome`.
pub fn delivery(sink: &str, outcome: &'static str, took: Duration) {
    metrics::counter!(DELIVERIES, "sink" => sink.to_owned(), "outcome" => outcome).increment(1);
    metrics::histogram!(DELIVERY_SECONDS).record(took.as_secs_f64());
}

/// A pause of all polling started (`reason`: `retry_after` or `auth`).
pub fn sink_held(sink: &str, held: bool) {
    metrics::gauge!(SINK_HELD, "sink" => sink.to_owned()).set(f64::from(u8::from(held)));
}

pub fn pause_started(reason: &'static str) {
    metrics::counter!(PAUSES, "reason" => reason).increment(1);
}

/// A grant from the shared request budget: `count` slots, or none (`paused`).
pub fn budget_grant(count: u32, paused: bool) {
    let outcome = if paused { "paused" } else { "granted" };
    metrics::counter!(BUDGET_GRANTS, "outcome" => outcome).increment(1);
    metrics::counter!(BUDGET_SLOTS, "use" => "granted").increment(u64::from(count));
}

/// A slot of the shared budget dropped unsent (its sender was too late).
pub fn budget_slot_missed() {
    metrics::counter!(BUDGET_SLOTS, "use" => "missed").increment(1);
}

/// The gauges read from the database, refreshed periodically.
///
/// `active_by_status`: actively watched issuances by status; a status of
/// `watched` that is missing is set to zero, so a gauge never sticks at its last count.
pub fn db_gauges(
    watched: &[&'static str],
    active_by_status: &[(String, i64)],
    due_soon: i64,
    overdue: i64,
    unknown_charges: i64,
    wal_bytes: Option<u64>,
) {
    for status in watched {
        if !active_by_status.iter().any(|(s, _)| s == status) {
            metrics::gauge!(ACTIVE, "status" => *status).set(0.0);
        }
    }
    for (status, count) in active_by_status {
        metrics::gauge!(ACTIVE, "status" => status.clone()).set(*count as f64);
    }
    metrics::gauge!(DUE_SOON).set(due_soon as f64);
    metrics::gauge!(OVERDUE).set(overdue as f64);
    metrics::gauge!(UNKNOWN_CHARGES).set(unknown_charges as f64);
    if let Some(bytes) = wal_bytes {
        metrics::gauge!(WAL_BYTES).set(bytes as f64);
    }
}

/// The gauges read from the scheduler's progress facts and the sinks' last
/// read backlog (cheap: atomics and a short-held mutex; called at every scrape).
pub fn progress_gauges(progress: &crate::ops::progress::Progress) {
    if let Some(last) = progress.last_success() {
        let age = (Utc::now() - last).num_milliseconds().max(0) as f64 / 1000.0;
        metrics::gauge!(SINCE_LAST_SUCCESS).set(age);
    }
    metrics::gauge!(AUTH_FAILING).set(if progress.auth_failing() { 1.0 } else { 0.0 });
    // The oldest undelivered event's age at this instant (scrape time), from
    // the backlog last read from the database: it grows while nothing is sent,
    // whatever the sink's worker is doing (paused, disabled).
    for b in progress.sinks.backlogs(Utc::now()) {
        metrics::gauge!(SINK_DISABLED, "sink" => b.sink.clone())
            .set(f64::from(u8::from(b.disabled)));
        metrics::gauge!(DELIVERIES_PENDING, "sink" => b.sink.clone()).set(b.pending as f64);
        metrics::gauge!(OLDEST_UNDELIVERED, "sink" => b.sink).set(b.oldest_age.as_secs_f64());
    }
}

/// The process-wide Prometheus recorder (installed once; `None` if another recorder was).
pub fn install_recorder() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(REQUEST_SECONDS.to_owned()), REQUEST_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(DELIVERY_SECONDS.to_owned()),
                        REQUEST_BUCKETS,
                    )
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => {
                    describe();
                    Some(handle)
                }
                Err(_) => {
                    warn!("a metrics recorder is already installed: /metrics will be empty");
                    None
                }
            }
        })
        .clone()
}
