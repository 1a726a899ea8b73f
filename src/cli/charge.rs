//! The commands that move money or read the balance: `charge`, `cancel`,
//! `balance`, and `charges` (the request table). Each says plainly what
//! happened, and above all when it does not know: a charge of unknown outcome
//! exits non-zero with what to check, and is never sent again.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context as _, bail};
use chrono::Utc;
use serde::Serialize;

use super::output::{left, print_json, print_table, print_text, right};
use crate::api::{self, ApiClient, CancelOutcome};
use crate::app::open_store;
use crate::domain::{Clock, money};
use crate::settings::Settings;
use crate::store::{Access, IssuanceRow, Resolution};
use crate::watcher::charges::{Charger, Performed, charge_with, parse_amount, record_cancel};

fn client(settings: &Settings) -> anyhow::Result<ApiClient> {
    settings
        .validate_credentials()
        .context("while checking the credentials")?;
    ApiClient::from_settings(settings).context("while building the API client")
}

/// `charge AMOUNT [--force] [--json]`.
pub(super) async fn charge(
    settings: &Settings,
    amount: &str,
    force: bool,
    json: bool,
) -> anyhow::Result<()> {
    let amount = parse_amount(amount, settings.charge.max_amount).map_err(anyhow::Error::msg)?;
    let client = client(settings)?;
    let store = open_store(settings, Access::Write).await?;
    // Held while the POST is in flight: a daemon that finds it free knows
    // this process died and makes the request `unknown`.
    let ownership = store.hold_ownership().await;
    let charger = Charger {
        store: &store,
        client: &client,
        settings,
        clock: Clock::real(),
        pacer: None,
    };
    let charged = charge_with(&charger, amount, force, true).await;
    ownership.retire().await;
    let (request_id, attempt) =
        charged.context("while recording the charge request (nothing was sent)")?;
    if let Some(past) = &attempt.forced_past {
        eprintln!(
            "warning: FORCED: charge request {request_id} was sent although {past} (recorded in the request's forced_past)"
        );
    }
    let (performed, recorded) = (attempt.performed, attempt.recorded);
    let issuance = match &performed {
        Performed::Created { issuance_id, .. } => store.issuance(issuance_id).await.ok().flatten(),
        _ => None,
    };
    if json {
        #[derive(Serialize)]
        struct Shown<'a> {
            request_id: i64,
            state: &'a str,
            amount: i64,
            issuance: Option<&'a IssuanceRow>,
            error_code: Option<String>,
            error_message: Option<String>,
        }
        let row = store.charge_request(request_id).await.ok().flatten();
        print_json(&Shown {
            request_id,
            state: performed.state(),
            amount,
            issuance: issuance.as_ref(),
            error_code: row.as_ref().and_then(|r| r.error_code.clone()),
            error_message: row.as_ref().and_then(|r| r.error_message.clone()),
        })?;
    } else if let Performed::Created { issuance_id, .. } = &performed {
        print_text(&created_text(
            request_id,
            issuance_id,
            amount,
            issuance.as_ref(),
        ))?;
    }
    if let Err(e) = recorded {
        bail!(
            "charge request {request_id} ({}) could not be recorded: {e}; the daemon will show it as unknown",
            performed.state()
        );
    }
    match performed {
        Performed::Created { .. } => Ok(()),
        Performed::Refused(r) => bail!(
            "the API refused the charge of {amount} KRW: {r}. Nothing was created (charge request {request_id}, state refused)"
        ),
        Performed::Rejected { code, message } => {
            bail!(
                "charge refused here: {code}: {message} (charge request {request_id}, state rejected)"
            )
        }
        Performed::Unknown(u) => bail!(
            "the outcome of the charge of {amount} KRW is UNKNOWN ({}: {}). A charge MAY have been created. \
             It was not retried and will not be: look for a new issuance of {amount} KRW in the Bunjang partner console \
             before asking again (charge request {request_id} is recorded with state unknown, and new charges are \
             refused until it is resolved: `issuance-watcher charges resolve {request_id} --issuance ID` links the charge \
             you found and watches it, `issuance-watcher charges resolve {request_id} --none` records that none was created)",
            u.code,
            u.detail
        ),
    }
}

