//! A Bunjang Open API simulator for the Point endpoints, for tests, demos and
//! load runs: the watcher cannot reach the real API, so it is developed against this.
//!
//! It behaves as `bunjang-api.md` describes (auth, `{"data": ...}` wrapping,
//! naive-KST datetimes, error codes) and adds what tests need: accelerated
//! business time, seeded lifecycles, forcing, fault injection and ground truth.
//!
//! # In-process use (tests)
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use bunjang_sim::{SimConfig, Simulator};
//! let sim = Simulator::start(SimConfig::default().with_speed(3600.0), "127.0.0.1:0".parse()?).await?;
//! let ids = sim.seed(10); // issuances without HTTP
//! sim.force(&ids[0], "DONE")?; // any status, even "WEIRD"
//! // ... point the client at sim.base_url(), signing with DEMO_ACCESS_KEY / DEMO_SECRET_KEY ...
//! let truth = sim.ground_truth(); // every status change so far (simulated time)
//! let stats = sim.stats(); // requests per status code and per issuance
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # HTTP surface
//! API (auth required): `GET /api/v1/points/balance`, `POST /api/v1/points/issuance`
//! (`{"amount": n}`), `GET /api/v1/points/issuance/{id}`, `POST /api/v1/points/issuance/{id}/cancel`.
//!
//! Control (no auth, never faulted), under `/_sim/`:
//! - `POST /_sim/seed` `{"count": n, "amount"?: a}` → `{"ids": [...]}`
//! - `POST /_sim/issuances/{id}/status` `{"status": "DONE"}` → the issuance object
//! - `POST /_sim/issuances/{id}/override` `{"data": <any JSON>}` or
//!   `{"body": "<raw text>", "status"?: 200, "contentType"?: "application/json"}`;
//!   `DELETE` the same path to remove it. Only the lookup serves overrides.
//! - `GET|PUT /_sim/faults` (a [`FaultConfig`] as JSON)
//! - `PUT /_sim/balance` `{"balance": n, "pointExpiredIn30Days"?: m}`: the balance
//!   before charges; every charge created through the API adds its amount once DONE
//! - `POST /_sim/spend` `{"amount": n}` → `{"balance": b}`: points spent as orders
//!   would spend them; the balance falls by `n`, never below 0
//! - `GET /_sim/ground-truth[?id=…][?offset=…&limit=…]` → `[{issuanceId, from, to, at}]`
//!   (offset/limit page over issuances in creation order)
//! - `GET /_sim/stats`, `GET /_sim/requests` (`{requests, rateLimits}`), `GET /_sim/clock`
//!
//! # Time
//! Lifecycles run on a [`Clock`] with `speed` (3600: an hour per real second);
//! JWT `iat` checks and fault windows use real time.

mod auth;
pub mod cli;
mod config;
mod faults;
mod lifecycle;
mod routes;
mod store;
mod truth;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use business_clock::Clock;

pub use auth::AuthError;
pub use config::{DepositTiming, DueOutcome, LifecycleConfig, SimConfig};
pub use faults::{FaultConfig, FaultRule, FaultScope, ServerErrorKind, Window};
pub use lifecycle::{Schedule, Status, draw, format_kst};
pub use store::{ID_BASE, IDS_PER_MS, IssuanceView, Override, VbankInfo, id_base_at};
pub use truth::{RateLimitRecord, RequestRecord, Stats, TruthEvent};

use store::Store;

/// Errors of the control operations.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("no issuance with id {0:?}")]
    UnknownIssuance(String),
    #[error("{0}")]
    Refused(#[from] store::Refusal),
}

/// State shared by the handle and every request handler.
struct Shared {
    config: SimConfig,
    verifier: auth::Verifier,
    clock: Clock,
    started: Instant,
    store: RwLock<Store>,
    faults: RwLock<FaultConfig>,
    fault_rng: Mutex<fastrand::Rng>,
    recorder: truth::Recorder,
    shutdown: watch::Sender<bool>,
    /// The balance before what charges credited, and the points expiring
    /// within 30 days (both settable at runtime).
    base_balance: Mutex<(i64, i64)>,
}

