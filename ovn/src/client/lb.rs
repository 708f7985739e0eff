//! Typed `Load_Balancer` operations: read, plan (pure, in [`crate::core::lb`]), write, retry.

use super::nb::with_retries;
use super::{Error, Northbound};
use crate::core::lb::{self, DB, LOAD_BALANCER, LoadBalancer};
use crate::core::nb;
use crate::core::ops::{Condition, Operation};

impl Northbound {
    /// Makes every load balancer exist as wanted and attached to the switch, in one read and
    /// one write transaction. Every row must carry the same `nauti.io/owner`; rows without it
    /// are never touched. Writes nothing when all already are as wanted.
    pub async fn ensure_load_balancers(
        &self,
        switch: &str,
        want: &[LoadBalancer],
    ) -> Result<(), Error> {
        if want.is_empty() {
            return Ok(());
        }
        // The plan refuses a batch whose rows lack this owner, so the first row's serves the read.
        let owner = want[0].owner().unwrap_or_default();
        let names: Vec<&str> = want.iter().map(|l| l.name.as_str()).collect();
        let what = format!("{} load balancer(s) of logical switch {switch}", want.len());
        with_retries(&what, || async {
            let snapshot = lb::parse_load_balancers(
                switch,
                &self
                    .client()
                    .transact(DB, lb::read_load_balancers(switch, owner, &names))
                    .await?,
            )?;
            let ops = lb::plan_ensure_load_balancers(switch, &snapshot, want)?;
            if !ops.is_empty() {
                self.client().transact(DB, ops).await?;
            }
            Ok(())
        })
        .await
    }

    /// Detaches the load balancers with these names and `owner` from every switch and deletes
    /// them, in one transaction; rows of another owner are left alone. Returns how many existed.
    pub async fn remove_load_balancers(&self, owner: &str, names: &[&str]) -> Result<usize, Error> {
        if names.is_empty() {
            return Ok(0);
        }
        let existing = lb::parse_load_balancer_uuids(
            &self
                .client()
                .transact(DB, lb::read_owned_load_balancer_uuids(owner, names))
                .await?,
        )?;
        let ops = lb::plan_remove_load_balancers(&existing);
        if ops.is_empty() {
            return Ok(0);
        }
        Ok(nb::count_deleted(&self.client().transact(DB, ops).await?))
    }

    /// Every load balancer attached to a switch, ours or not, sorted by name (empty when the
    /// switch does not exist).
    pub async fn list_switch_load_balancers(
        &self,
        switch: &str,
    ) -> Result<Vec<LoadBalancer>, Error> {
        let mut found = self
            .switch_children(
                switch,
                "load_balancer",
                LOAD_BALANCER,
                LoadBalancer::from_row,
            )
            .await?;
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }

    /// The names of every load balancer owned by `owner`, sorted, without duplicates.
    pub async fn list_owned_load_balancers(&self, owner: &str) -> Result<Vec<String>, Error> {
        let results = self
            .client()
            .transact(DB, lb::read_owned_load_balancers(owner))
            .await?;
        lb::parse_load_balancer_names(&results).map_err(Error::from)
    }

    /// Every load balancer row with this name, ours or not.
    pub async fn get_load_balancers_named(&self, name: &str) -> Result<Vec<LoadBalancer>, Error> {
        let results = self
            .client()
            .transact(
                DB,
                vec![Operation::select(
                    LOAD_BALANCER,
                    vec![Condition::eq("name", name)],
                    &[],
                )],
            )
            .await?;
        Ok(results
            .first()
            .and_then(|r| r.rows.as_ref())
            .map(|rows| rows.iter().map(LoadBalancer::from_row).collect())
            .unwrap_or_default())
    }
}
