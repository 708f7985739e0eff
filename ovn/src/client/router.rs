//! Typed logical router operations: read, plan (pure, in [`crate::core::router`]), write, retry.

use std::collections::BTreeMap;

use super::nb::with_retries;
use super::{Error, Northbound};
use crate::core::nb::DB;
use crate::core::router::{self, RouterPort, StaticRoute};

impl Northbound {
    /// Makes the router `name` exist with `external_ids` and every port of `ports` as wanted and
    /// attached, in one read and one write transaction. Writes nothing when all already are.
    pub async fn ensure_logical_router(
        &self,
        name: &str,
        external_ids: &BTreeMap<String, String>,
        ports: &[RouterPort],
    ) -> Result<(), Error> {
        let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
        with_retries(&format!("logical router {name}"), || async {
            let snapshot = router::parse_router(
                name,
                &self
                    .client()
                    .transact(DB, router::read_router(name, &names))
                    .await?,
            )?;
            let ops = router::plan_ensure_router(name, external_ids, &snapshot, ports)?;
            if !ops.is_empty() {
                self.client().transact(DB, ops).await?;
            }
            Ok(())
        })
        .await
    }

    /// Leaves the router `name` with exactly one route to `want.ip_prefix`: `want`. Returns
    /// whether it wrote (false when the route already was as wanted).
    pub async fn set_static_route(&self, name: &str, want: &StaticRoute) -> Result<bool, Error> {
        let what = format!("route to {} on logical router {name}", want.ip_prefix);
        with_retries(&what, || async {
            let snapshot = self.read_routes(name).await?;
            let ops = router::plan_route(name, &snapshot, want)?;
            if ops.is_empty() {
                return Ok(false);
            }
            self.client().transact(DB, ops).await?;
            Ok(true)
        })
        .await
    }

    /// The static routes of the router `name` (empty when it does not exist).
    pub async fn list_static_routes(&self, name: &str) -> Result<Vec<StaticRoute>, Error> {
        let snapshot = self.read_routes(name).await?;
        Ok(snapshot
            .of_router()
            .into_iter()
            .map(|(_, route)| route.clone())
            .collect())
    }

    async fn read_routes(&self, name: &str) -> Result<router::RoutesSnapshot, Error> {
        let results = self
            .client()
            .transact(DB, router::read_routes(name))
            .await?;
        Ok(router::parse_routes(name, &results)?)
    }
}
