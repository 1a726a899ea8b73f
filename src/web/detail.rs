//! The pages about history: one issuance (its transitions as a timeline, its
//! flags, its events and each sink's delivery and attempts), the events by
//! cursor, and the charge requests.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::Dashboard;
use super::chrome::{Chrome, Message, failed, or_dash, render};
use super::view::{issuance_href, query, when};
use crate::domain::money::grouped;
use crate::store::StoreError;

/// How many events a page shows.
const PAGE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub(super) struct IdQuery {
    id: Option<String>,
}

pub(super) struct IssuanceView {
    id: String,
    status: String,
    watch: String,
    amount: String,
    bank: String,
    account: String,
    holder: String,
    deadline: String,
    last_seen: String,
    last_error: String,
}

pub(super) struct Step {
    seq: i64,
    from: String,
    to: String,
    at: String,
    anomaly: String,
}

pub(super) struct DeliveryView {
    sink: String,
    state: String,
    attempts: i64,
    last: String,
}

pub(super) struct EventView {
    seq: i64,
    event_type: String,
    at: String,
    deliveries: Vec<DeliveryView>,
    /// (sink, at, status or error, duration ms, answer excerpt).
    attempts: Vec<(String, String, String, i64, String)>,
}

#[derive(Template)]
#[template(path = "issuance.html")]
pub(super) struct Issuance {
    chrome: Chrome,
    i: IssuanceView,
    can_cancel: bool,
    back: String,
    timeline: Vec<Step>,
    flags: Vec<(String, String, String)>,
    events: Vec<EventView>,
}

pub(super) async fn issuance(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    Query(q): Query<IdQuery>,
) -> Response {
    let Some(id) = q.id else {
        return Message::page(
            &d,
            &headers,
            StatusCode::BAD_REQUEST,
            "No id",
            "Which issuance? Give its id.".to_owned(),
            "/issuances",
        );
    };
    match issuance_page(&d, &headers, &id).await {
        Ok(Some(page)) => render(&page),
        Ok(None) => Message::page(
            &d,
            &headers,
            StatusCode::NOT_FOUND,
            "Not found",
            format!("No issuance {id:?} is watched here."),
            "/issuances",
        ),
        Err(e) => failed(e),
    }
}

async fn issuance_page(
    d: &Dashboard,
    headers: &HeaderMap,
    id: &str,
) -> Result<Option<Issuance>, StoreError> {
    let store = &d.inner.store;
    let zone = d.zone();
    let Some(row) = store.issuance(id).await? else {
        return Ok(None);
    };
    let transitions = store.transitions_of(id).await?;
    let flags = store.flags(Some(id)).await?;
    let events = store.events_of(id).await?;
    let deliveries = store.deliveries_of(id).await?;
    let mut event_views = Vec::with_capacity(events.len());
    for e in &events {
        let attempts = store.attempts_of(e.seq).await?;
        event_views.push(EventView {
            seq: e.seq,
            event_type: e.event_type.clone(),
            at: when(Some(&e.occurred_at), zone),
            deliveries: deliveries
                .iter()
                .filter(|x| x.seq == e.seq)
                .map(|x| DeliveryView {
                    sink: x.sink.clone(),
                    state: if let Some(at) = &x.delivered_at {
                        format!("delivered {}", when(Some(at), zone))
                    } else if let Some(at) = &x.failed_at {
                        format!("failed {}", when(Some(at), zone))
                    } else {
                        format!("open, next {}", when(Some(&x.next_attempt_at), zone))
                    },
                    attempts: x.attempts,
                    last: match (x.last_status, &x.last_error) {
                        (Some(status), _) => status.to_string(),
                        (None, Some(error)) => error.clone(),
                        (None, None) => "-".to_owned(),
                    },
                })
                .collect(),
            attempts: attempts
                .into_iter()
                .map(|a| {
                    let outcome = match (a.http_status, a.error) {
                        (Some(status), _) => status.to_string(),
                        (None, Some(error)) => error,
                        (None, None) => "-".to_owned(),
                    };
                    (
                        a.sink,
                        when(Some(&a.attempted_at), zone),
                        outcome,
                        a.duration_ms,
                        a.response.unwrap_or_default(),
                    )
                })
                .collect(),
        });
    }
    let chrome = d.chrome(headers, "Issuance", false);
    Ok(Some(Issuance {
        can_cancel: chrome.admin && row.status.as_deref() == Some("READY"),
        chrome,
        back: issuance_href(id),
        i: IssuanceView {
            id: row.id.clone(),
            status: or_dash(row.status.as_deref()),
            watch: row.watch.clone(),
            amount: row.amount.map_or("-".to_owned(), grouped),
            bank: or_dash(row.bank_name.as_deref()),
            account: or_dash(row.vbank_account_number.as_deref()),
            holder: or_dash(row.vbank_holder_name.as_deref()),
            deadline: when(row.vbank_due_at.as_deref(), zone),
            last_seen: when(row.last_seen_at.as_deref(), zone),
            last_error: row.last_error.clone().unwrap_or_default(),
        },
        timeline: transitions
            .iter()
            .map(|t| Step {
                seq: t.seq,
                from: t
                    .from_status
                    .clone()
                    .unwrap_or_else(|| "(first sighting)".to_owned()),
                to: t.to_status.clone(),
                at: when(Some(&t.observed_at), zone),
                anomaly: t.anomaly.clone().unwrap_or_default(),
            })
            .collect(),
        flags: flags
            .iter()
            .map(|f| {
                (
                    f.kind.clone(),
                    when(Some(&f.raised_at), zone),
                    when(f.cleared_at.as_deref(), zone),
                )
            })
            .collect(),
        events: event_views,
    }))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct EventsQuery {
    before: Option<i64>,
    #[serde(rename = "type")]
    event_type: Option<String>,
}

pub(super) struct EventRowView {
    seq: i64,
    event_type: String,
    issuance: String,
    href: Option<String>,
    at: String,
}

#[derive(Template)]
#[template(path = "events.html")]
pub(super) struct Events {
    chrome: Chrome,
    event_type: String,
    types: &'static [&'static str],
    rows: Vec<EventRowView>,
    first_href: String,
    next_href: Option<String>,
}

