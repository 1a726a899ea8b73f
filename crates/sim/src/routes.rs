//! HTTP: the four Point endpoints, the `/_sim` control endpoints, and the two
//! middlewares around them (`observe` counts and records, `inject_faults`
//! decides faults). Auth wraps only the API routes; faults come before auth, as
//! a proxy or rate limiter in front of the real API would.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::faults::{self, FaultConfig, FaultScope, error_response};
use super::lifecycle::Status;
use super::store::Override;
use super::truth::{RateLimitRecord, RequestRecord};
use super::{Shared, SimError};

type Sim = State<Arc<Shared>>;

const ISSUANCE_PREFIX: &str = "/api/v1/points/issuance/";
const CREATE_PATH: &str = "/api/v1/points/issuance";

pub(super) fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route("/api/v1/points/balance", get(balance))
        .route("/api/v1/points/issuance", post(create))
        .route("/api/v1/points/issuance/{id}", get(lookup))
        .route("/api/v1/points/issuance/{id}/cancel", post(cancel))
        .route_layer(from_fn_with_state(shared.clone(), authenticate));
    let control = Router::new()
        .route("/_sim/seed", post(seed))
        .route("/_sim/issuances/{id}/status", post(force))
        .route(
            "/_sim/issuances/{id}/override",
            post(set_override).delete(clear_override),
        )
        .route("/_sim/faults", get(get_faults).put(put_faults))
        .route("/_sim/balance", axum::routing::put(put_balance))
        .route("/_sim/spend", post(spend))
        .route("/_sim/ground-truth", get(ground_truth))
        .route("/_sim/stats", get(stats))
        .route("/_sim/requests", get(requests))
        .route("/_sim/clock", get(clock));
    api.merge(control)
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(shared.clone(), inject_faults))
        .layer(from_fn_with_state(shared.clone(), observe))
        .with_state(shared)
}

#[derive(Serialize)]
struct Data<T> {
    data: T,
}

fn data<T: Serialize>(value: T) -> Response {
    Json(Data { data: value }).into_response()
}

fn not_found_issuance() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "NOT_FOUND_PAY_INBOUND",
        "no such point issuance",
    )
}

fn bad_request(reason: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, "BAD_REQUEST", reason)
}

fn sim_error(error: SimError) -> Response {
    match error {
        SimError::UnknownIssuance(_) => not_found_issuance(),
        SimError::Refused(refusal) => bad_request(&refusal.to_string()),
    }
}

/// What a handler answers: its response, or (through `?`) an error response.
type Answer = Result<Response, Response>;

/// Parses a JSON body ourselves so every malformed body is a documented 400.
#[allow(clippy::result_large_err)] // an error answer, built once per bad request
fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| bad_request(&format!("malformed request body: {e}")))
}

/// The issuance id of a route's path; an unusable one is an unknown issuance.
#[allow(clippy::result_large_err)] // an error answer, built once per bad request
fn issuance_id(id: Result<Path<String>, PathRejection>) -> Result<String, Response> {
    id.map(|Path(id)| id).map_err(|_| not_found_issuance())
}

/// The issuance id named by a raw request path (lookup or cancel), if any.
fn issuance_segment(path: &str) -> Option<&str> {
    let rest = path.strip_prefix(ISSUANCE_PREFIX)?;
    let id = rest.strip_suffix("/cancel").unwrap_or(rest);
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// Whether a raw path is the issuance lookup (what faults target by default).
fn is_lookup(path: &str) -> bool {
    path.strip_prefix(ISSUANCE_PREFIX)
        .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
}

async fn sleep_unless_stopped(shared: &Shared, duration: Duration) {
    let mut stop = shared.shutdown.subscribe();
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        _ = stop.wait_for(|stopped| *stopped) => {}
    }
}

// ----- middlewares -----

/// Counts every non-control request by status code and issuance, and records arrivals.
async fn observe(State(shared): Sim, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if path.starts_with("/_sim/") {
        return next.run(request).await;
    }
    let arrived = Utc::now();
    let method = request.method().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let issuance = issuance_segment(&path).and_then(|id| shared.store().seq_of(id));
    let record = shared.config.record_requests.then_some(RequestRecord {
        at: arrived,
        method,
        path,
        status,
    });
    shared.recorder.served(status, issuance, record);
    response
}

/// When a request arrived (real time): auth judges `iat` against this, so an
/// injected delay never turns a fresh token into an expired one.
#[derive(Clone, Copy)]
struct Arrival(SystemTime);