fn created_text(request_id: i64, id: &str, amount: i64, row: Option<&IssuanceRow>) -> String {
    let get = |f: fn(&IssuanceRow) -> Option<&String>| {
        row.and_then(f).cloned().unwrap_or_else(|| "-".to_owned())
    };
    let status = get(|r| r.status.as_ref());
    let mut out = format!(
        "Charge created: issuance {id}, {amount} KRW, {status} (charge request {request_id}).\n"
    );
    if row.and_then(|r| r.vbank_account_number.as_ref()).is_some() {
        let due = row
            .and_then(|r| r.vbank_due_at.as_deref())
            .and_then(crate::domain::timefmt::from_db);
        let (kst, utc) = match due {
            Some(due) => (
                due.with_timezone(&chrono_tz::Asia::Seoul)
                    .format("%Y-%m-%d %H:%M:%S KST")
                    .to_string(),
                due.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            ),
            None => ("-".to_owned(), "-".to_owned()),
        };
        out.push_str(&format!(
            "Transfer {amount} KRW to:\n  bank            {}\n  account number  {}\n  holder          {}\n  amount          {amount} KRW\n  deposit by      {kst} ({utc})\n",
            get(|r| r.bank_name.as_ref()),
            get(|r| r.vbank_account_number.as_ref()),
            get(|r| r.vbank_holder_name.as_ref()),
        ));
    } else {
        out.push_str(&format!(
            "The virtual account is still being prepared: `issuance-watcher show {id}` shows it in a few seconds.\n"
        ));
    }
    out.push_str("The daemon watches it until it settles.\n");
    out
}

/// `cancel ID [--yes]`.
pub(super) async fn cancel(settings: &Settings, id: &str, yes: bool) -> anyhow::Result<()> {
    if let Some(reason) = api::reject_reason(id) {
        bail!(
            "refusing id {:?}: {reason}",
            id.chars().take(64).collect::<String>()
        );
    }
    let store = open_store(settings, Access::Write).await?;
    let Some(row) = store.issuance(id).await? else {
        bail!(
            "issuance {id:?} is not in the database (only charges this database watches can be cancelled here)"
        );
    };
    match row.status.as_deref() {
        Some("READY") => {}
        other => bail!(
            "issuance {id} is {} here: only a READY charge can be cancelled",
            other.unwrap_or("not seen yet")
        ),
    }
    if !yes {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            bail!(
                "not cancelling issuance {id} without confirmation: pass --yes (stdin is not a terminal)"
            );
        }
        let mut err = std::io::stderr().lock();
        write!(
            err,
            "Cancel issuance {id} ({} KRW, account {} at {})? [y/N] ",
            row.amount.map_or("-".to_owned(), |a| a.to_string()),
            row.vbank_account_number.as_deref().unwrap_or("-"),
            row.bank_name.as_deref().unwrap_or("-"),
        )?;
        err.flush()?;
        let mut answer = String::new();
        stdin.lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES") {
            bail!("not cancelled");
        }
    }
    let client = client(settings)?;
    match client.cancel(id).await {
        CancelOutcome::Answered(observation) => {
            let recorded = record_cancel(&store, settings, id, &observation)
                .await
                .context("while recording the cancel's answer (the issuance IS cancelled; the daemon's next poll records it)")?;
            print_text(&format!(
                "issuance {id} is {}{}\n",
                observation.status,
                if recorded {
                    ""
                } else {
                    " (already recorded by the daemon)"
                }
            ))
        }
        CancelOutcome::Refused(r) => bail!("the API refused to cancel issuance {id}: {r}"),
        CancelOutcome::Failed(u) => bail!(
            "no usable answer to the cancel of issuance {id} ({}: {}); it may or may not be cancelled: the daemon's next poll will tell (`issuance-watcher show {id}`)",
            u.code,
            u.detail
        ),
    }
}

/// `balance [--json]`.
pub(super) async fn balance(settings: &Settings, json: bool) -> anyhow::Result<()> {
    let client = client(settings)?;
    let balance = client
        .balance()
        .await
        .context("while reading the point balance")?;
    if json {
        return print_json(&balance);
    }
    print_text(&format!(
        "balance                 {} points\nexpiring within 30 days {} points\n",
        balance.balance, balance.expiring_30d
    ))
}