/// The event types, for the filter's suggestions.
const TYPES: &[&str] = &[
    "issuance.status_changed",
    "issuance.due_soon",
    "issuance.overdue",
    "issuance.watch_ended",
    "balance.low",
    "sink.disabled",
];

pub(super) async fn events(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Response {
    let event_type = q.event_type.filter(|t| !t.is_empty());
    let before = q.before.unwrap_or(i64::MAX);
    let rows = match d
        .inner
        .store
        .events_before(before, event_type.as_deref(), PAGE)
        .await
    {
        Ok(rows) => rows,
        Err(e) => return failed(e),
    };
    let zone = d.zone();
    let link = |before: Option<String>| {
        format!(
            "/events{}",
            query(&[
                ("type", event_type.as_deref()),
                ("before", before.as_deref()),
            ])
        )
    };
    let next_href = (rows.len() as i64 == PAGE)
        .then(|| rows.last().map(|e| link(Some(e.seq.to_string()))))
        .flatten();
    render(&Events {
        chrome: d.chrome(&headers, "Events", false),
        event_type: event_type.clone().unwrap_or_default(),
        types: TYPES,
        first_href: link(None),
        next_href,
        rows: rows
            .iter()
            .map(|e| EventRowView {
                seq: e.seq,
                event_type: e.event_type.clone(),
                issuance: e.issuance_id.clone().unwrap_or_default(),
                href: e.issuance_id.as_deref().map(issuance_href),
                at: when(Some(&e.occurred_at), zone),
            })
            .collect(),
    })
}

pub(super) struct ChargeRowView {
    id: i64,
    state: String,
    amount: String,
    requested: String,
    finished: String,
    issuance: String,
    href: Option<String>,
    outcome: String,
}

#[derive(Template)]
#[template(path = "charges.html")]
pub(super) struct Charges {
    chrome: Chrome,
    rows: Vec<ChargeRowView>,
}

/// How many charge requests the page shows.
const CHARGES: i64 = 200;

pub(super) async fn charges(State(d): State<Dashboard>, headers: HeaderMap) -> Response {
    let mut rows = match d.inner.store.charge_requests(CHARGES).await {
        Ok(rows) => rows,
        Err(e) => return failed(e),
    };
    // Unknown outcomes first (a person must act on them), newest first within.
    rows.sort_by_key(|r| (r.state != "unknown" || r.resolution.is_some(), -r.id));
    let zone = d.zone();
    render(&Charges {
        chrome: d.chrome(&headers, "Charges", true),
        rows: rows
            .iter()
            .map(|r| ChargeRowView {
                id: r.id,
                state: r.state.clone(),
                amount: grouped(r.amount),
                requested: when(Some(&r.requested_at), zone),
                finished: when(r.finished_at.as_deref(), zone),
                issuance: r.issuance_id.clone().unwrap_or_default(),
                href: r.issuance_id.as_deref().map(issuance_href),
                outcome: match (&r.error_code, &r.error_message, &r.resolution) {
                    (_, _, Some(resolution)) => format!("resolved: {resolution}"),
                    (Some(code), Some(message), _) => format!("{code}: {message}"),
                    (Some(code), None, _) => code.clone(),
                    _ => r.http_status.map_or(String::new(), |s| format!("HTTP {s}")),
                },
            })
            .collect(),
    })
}