async fn inject_faults(State(shared): Sim, mut request: Request, next: Next) -> Response {
    request.extensions_mut().insert(Arrival(SystemTime::now()));
    if request.method() == Method::POST && request.uri().path() == CREATE_PATH {
        let after = {
            let config = shared.faults.read().unwrap_or_else(|e| e.into_inner());
            let mut rng = shared.fault_rng.lock().unwrap_or_else(|e| e.into_inner());
            config.after_create(shared.started.elapsed(), &mut rng)
        };
        if after != faults::AfterCreate::Answer {
            let response = next.run(request).await;
            return match after {
                faults::AfterCreate::Hang(duration) => {
                    sleep_unless_stopped(&shared, duration).await;
                    response
                }
                _ => faults::respond(&faults::Fault::DropConnection { after_bytes: 0 })
                    .unwrap_or(response),
            };
        }
    }
    let path = request.uri().path();
    let decision = {
        let config = shared.faults.read().unwrap_or_else(|e| e.into_inner());
        let eligible = match config.scope {
            FaultScope::Lookup => request.method() == Method::GET && is_lookup(path),
            FaultScope::AllApi => path.starts_with("/api/"),
        };
        if !eligible {
            None
        } else {
            let mut rng = shared.fault_rng.lock().unwrap_or_else(|e| e.into_inner());
            Some(config.decide(shared.started.elapsed(), &mut rng))
        }
    };
    let Some(decision) = decision else {
        return next.run(request).await;
    };
    if let Some(delay) = decision.delay {
        sleep_unless_stopped(&shared, delay).await;
    }
    match decision.fault {
        None => next.run(request).await,
        Some(faults::Fault::Hang(duration)) => {
            sleep_unless_stopped(&shared, duration).await;
            next.run(request).await
        }
        Some(fault) => {
            if let faults::Fault::TooManyRequests { retry_after_secs } = fault {
                let path = path.to_owned();
                shared.recorder.rate_limited(RateLimitRecord {
                    at: Utc::now(),
                    path,
                    retry_after_secs,
                });
            }
            faults::respond(&fault).unwrap_or_else(not_found_issuance)
        }
    }
}

async fn authenticate(State(shared): Sim, request: Request, next: Next) -> Response {
    let write = matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::DELETE | Method::PATCH
    );
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    let arrival = request
        .extensions()
        .get::<Arrival>()
        .map_or_else(SystemTime::now, |a| a.0);
    match shared.verifier.verify(authorization, write, arrival) {
        Ok(()) => next.run(request).await,
        Err(error) => error_response(StatusCode::UNAUTHORIZED, error.code(), &error.to_string()),
    }
}

// ----- API -----

async fn balance(State(shared): Sim) -> Response {
    let (balance, expiring) = shared.balance();
    data(json!({
        "balance": balance,
        "pointExpiredIn30Days": expiring,
    }))
}

#[derive(Deserialize)]
struct CreateRequest {
    amount: i64,
}

async fn create(State(shared): Sim, body: Bytes) -> Answer {
    let request: CreateRequest = parse(&body)?;
    if request.amount <= 0 {
        return Err(bad_request("amount must be a positive integer (KRW)"));
    }
    let now = shared.now_ms();
    let config = &shared.config;
    let mut store = shared.store_mut();
    Ok(
        match store.create_posted(
            &config.lifecycle,
            config.seed,
            request.amount,
            now,
            config.one_ready_per_key,
        ) {
            Ok(seq) => data(store.view(seq, now)),
            Err(refusal) => bad_request(&refusal.to_string()),
        },
    )
}

async fn lookup(State(shared): Sim, id: Result<Path<String>, PathRejection>) -> Answer {
    let id = issuance_id(id)?;
    let store = shared.store();
    let Some(seq) = store.seq_of(&id) else {
        return Err(not_found_issuance());
    };
    Ok(match store.override_of(seq) {
        Some(Override::Data(value)) => data(value),
        Some(Override::Raw {
            status,
            content_type,
            body,
        }) => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::OK);
            let content_type = HeaderValue::from_str(content_type)
                .unwrap_or(HeaderValue::from_static("application/json"));
            (status, [(header::CONTENT_TYPE, content_type)], body.clone()).into_response()
        }
        None => data(store.view(seq, shared.now_ms())),
    })
}

async fn cancel(State(shared): Sim, id: Result<Path<String>, PathRejection>) -> Answer {
    let id = issuance_id(id)?;
    let now = shared.now_ms();
    let mut store = shared.store_mut();
    let Some(seq) = store.seq_of(&id) else {
        return Err(not_found_issuance());
    };
    Ok(match store.cancel(seq, now) {
        Ok(()) => data(store.view(seq, now)),
        Err(refusal) => bad_request(&refusal.to_string()),
    })
}

async fn unknown_route() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "RESOURCE_NOT_FOUND",
        "no such resource",
    )
}