#[derive(Debug, clap::Args)]
pub struct ChargesArgs {
    #[command(subcommand)]
    pub action: Option<ChargesAction>,
    /// At most this many rows.
    #[arg(long, default_value_t = 50, value_parser = super::limit)]
    pub limit: i64,
    /// Print JSON (an array of rows with the database's column names).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum ChargesAction {
    /// Say what became of charge request N of unknown outcome, after looking in
    /// the Bunjang partner console: new charges are refused until then.
    Resolve {
        /// The charge request's id (`issuance-watcher charges` lists them).
        #[arg(value_name = "N")]
        request: i64,
        /// The charge was created: it is issuance ID (watched from now on).
        #[arg(
            long,
            value_name = "ID",
            allow_hyphen_values = true,
            required_unless_present = "none",
            conflicts_with = "none"
        )]
        issuance: Option<String>,
        /// No charge was created.
        #[arg(long)]
        none: bool,
    },
}

/// `charges [--limit N] [--json]`: the request table, newest first; or
/// `charges resolve N (--issuance ID | --none)`.
pub(super) async fn charges(settings: &Settings, args: ChargesArgs) -> anyhow::Result<()> {
    if let Some(ChargesAction::Resolve {
        request,
        issuance,
        none: _,
    }) = args.action
    {
        return resolve(settings, request, issuance.as_deref()).await;
    }
    let store = open_store(settings, Access::Read).await?;
    let rows = store.charge_requests(args.limit).await?;
    let columns = [
        right("ID"),
        right("AMOUNT"),
        left("STATE"),
        left("REQUESTED (UTC)"),
        left("ISSUANCE"),
        left("ERROR"),
    ];
    print_table(&rows, args.json, &columns, |r| {
        let mut notes = match (&r.error_code, &r.error_message) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.clone(),
            _ => String::new(),
        };
        if r.source == "top_up" {
            notes.push_str(" [top-up rule]");
        }
        if let Some(past) = &r.forced_past {
            notes.push_str(&format!(" [forced past: {past}]"));
        }
        match (&r.resolution, &r.resolved_at) {
            (Some(resolution), Some(at)) => notes.push_str(&format!(
                " [resolved {resolution} at {at} by {}]",
                r.resolved_by.as_deref().unwrap_or("-")
            )),
            _ if r.state == "unknown" => notes.push_str(&format!(
                " [UNRESOLVED: blocks new charges; `charges resolve {} --issuance ID` or `--none`]",
                r.id
            )),
            _ => {}
        }
        vec![
            r.id.to_string(),
            money::grouped(r.amount),
            r.state.clone(),
            r.requested_at.clone(),
            r.issuance_id.clone().unwrap_or_else(|| "-".into()),
            notes.trim_start().to_owned(),
        ]
    })
}

/// `charges resolve N --issuance ID | --none`.
async fn resolve(settings: &Settings, request: i64, issuance: Option<&str>) -> anyhow::Result<()> {
    if let Some(id) = issuance
        && let Some(reason) = api::reject_reason(id)
    {
        bail!(
            "refusing issuance id {:?}: {reason}",
            id.chars().take(64).collect::<String>()
        );
    }
    let resolution = match issuance {
        Some(id) => Resolution::Issuance(id),
        None => Resolution::None,
    };
    let store = open_store(settings, Access::Write).await?;
    let by = resolver();
    let resolved = store
        .resolve_charge_request(request, resolution, &by, Utc::now())
        .await
        .context("while resolving the charge request")?;
    let row = match resolved {
        Ok(row) => row,
        Err(refused) => bail!("not resolved: {refused}"),
    };
    let found = match resolution {
        Resolution::Issuance(id) => format!(
            "its charge is issuance {id}, watched from now on (`issuance-watcher show {id}`)"
        ),
        Resolution::None => "no charge was created".to_owned(),
    };
    print_text(&format!(
        "charge request {request} ({} KRW) resolved: {found} (by {by} at {}).\n",
        row.amount,
        row.resolved_at.as_deref().unwrap_or("-"),
    ))
}

/// Who resolves, for `resolved_by`: `cli:USER@HOST`.
fn resolver() -> String {
    format!("cli:{}", super::output::user_at_host())
}
