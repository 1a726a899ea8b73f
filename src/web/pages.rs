//! The pages: each reads what it shows through the store, turns it into
//! plain text fields (`view.rs`), and renders its template, which escapes them.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{Duration as Span, Utc};
use serde::Deserialize;

use super::Dashboard;
use super::chrome::{Chrome, Message, failed, or_dash, render};
use super::view::{chart_points, csv_cell, issuance_href, query, rung, when};
use crate::domain::money::grouped;
use crate::domain::timefmt::{span_words, time_left};
use crate::domain::{SinkHealth, SinkRowFacts};
use crate::store::{IssuanceFilter, IssuanceRow, StoreError};

/// How many rows a list page shows.
const PAGE: i64 = 50;
/// How many balance answers the chart draws.
const CHART_POINTS: i64 = 200;
/// How many open charges the overview shows (an account has one or two).
const OVERVIEW_CHARGES: i64 = 5;
/// How many open charges `/to-pay` and its CSV list at most.
const TO_PAY: i64 = 1000;

/// An open charge as a payer needs it.
pub(super) struct ChargeView {
    pub id: String,
    pub href: String,
    pub status: String,
    pub bank: String,
    pub account: String,
    pub holder: String,
    pub amount: String,
    pub deadline: String,
    pub left: String,
    pub rung: Option<String>,
}

impl Dashboard {
    pub(super) fn charge_view(&self, row: &IssuanceRow) -> ChargeView {
        let now = Utc::now();
        let due = row.vbank_due_at.as_deref();
        ChargeView {
            id: row.id.clone(),
            href: issuance_href(&row.id),
            status: or_dash(row.status.as_deref()),
            bank: or_dash(row.bank_name.as_deref()),
            account: or_dash(row.vbank_account_number.as_deref()),
            holder: or_dash(row.vbank_holder_name.as_deref()),
            amount: row.amount.map_or("-".to_owned(), grouped),
            deadline: when(due, self.zone()),
            left: time_left(due, now),
            rung: rung(due, now, &self.inner.settings.flags.due_soon_lead),
        }
    }
}

pub(super) struct SinkView {
    pub name: String,
    pub health: &'static str,
    pub disabled: bool,
    pub backlog: i64,
    pub oldest: String,
    pub given_up: i64,
    pub problem: String,
}

impl Dashboard {
    async fn sink_views(&self) -> Result<Vec<SinkView>, StoreError> {
        let configured = self.configured_sinks();
        let stored = self.inner.store.sink_backlogs(&configured).await?;
        let mut names = configured.clone();
        names.extend(
            stored
                .iter()
                .map(|s| s.sink.name.clone())
                .filter(|n| !configured.contains(n)),
        );
        Ok(names
            .into_iter()
            .map(|name| {
                let s = stored.iter().find(|s| s.sink.name == name);
                let row = s.map(|s| &s.sink.row);
                let health = SinkHealth::judge(
                    configured.contains(&name),
                    row.map(|r| SinkRowFacts {
                        disabled_at: r.disabled_at.as_deref(),
                        disabled_reason: r.disabled_reason.as_deref(),
                        failing_since: r.failing_since.as_deref(),
                    }),
                );
                let problem =
                    row.and_then(|r| r.disabled_reason.clone().or_else(|| r.last_problem.clone()));
                SinkView {
                    health: health.as_str(),
                    disabled: row.is_some_and(|r| r.disabled_at.is_some()),
                    backlog: s.map_or(0, |s| s.backlog.pending),
                    oldest: s
                        .and_then(|s| s.backlog.oldest)
                        .map_or("-".to_owned(), |t| {
                            span_words((Utc::now() - t).num_seconds().max(0).unsigned_abs())
                                + " ago"
                        }),
                    given_up: s.map_or(0, |s| s.given_up),
                    problem: problem.unwrap_or_default(),
                    name,
                }
            })
            .collect())
    }
}

pub(super) struct FlagView {
    pub id: String,
    pub href: String,
    pub kind: String,
    pub raised: String,
    pub deadline: String,
    pub status: String,
}

pub(super) struct DaemonView {
    pub owner: String,
    pub host: String,
    pub pid: String,
    pub since: String,
    pub health: String,
}

