//! The start of a call, the same on every channel: its row, and which
//! broadcast's poll it answers.

use chrono::{DateTime, Utc};

use crate::campaign::Campaign;
use crate::store::NewCall;

/// The row a call starts with: `caller` is the pseudonym, never the number; the
/// broadcast is the one whose poll window holds the start, if any.
pub fn new_call<'a>(
    campaign: &'a Campaign,
    caller: &'a str,
    channel: &'a str,
    at: DateTime<Utc>,
) -> NewCall<'a> {
    NewCall {
        campaign: &campaign.id,
        caller,
        channel,
        started_at: at,
        broadcast: campaign.schedule.as_ref().and_then(|s| s.broadcast_of(at)),
    }
}
