//! Read-modify-write of stored records with optimistic concurrency: on a concurrent write the
//! record is reloaded and the change applied again, so it is made against the newest state or
//! refused by it. A leaf module: every service uses it, it uses no service.

use std::sync::Arc;

use trainyard_core::ports::{Clock, Store};
use trainyard_core::registry::RegisteredModel;
use trainyard_core::run::{RegisteredModelId, RunId, TrainingRun};
use trainyard_core::{Error, Result};

/// How often a read-modify-write is retried when another writer got there first.
pub(crate) const CONFLICT_RETRIES: usize = 8;

/// Loads, changes and saves a run; on a concurrent write, reloads and applies `f` again, so
/// the change is made against the newest state or refused by it.
pub(crate) async fn mutate_run<F>(
    store: &Arc<dyn Store>,
    clock: &Arc<dyn Clock>,
    id: RunId,
    mut f: F,
) -> Result<TrainingRun>
where
    F: FnMut(&mut TrainingRun) -> Result<()> + Send,
{
    for _ in 0..CONFLICT_RETRIES {
        let mut run = store.get_run(id).await?;
        f(&mut run)?;
        run.updated_at = clock.now();
        match store.update_run(&run).await {
            Err(Error::Conflict(_)) => continue,
            other => return other,
        }
    }
    Err(Error::Conflict(format!(
        "training run {id} kept changing under {CONFLICT_RETRIES} attempts; try again"
    )))
}

/// [`mutate_run`] for a registered model.
pub(crate) async fn mutate_model<F>(
    store: &Arc<dyn Store>,
    clock: &Arc<dyn Clock>,
    id: RegisteredModelId,
    mut f: F,
) -> Result<RegisteredModel>
where
    F: FnMut(&mut RegisteredModel) + Send,
{
    for _ in 0..CONFLICT_RETRIES {
        let mut model = store.get_registered_model(id).await?;
        f(&mut model);
        model.updated_at = clock.now();
        match store.update_registered_model(&model).await {
            Err(Error::Conflict(_)) => continue,
            other => return other,
        }
    }
    Err(Error::Conflict(format!(
        "registered model {id} kept changing under {CONFLICT_RETRIES} attempts; try again"
    )))
}