pub(super) struct UnknownView {
    pub id: i64,
    pub amount: String,
    pub requested_at: String,
    pub error_code: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
pub(super) struct Overview {
    chrome: Chrome,
    unknown: Vec<UnknownView>,
    unknown_total: i64,
    charges: Vec<ChargeView>,
    balance: Option<String>,
    chart: String,
    flags: Vec<FlagView>,
    live: Vec<DaemonView>,
    dead: usize,
    last_success: String,
    errors: Vec<(String, i64, String)>,
    sinks: Vec<SinkView>,
}

pub(super) async fn overview(State(d): State<Dashboard>, headers: HeaderMap) -> Response {
    match overview_page(&d, &headers).await {
        Ok(page) => render(&page),
        Err(e) => failed(e),
    }
}

async fn overview_page(d: &Dashboard, headers: &HeaderMap) -> Result<Overview, StoreError> {
    let store = &d.inner.store;
    let zone = d.zone();
    let facts = store.status_facts(Utc::now() - Span::hours(1)).await?;
    let charges = store.open_charges(OVERVIEW_CHARGES).await?;
    let history = store.balance_history(CHART_POINTS).await?;
    let flags = store.flags(None).await?;
    let values: Vec<i64> = history.iter().map(|p| p.balance).collect();
    Ok(Overview {
        chrome: d.chrome(headers, "Overview", true),
        unknown_total: facts.unknown_charges.total,
        unknown: facts
            .unknown_charges
            .newest
            .iter()
            .map(|u| UnknownView {
                id: u.id,
                amount: grouped(u.amount),
                requested_at: when(Some(&u.requested_at), zone),
                error_code: or_dash(u.error_code.as_deref()),
            })
            .collect(),
        charges: charges.iter().map(|c| d.charge_view(c)).collect(),
        balance: values.last().map(|b| grouped(*b)),
        chart: chart_points(&values, 300, 60),
        flags: flags
            .iter()
            .map(|f| FlagView {
                id: f.issuance_id.clone(),
                href: issuance_href(&f.issuance_id),
                kind: f.kind.clone(),
                raised: when(Some(&f.raised_at), zone),
                deadline: when(f.vbank_due_at.as_deref(), zone),
                status: or_dash(f.status.as_deref()),
            })
            .collect(),
        live: facts
            .daemons
            .live
            .iter()
            .map(|l| DaemonView {
                owner: l.owner.clone(),
                host: or_dash(l.host.as_deref()),
                pid: l.pid.map_or("-".to_owned(), |p| p.to_string()),
                since: when(l.since.as_deref(), zone),
                health: or_dash(l.health.as_deref()),
            })
            .collect(),
        dead: facts.daemons.dead,
        last_success: when(facts.last_success.as_deref(), zone),
        errors: facts
            .errors
            .iter()
            .map(|e| (e.error.clone(), e.issuances, when(Some(&e.last_at), zone)))
            .collect(),
        sinks: d.sink_views().await?,
    })
}

#[derive(Template)]
#[template(path = "sinks.html")]
pub(super) struct Sinks {
    chrome: Chrome,
    sinks: Vec<SinkView>,
}

pub(super) async fn sinks(State(d): State<Dashboard>, headers: HeaderMap) -> Response {
    match d.sink_views().await {
        Ok(sinks) => render(&Sinks {
            chrome: d.chrome(&headers, "Sinks", true),
            sinks,
        }),
        Err(e) => failed(e),
    }
}

#[derive(Template)]
#[template(path = "to_pay.html")]
pub(super) struct ToPay {
    chrome: Chrome,
    charges: Vec<ChargeView>,
}

pub(super) async fn to_pay(State(d): State<Dashboard>, headers: HeaderMap) -> Response {
    match d.inner.store.open_charges(TO_PAY).await {
        Ok(rows) => render(&ToPay {
            chrome: d.chrome(&headers, "To pay", true),
            charges: rows.iter().map(|r| d.charge_view(r)).collect(),
        }),
        Err(e) => failed(e),
    }
}

/// The open charges as CSV (amounts as plain integers, deadlines in KST).
pub(super) async fn to_pay_csv(State(d): State<Dashboard>) -> Response {
    let rows = match d.inner.store.open_charges(TO_PAY).await {
        Ok(rows) => rows,
        Err(e) => return failed(e),
    };
    let mut csv =
        String::from("deadline_kst,time_left,amount_krw,bank,account,holder,issuance_id\r\n");
    for row in &rows {
        let c = d.charge_view(row);
        let amount = row.amount.map_or(String::new(), |a| a.to_string());
        let cells = [
            &c.deadline,
            &c.left,
            &amount,
            &c.bank,
            &c.account,
            &c.holder,
            &c.id,
        ];
        let line: Vec<String> = cells.iter().map(|v| csv_cell(v)).collect();
        csv.push_str(&line.join(","));
        csv.push_str("\r\n");
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"to-pay.csv\"",
            ),
        ],
        csv,
    )
        .into_response()
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct IssuancesQuery {
    status: Option<String>,
    watch: Option<String>,
    after: Option<String>,
}