impl Shared {
    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    fn store(&self) -> std::sync::RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(|e| e.into_inner())
    }

    fn store_mut(&self) -> std::sync::RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(|e| e.into_inner())
    }

    fn faults(&self) -> FaultConfig {
        self.faults
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The balance now: the base plus every charge made through the API that is DONE.
    fn balance(&self) -> (i64, i64) {
        let (base, expiring) = *self.base_balance.lock().unwrap_or_else(|e| e.into_inner());
        let credited = self.store().credited(self.now_ms());
        (base.saturating_add(credited), expiring)
    }

    fn set_base_balance(&self, balance: i64, expiring: Option<i64>) {
        let mut base = self.base_balance.lock().unwrap_or_else(|e| e.into_inner());
        base.0 = balance;
        if let Some(expiring) = expiring {
            base.1 = expiring;
        }
    }

    /// Spends `amount` points as orders would: the balance falls by it, never
    /// below 0. Returns the balance after.
    fn spend(&self, amount: i64) -> i64 {
        let credited = self.store().credited(self.now_ms());
        let mut base = self.base_balance.lock().unwrap_or_else(|e| e.into_inner());
        let now = base.0.saturating_add(credited);
        base.0 -= amount.clamp(0, now.max(0));
        base.0.saturating_add(credited)
    }

    fn seed(&self, count: usize, amount: Option<i64>) -> Result<Vec<String>, SimError> {
        let now = self.now_ms();
        let range = self.store_mut().create_many(
            &self.config.lifecycle,
            self.config.seed,
            count,
            amount,
            now,
        )?;
        let store = self.store();
        Ok(range.map(|seq| store.id_of(seq)).collect())
    }

    fn force(&self, id: &str, status: Status) -> Result<IssuanceView, SimError> {
        let now = self.now_ms();
        let mut store = self.store_mut();
        let seq = store
            .seq_of(id)
            .ok_or_else(|| SimError::UnknownIssuance(id.to_owned()))?;
        store.force(seq, status, now);
        Ok(store.view(seq, now))
    }

    fn set_override(&self, id: &str, value: Option<Override>) -> Result<(), SimError> {
        let mut store = self.store_mut();
        let seq = store
            .seq_of(id)
            .ok_or_else(|| SimError::UnknownIssuance(id.to_owned()))?;
        store.set_override(seq, value);
        Ok(())
    }

    /// One issuance's changes, or those of the issuances `offset..offset+limit`
    /// in creation order (time-ordered), so a million issuances can be paged.
    fn ground_truth(
        &self,
        only: Option<&str>,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<truth::TruthEvent>, SimError> {
        let now = self.now_ms();
        let store = self.store();
        match only {
            Some(id) => {
                let seq = store
                    .seq_of(id)
                    .ok_or_else(|| SimError::UnknownIssuance(id.to_owned()))?;
                Ok(truth::changes(id, &store.timeline(seq, now)))
            }
            None => {
                let mut all = Vec::new();
                let end = offset.saturating_add(limit).min(store.len());
                for seq in offset.min(end) as u32..end as u32 {
                    all.extend(truth::changes(&store.id_of(seq), &store.timeline(seq, now)));
                }
                all.sort_by_key(|event| event.at);
                Ok(all)
            }
        }
    }

    fn stats(&self) -> Stats {
        let store = self.store();
        self.recorder.stats(|seq| store.id_of(seq), store.len())
    }
}

/// Starts simulators.
pub struct Simulator;

impl Simulator {
    /// Binds `addr` (port 0 picks a free port), serves in the background, and
    /// returns a handle. Fails on a bad secret key or an unavailable address.
    pub async fn start(config: SimConfig, addr: SocketAddr) -> anyhow::Result<SimHandle> {
        let verifier = auth::Verifier::new(
            &config.access_key,
            &config.secret_key,
            config.token_window,
            config.token_future_leeway,
            config.static_token.clone(),
        )?;
        let clock = Clock::accelerated(config.start_at.unwrap_or_else(Utc::now), config.speed);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let addr = listener.local_addr()?;
        let (shutdown, mut stop) = watch::channel(false);
        let shared = Arc::new(Shared {
            faults: RwLock::new(config.faults.clone()),
            fault_rng: Mutex::new(fastrand::Rng::with_seed(lifecycle::issuance_seed(
                config.seed,
                u64::MAX,
            ))),
            verifier,
            clock,
            started: Instant::now(),
            store: RwLock::new(Store::with_id_base(
                config
                    .id_base
                    .unwrap_or_else(|| store::id_base_at(Utc::now().timestamp_millis())),
            )),
            recorder: truth::Recorder::default(),
            shutdown,
            base_balance: Mutex::new((config.balance, config.point_expired_in_30_days)),
            config,
        });
        let app = routes::router(shared.clone());
        let server = tokio::spawn(async move {
            let stopped = async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            };
            if let Err(error) = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::error!(%error, "simulator server failed");
            }
        });
        tracing::info!(%addr, "simulator listening");
        Ok(SimHandle {
            inner: Arc::new(HandleInner {
                shared,
                addr,
                server: Mutex::new(Some(server)),
            }),
        })
    }
}

struct HandleInner {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Mutex<Option<JoinHandle<()>>>,
}

/// A running simulator; cheap to clone.
#[derive(Clone)]
pub struct SimHandle {
    inner: Arc<HandleInner>,
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// The simulator's business clock (accelerated by `speed`).
    pub fn clock(&self) -> Clock {
        self.inner.shared.clock
    }

