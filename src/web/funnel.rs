//! `GET /api/campaigns/{id}/funnel`: for every node, how many calls reached it and
//! how many callers hung up there. Where listeners give up tells a broadcaster
//! which message is too long or which menu confuses.
//!
//! The store counts both as calls go (`Store::visit_node`, `Store::end_call`);
//! this only lays the counts out in the campaign's file order, with zeros for the
//! nodes nobody reached, and masks small groups ([`super::masking`]).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json as json_value};

use super::api::{find, json, query, results_error};
use super::masking::{SMALL_POPULATION, mask_funnel};
use super::{ApiError, ApiPath, ApiState, Auth, Role};
use crate::results::count_filter;

pub(super) async fn funnel(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    ApiPath(id): ApiPath<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    auth.require(Role::Analyst)?;
    let c = find(&st, &id)?;
    let q = query(&c, uri.query())?;
    if q.by.is_some() {
        return Err(ApiError::BadRequest(
            "the funnel takes broadcast, since and until, not by".into(),
        ));
    }
    Ok(json(StatusCode::OK, &funnel_value(&st, &c, &q).await?))
}

/// The funnel JSON of `GET /api/campaigns/{id}/funnel`, small groups masked; the
/// campaign page draws the same.
pub(super) async fn funnel_value(
    st: &ApiState,
    c: &crate::campaign::Campaign,
    q: &crate::results::Query,
) -> Result<Value, ApiError> {
    let store = &st.shared.store;
    let f = count_filter(store, c, q).await.map_err(results_error)?;
    let counts = store
        .funnel(&c.id, &f)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let counts_per_node: Vec<(u64, u64)> = c
        .nodes
        .iter()
        .map(|n| counts.nodes.get(&n.id).copied().unwrap_or_default())
        .collect();
    let shown = mask_funnel(
        counts.calls,
        counts.completed,
        &counts_per_node,
        st.small_group(),
    );
    let nodes: Vec<Value> = c
        .nodes
        .iter()
        .zip(shown.nodes)
        .map(|(n, (reached, hung_up))| {
            json_value!({
                "node": n.id,
                "kind": n.kind.name(),
                "reached": reached,
                "hung_up": hung_up,
            })
        })
        .collect();
    let mut v = json_value!({
        "campaign": c.id,
        "calls": shown.calls,
        "completed": shown.completed,
        "nodes": nodes,
    });
    if shown.small_population
        && let Some(o) = v.as_object_mut()
    {
        o.insert(SMALL_POPULATION.into(), Value::Bool(true));
    }
    Ok(v)
}
