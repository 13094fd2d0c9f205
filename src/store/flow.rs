//! What a channel writes when the flow engine asks: the same for every channel
//! (the terminal simulator, SIP, the webhooks), so a call's answers and outcome are
//! stored alike whichever way it came in.

use chrono::{DateTime, Utc};

use super::{CallEnd, CallId, NewAnswer, Store, StoreError};
use crate::flow::Action;

impl Store {
    /// Stores what `action` asks to store (a node entered, a language, an answer,
    /// completion, the call's end) for call `call` at `at`; other actions store
    /// nothing. Returns true when an answer was stored. Channels pass `Enter` too:
    /// the funnel counts the nodes calls reach.
    pub async fn record(
        &self,
        call: CallId,
        action: &Action,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        match action {
            Action::Enter { node } => self.visit_node(call, node).await?,
            Action::SetLanguage { language } => self.set_language(call, language).await?,
            Action::StoreAnswer {
                question,
                choice,
                digit,
                broadcast,
            } => {
                let digit = digit.to_string();
                self.store_answer(&NewAnswer {
                    call,
                    question,
                    choice,
                    digit: &digit,
                    at,
                    broadcast: *broadcast,
                })
                .await?;
                return Ok(true);
            }
            Action::Completed => self.mark_completed(call).await?,
            Action::Finished { outcome, last_node } => {
                self.end_call(
                    call,
                    &CallEnd {
                        ended_at: at,
                        outcome: outcome.as_str(),
                        last_node: last_node.as_deref(),
                    },
                )
                .await?
            }
            _ => {}
        }
        Ok(false)
    }
}
