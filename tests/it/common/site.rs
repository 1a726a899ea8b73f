//! The web dashboard on a fresh database (SQLite, or the test's PostgreSQL
//! database under `on_both_engines!`), served on a loopback port, and the
//! facts a test seeds through the store: an open charge, a settled issuance,
//! a sink, an unknown charge request.

use std::time::Duration;

use chrono::{DateTime, Utc};
use issuance_watcher::domain::{Decision, Observation, Status, Vbank};
use issuance_watcher::settings::{AdminToken, Settings};
use issuance_watcher::store::{ChargeResult, Store};
use issuance_watcher::web::{Dashboard, router};
use tokio_util::sync::CancellationToken;

use super::config::TestSettings;

/// The admin token of [`Site::start`] with `admin`.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// The dashboard serving on `base` until dropped.
pub struct Site {
    pub base: String,
    pub store: Store,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Site {
    /// The dashboard on a fresh migrated database, with the admin token if
    /// `admin`, configured sinks `sinks` (pointing nowhere: nothing is sent
    /// in these tests), and `edit` applied to its settings.
    pub async fn start(admin: bool, sinks: &[&str], edit: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut test = TestSettings::new("http://127.0.0.1:9", &dir.path().join("watcher.db"));
        for name in sinks {
            test = test.webhook(name, "http://127.0.0.1:9/hook", |_| {});
        }
        let mut settings = test.build();
        edit(&mut settings);
        let store = Store::open_migrated(&settings.database).await.unwrap();
        for name in sinks {
            store.register_sink(name).await.unwrap();
        }
        let admin = admin.then(|| AdminToken::new(ADMIN_TOKEN, "a test").unwrap());
        let app = router(Dashboard::new(store.clone(), settings, admin));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let until = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(until.cancelled_owned())
                .await
                .unwrap();
        });
        Self {
            base,
            store,
            stop,
            _dir: dir,
        }
    }

    /// `path` on this dashboard.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Issuance `id` watched and answered `status` with a virtual account due at `due`.
    pub async fn charge(&self, id: &str, status: Status, amount: i64, due: DateTime<Utc>) {
        charge(&self.store, id, status, amount, due).await;
    }

    /// A charge request whose outcome is unknown (a 5xx answered it).
    pub async fn unknown_request(&self, amount: i64) -> i64 {
        let now = Utc::now();
        let id = self
            .store
            .start_charge_request(amount, false, now)
            .await
            .unwrap();
        let unknown = ChargeResult::Unknown {
            http_status: Some(500),
            code: "SERVER_ERROR",
            detail: "HTTP 500",
        };
        self.store
            .finish_charge_request(id, unknown, now, now)
            .await
            .unwrap();
        id
    }
}

/// [`Site::charge`] on any store (one a test seeds and closes before the site starts).
pub async fn charge(store: &Store, id: &str, status: Status, amount: i64, due: DateTime<Utc>) {
    store.add_ids(&[id.to_owned()]).await.unwrap();
    let observation = Observation {
        status,
        amount: Some(amount),
        created_at: Some(Utc::now()),
        modified_at: Some(Utc::now()),
        vbank: Some(Vbank {
            due_at: Some(due),
            account_number: Some("110-123-456789".to_owned()),
            bank_name: Some("Shinhan".to_owned()),
            holder_name: Some("Bunjang Point".to_owned()),
        }),
        warnings: Vec::new(),
    };
    let decision = if status.is_terminal() {
        Decision::Settled
    } else {
        Decision::PollAt(Utc::now() + Duration::from_secs(3600))
    };
    store
        .record_answer(id, &observation, decision, Utc::now())
        .await
        .unwrap();
}
