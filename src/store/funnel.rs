//! Reading the funnel: per node, how many calls entered it and how many callers
//! hung up there. The counts are kept by `Store::visit_node` and `Store::end_call`
//! (writes.rs) as calls go; a time range is counted from the visits of the calls
//! that started in it.

use std::collections::BTreeMap;

use super::reads::Bound;
use super::{CountFilter, Store, StoreError, count, sql, with_pool};

/// What [`Store::funnel`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunnelCounts {
    pub calls: u64,
    pub completed: u64,
    /// By node id: (calls that reached it, callers who hung up there). Nodes no
    /// call reached are absent; the web layer fills them in from the campaign.
    pub nodes: BTreeMap<String, (u64, u64)>,
}

impl Store {
    /// The funnel of one campaign (`by` is ignored). Without `since`/`until` it
    /// reads only counter tables; with them, the calls that started in the range.
    pub async fn funnel(
        &self,
        campaign: &str,
        f: &CountFilter<'_>,
    ) -> Result<FunnelCounts, StoreError> {
        let bound = Bound::new(campaign, f);
        let ranged = bound.range.is_some();
        let (totals, reached, hung_up) = with_pool!(self, |pool| {
            if ranged {
                let totals: (i64, i64) = bound
                    .bind(sqlx::query_as(sql::RANGE_CALLS))
                    .fetch_one(pool)
                    .await?;
                let reached: Vec<(String, i64)> = bound
                    .bind(sqlx::query_as(sql::RANGE_NODES_REACHED))
                    .fetch_all(pool)
                    .await?;
                let hung_up: Vec<(String, i64)> = bound
                    .bind(sqlx::query_as(sql::RANGE_NODES_HUNG_UP))
                    .fetch_all(pool)
                    .await?;
                (totals, reached, hung_up)
            } else {
                let totals: (i64, i64) = bound
                    .bind(sqlx::query_as(sql::COUNTED_CALLS))
                    .fetch_one(pool)
                    .await?;
                let rows: Vec<(String, i64, i64)> = bound
                    .bind(sqlx::query_as(sql::COUNTED_NODES))
                    .fetch_all(pool)
                    .await?;
                let (reached, hung_up) = rows
                    .into_iter()
                    .map(|(node, r, h)| ((node.clone(), r), (node, h)))
                    .unzip();
                (totals, reached, hung_up)
            }
        });
        let mut nodes: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for (node, n) in reached {
            nodes.entry(node).or_default().0 = count(n);
        }
        for (node, n) in hung_up {
            nodes.entry(node).or_default().1 = count(n);
        }
        Ok(FunnelCounts {
            calls: count(totals.0),
            completed: count(totals.1),
            nodes,
        })
    }
}
