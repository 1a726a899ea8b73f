//! Answers for cadence tests: a READY issuance whose `modifiedAt` (the start
//! of READY, which the policy's fresh term reads) is a chosen instant.

use super::api::Reply;

/// READY since `since`, due `due_in` from now; both written as naive Korea time,
/// as the API does.
pub fn ready_since(
    id: &str,
    since: chrono::DateTime<chrono::Utc>,
    due_in: chrono::Duration,
) -> Reply {
    let kst = |t: chrono::DateTime<chrono::Utc>| {
        t.with_timezone(&chrono_tz::Asia::Seoul)
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string()
    };
    let (since, due) = (kst(since), kst(chrono::Utc::now() + due_in));
    Reply::json(
        200,
        &format!(
            r#"{{"data":{{"id":"{id}","amount":10000,"status":"READY","createdAt":"{since}","modifiedAt":"{since}","preparedVbankInfo":{{"vbankDueDate":"{due}","vbankAccountNumber":"451235741265","bankName":"국민은행","vbankHolderName":"번개장터"}}}}}}"#
        ),
    )
}