async fn method_not_allowed() -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "method not allowed on this resource",
    )
}

// ----- control -----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedRequest {
    count: usize,
    amount: Option<i64>,
}

async fn seed(State(shared): Sim, body: Bytes) -> Answer {
    let request: SeedRequest = parse(&body)?;
    let ids = shared
        .seed(request.count, request.amount)
        .map_err(sim_error)?;
    Ok(Json(json!({ "ids": ids })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForceRequest {
    status: String,
}

async fn force(State(shared): Sim, id: Result<Path<String>, PathRejection>, body: Bytes) -> Answer {
    let id = issuance_id(id)?;
    let request: ForceRequest = parse(&body)?;
    let view = shared
        .force(&id, Status::parse(&request.status))
        .map_err(sim_error)?;
    Ok(data(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OverrideRequest {
    #[serde(default, deserialize_with = "present")]
    data: Option<serde_json::Value>,
    body: Option<String>,
    status: Option<u16>,
    content_type: Option<String>,
}

/// Distinguishes `"data": null` (serve null) from no `data` key at all.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

async fn set_override(
    State(shared): Sim,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Answer {
    let id = issuance_id(id)?;
    let request: OverrideRequest = parse(&body)?;
    let value = match request {
        OverrideRequest {
            data: Some(value),
            body: None,
            ..
        } => Override::Data(value),
        OverrideRequest {
            data: None,
            body: Some(body),
            status,
            content_type,
        } => Override::Raw {
            status: status.unwrap_or(200),
            content_type: content_type.unwrap_or_else(|| "application/json".to_owned()),
            body,
        },
        _ => {
            return Err(bad_request(
                "give exactly one of \"data\" (any JSON) or \"body\" (raw text)",
            ));
        }
    };
    shared.set_override(&id, Some(value)).map_err(sim_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn clear_override(State(shared): Sim, id: Result<Path<String>, PathRejection>) -> Answer {
    let id = issuance_id(id)?;
    shared.set_override(&id, None).map_err(sim_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BalanceRequest {
    balance: i64,
    point_expired_in_30_days: Option<i64>,
}

/// Sets the balance before charges (what points were spent or expired).
async fn put_balance(State(shared): Sim, body: Bytes) -> Answer {
    let request: BalanceRequest = parse(&body)?;
    shared.set_base_balance(request.balance, request.point_expired_in_30_days);
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpendRequest {
    amount: i64,
}

/// Spends points as orders would (the balance falls, never below 0).
async fn spend(State(shared): Sim, body: Bytes) -> Answer {
    let request: SpendRequest = parse(&body)?;
    let balance = shared.spend(request.amount);
    Ok(Json(serde_json::json!({ "balance": balance })).into_response())
}

async fn get_faults(State(shared): Sim) -> Response {
    Json(shared.faults()).into_response()
}

async fn put_faults(State(shared): Sim, body: Bytes) -> Answer {
    let config: FaultConfig = parse(&body)?;
    *shared.faults.write().unwrap_or_else(|e| e.into_inner()) = config.clone();
    Ok(Json(config).into_response())
}

#[derive(Deserialize)]
struct TruthQuery {
    id: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

async fn ground_truth(
    State(shared): Sim,
    query: Result<Query<TruthQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return bad_request("unknown query");
    };
    let (offset, limit) = (query.offset.unwrap_or(0), query.limit.unwrap_or(usize::MAX));
    match shared.ground_truth(query.id.as_deref(), offset, limit) {
        Ok(events) => Json(events).into_response(),
        Err(error) => sim_error(error),
    }
}

async fn stats(State(shared): Sim) -> Response {
    Json(shared.stats()).into_response()
}

async fn requests(State(shared): Sim) -> Response {
    Json(json!({
        "requests": shared.recorder.requests(),
        "rateLimits": shared.recorder.rate_limits(),
    }))
    .into_response()
}

async fn clock(State(shared): Sim) -> Response {
    Json(json!({
        "now": shared.clock.now().to_rfc3339_opts(SecondsFormat::Millis, true),
        "speed": shared.clock.speed(),
        "uptimeMs": u64::try_from(shared.started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuance_segments_are_found_in_raw_paths() {
        assert_eq!(issuance_segment("/api/v1/points/issuance/123"), Some("123"));
        assert_eq!(
            issuance_segment("/api/v1/points/issuance/123/cancel"),
            Some("123")
        );
        assert_eq!(issuance_segment("/api/v1/points/issuance/"), None);
        assert_eq!(issuance_segment("/api/v1/points/issuance/a/b"), None);
        assert_eq!(issuance_segment("/api/v1/points/balance"), None);
    }
}