pub(super) struct RowView {
    id: String,
    href: String,
    status: String,
    watch: String,
    amount: String,
    deadline: String,
    last_seen: String,
    last_error: String,
}

#[derive(Template)]
#[template(path = "issuances.html")]
pub(super) struct Issuances {
    chrome: Chrome,
    statuses: Vec<(&'static str, bool)>,
    watches: Vec<(&'static str, bool)>,
    rows: Vec<RowView>,
    first_href: String,
    next_href: Option<String>,
}

const STATUSES: [&str; 7] = ["", "UNSEEN", "WAITED", "READY", "DONE", "CANCELLED", "FAIL"];
const WATCHES: [&str; 5] = ["", "active", "settled", "rejected", "abandoned"];

/// An empty form field is no filter.
fn given(value: Option<&String>) -> Option<String> {
    value.filter(|v| !v.is_empty()).cloned()
}

pub(super) async fn issuances(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    Query(q): Query<IssuancesQuery>,
) -> Response {
    let filter = IssuanceFilter {
        status: given(q.status.as_ref()),
        watch: given(q.watch.as_ref()),
        after: q.after.clone(),
    };
    let rows = match d.inner.store.issuances_page(&filter, PAGE).await {
        Ok(rows) => rows,
        Err(e) => return failed(e),
    };
    let zone = d.zone();
    let keep = |after: Option<&str>| {
        format!(
            "/issuances{}",
            query(&[
                ("status", filter.status.as_deref()),
                ("watch", filter.watch.as_deref()),
                ("after", after),
            ])
        )
    };
    let next_href = (rows.len() as i64 == PAGE)
        .then(|| rows.last().map(|r| keep(Some(&r.id))))
        .flatten();
    let selected = |options: &[&'static str], chosen: Option<&str>| {
        options
            .iter()
            .map(|o| (*o, chosen.unwrap_or("") == *o))
            .collect()
    };
    render(&Issuances {
        chrome: d.chrome(&headers, "Issuances", false),
        statuses: selected(&STATUSES, filter.status.as_deref()),
        watches: selected(&WATCHES, filter.watch.as_deref()),
        first_href: keep(None),
        next_href,
        rows: rows
            .iter()
            .map(|r| RowView {
                id: r.id.clone(),
                href: issuance_href(&r.id),
                status: or_dash(r.status.as_deref()),
                watch: r.watch.clone(),
                amount: r.amount.map_or("-".to_owned(), grouped),
                deadline: when(r.vbank_due_at.as_deref(), zone),
                last_seen: when(r.last_seen_at.as_deref(), zone),
                last_error: r.last_error.clone().unwrap_or_default(),
            })
            .collect(),
    })
}

/// The icon (also at `/favicon.ico`, where browsers look without a link).
pub(super) async fn icon() -> Response {
    (
        [(header::CONTENT_TYPE, "image/svg+xml")],
        include_str!("favicon.svg"),
    )
        .into_response()
}

pub(super) async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("style.css"),
    )
        .into_response()
}

pub(super) async fn not_found(State(d): State<Dashboard>, headers: HeaderMap) -> Response {
    Message::page(
        &d,
        &headers,
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such page.".to_owned(),
        "/",
    )
}
