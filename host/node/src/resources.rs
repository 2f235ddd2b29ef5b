//! Named resources a node offers (`--resources gpu=2`), as Ray's custom
//! resources: a task holds what it asks for while it runs, an actor's
//! instance for as long as it lives, and others wait their turn. Amounts
//! are counted in ten-thousandths, as Ray counts them, so that `gpu=0.5`
//! lets two tasks share one.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use prism_store::error::Failure;

/// The units an amount is counted in.
const UNITS: f64 = 10_000.0;

/// What a node offers, and who holds it.
pub struct Resources {
    pools: BTreeMap<String, (f64, Arc<Semaphore>)>,
}

/// Resources held until dropped.
pub struct Held {
    _permits: Vec<OwnedSemaphorePermit>,
}

/// Why a node cannot give what is asked of it.
#[derive(Debug, Clone, thiserror::Error)]
#[allow(missing_docs, reason = "the messages say it")]
pub enum Unmet {
    #[error("asks for {name}={amount}: a resource needs a name and a positive amount (at least 0.0001)")]
    Invalid { name: String, amount: f64 },
    #[error("asks for resource `{0}`, which this node does not have (see --resources)")]
    Missing(String),
    #[error("asks for {name}={amount} but this node has {name}={has} (see --resources)")]
    Short { name: String, amount: f64, has: f64 },
}

impl Unmet {
    /// How `what` ("task `f`") fails for it.
    pub fn failure(&self, what: &str) -> Failure {
        match self {
            Unmet::Invalid { .. } => Failure::InvalidArgument(format!("{what} {self}")),
            Unmet::Missing(_) | Unmet::Short { .. } => Failure::LimitExceeded(format!("{what} {self}")),
        }
    }
}

impl Resources {
    /// `declared` amounts of each, all free.
    pub fn new(declared: &[(String, f64)]) -> Self {
        let pools = declared
            .iter()
            .map(|(name, amount)| (name.clone(), (*amount, Arc::new(Semaphore::new(units(*amount) as usize)))))
            .collect();
        Resources { pools }
    }

    /// Whether it could ever give `wants`.
    pub fn check(&self, wants: &[(String, f64)]) -> Result<(), Unmet> {
        for (name, amount) in wants {
            valid(name, *amount)?;
            match self.pools.get(name) {
                None => return Err(Unmet::Missing(name.clone())),
                Some((has, _)) if units(*amount) > units(*has) => {
                    return Err(Unmet::Short { name: name.clone(), amount: *amount, has: *has });
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Waits until `wants` is free and holds it; fails at once if it never
    /// could be.
    pub async fn acquire(&self, wants: &[(String, f64)]) -> Result<Held, Unmet> {
        self.check(wants)?;
        // One at a time in name order, so two callers never wait on each
        // other's half.
        let mut sorted: Vec<&(String, f64)> = wants.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut permits = Vec::with_capacity(sorted.len());
        for (name, amount) in sorted {
            let pool = self.pools[name].1.clone();
            let permit = pool.acquire_many_owned(units(*amount)).await.expect("pools are never closed");
            permits.push(permit);
        }
        Ok(Held { _permits: permits })
    }
}

/// Whether `amount` of `name` is something one can ask for.
pub fn valid(name: &str, amount: f64) -> Result<(), Unmet> {
    if name.is_empty() || !(amount > 0.0 && amount.is_finite() && units(amount) > 0) {
        return Err(Unmet::Invalid { name: name.to_string(), amount });
    }
    Ok(())
}

/// `amount` in ten-thousandths.
fn units(amount: f64) -> u32 {
    (amount * UNITS).round().clamp(0.0, u32::MAX as f64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpus(n: f64) -> Vec<(String, f64)> {
        vec![("gpu".into(), n)]
    }

    #[tokio::test]
    async fn a_resource_is_held_until_dropped_and_fractions_share_it() {
        let (resources, one) = (Resources::new(&gpus(1.0)), gpus(1.0));
        let half = resources.acquire(&gpus(0.5)).await.unwrap();
        let other_half = resources.acquire(&gpus(0.5)).await.unwrap();
        let whole = resources.acquire(&one);
        tokio::pin!(whole);
        assert!(futures::poll!(whole.as_mut()).is_pending());
        drop((half, other_half));
        assert!(whole.await.is_ok());
    }

    #[test]
    fn what_cannot_be_given_is_refused_with_its_reason() {
        let resources = Resources::new(&gpus(1.0));
        let err = resources.check(&gpus(2.0)).unwrap_err().failure("task `f`");
        assert!(
            matches!(&err, Failure::LimitExceeded(m) if m == "task `f` asks for gpu=2 but this node has gpu=1 (see --resources)"),
            "{err}"
        );
        let err = resources.check(&[("tpu".into(), 1.0)]).unwrap_err().to_string();
        assert_eq!(err, "asks for resource `tpu`, which this node does not have (see --resources)");
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 0.00001] {
            assert!(matches!(resources.check(&gpus(bad)), Err(Unmet::Invalid { .. })), "{bad}");
        }
    }
}