    pub fn config(&self) -> &SimConfig {
        &self.inner.shared.config
    }

    /// Creates `count` issuances now, without HTTP and without the one-open-charge rule.
    /// Amounts are drawn from the seed. Returns their ids in creation order.
    pub fn seed(&self, count: usize) -> Vec<String> {
        self.try_seed(count, None).unwrap_or_default()
    }

    /// [`Self::seed`] with an optional fixed amount, failing past the capacity ceiling.
    pub fn try_seed(&self, count: usize, amount: Option<i64>) -> Result<Vec<String>, SimError> {
        self.inner.shared.seed(count, amount)
    }

    /// Sets an issuance's status now, recorded in the ground truth. Any string is
    /// accepted: documented statuses, illegal moves, and unknown ones like "WEIRD".
    /// The drawn schedule stops applying to this issuance afterwards.
    pub fn force(&self, id: &str, status: &str) -> Result<IssuanceView, SimError> {
        self.inner.shared.force(id, Status::parse(status))
    }

    /// Makes the lookup of `id` answer `value` (or normally again with `None`).
    pub fn set_override(&self, id: &str, value: Option<Override>) -> Result<(), SimError> {
        self.inner.shared.set_override(id, value)
    }

    /// The issuance as the API would show it now (no auth, no faults, no overrides).
    pub fn issuance(&self, id: &str) -> Option<IssuanceView> {
        let shared = &self.inner.shared;
        let store = shared.store();
        store.seq_of(id).map(|seq| store.view(seq, shared.now_ms()))
    }

    /// Every status change up to the current simulated time, ordered by time.
    /// About 4 events per issuance: with a million issuances, prefer [`Self::ground_truth_of`].
    pub fn ground_truth(&self) -> Vec<TruthEvent> {
        self.ground_truth_page(0, usize::MAX)
    }

    /// The changes of the issuances `offset..offset + limit` (creation order), ordered by time.
    pub fn ground_truth_page(&self, offset: usize, limit: usize) -> Vec<TruthEvent> {
        self.inner
            .shared
            .ground_truth(None, offset, limit)
            .unwrap_or_default()
    }

    /// One issuance's status changes up to now.
    pub fn ground_truth_of(&self, id: &str) -> Result<Vec<TruthEvent>, SimError> {
        self.inner.shared.ground_truth(Some(id), 0, 0)
    }

    pub fn stats(&self) -> Stats {
        self.inner.shared.stats()
    }

    /// Real arrival of every API request (empty unless `record_requests`).
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.inner.shared.recorder.requests()
    }

    /// Every 429 sent, with its Retry-After.
    pub fn rate_limit_log(&self) -> Vec<RateLimitRecord> {
        self.inner.shared.recorder.rate_limits()
    }

    pub fn faults(&self) -> FaultConfig {
        self.inner.shared.faults()
    }

    /// `(balance, pointExpiredIn30Days)` as the balance endpoint answers now.
    pub fn balance(&self) -> (i64, i64) {
        self.inner.shared.balance()
    }

    /// Sets the balance that charges add to (and, if given, the points expiring).
    pub fn set_balance(&self, balance: i64, expiring_30d: Option<i64>) {
        self.inner.shared.set_base_balance(balance, expiring_30d);
    }

    /// Spends `amount` points (`POST /_sim/spend`); returns the balance after.
    pub fn spend(&self, amount: i64) -> i64 {
        self.inner.shared.spend(amount)
    }

    /// Charges created through `POST /api/v1/points/issuance` so far,
    /// including those whose answer was dropped or never sent.
    pub fn charges_created(&self) -> usize {
        self.inner.shared.store().posted()
    }

    /// Replaces the fault switches; windows stay relative to the simulator's start.
    pub fn set_faults(&self, faults: FaultConfig) {
        *self
            .inner
            .shared
            .faults
            .write()
            .unwrap_or_else(|e| e.into_inner()) = faults;
    }

    /// Real time since the simulator started (what fault windows are measured in).
    pub fn uptime(&self) -> Duration {
        self.inner.shared.started.elapsed()
    }

    /// Stops serving: ends injected hangs, lets in-flight requests finish (at most
    /// 5 s), then returns. Idempotent; other clones see a stopped server.
    pub async fn shutdown(&self) {
        self.inner.shared.shutdown.send_replace(true);
        let server = self
            .inner
            .server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut server) = server
            && tokio::time::timeout(Duration::from_secs(5), &mut server)
                .await
                .is_err()
        {
            server.abort();
        }
    }

    /// Resolves when [`Self::shutdown`] has been called (from any clone).
    pub async fn stopped(&self) {
        let mut stop = self.inner.shared.shutdown.subscribe();
        let _ = stop.wait_for(|stopped| *stopped).await;
    }
}
