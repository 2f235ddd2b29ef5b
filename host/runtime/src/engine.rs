//! The wasmtime engine every component of a node runs in.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use prism_exec::config::{self, EPOCH_TICK, MAX_MEMORY_LIMIT};

/// Core instances and memories a component may have. A Rust component has a
/// handful of core instances and one memory; Python and JavaScript ones more.
const CORE_INSTANCES_PER_COMPONENT: u32 = 50;
const MEMORIES_PER_COMPONENT: u32 = 4;

/// Builds the engine: component model, async (a guest blocked in `get`
/// suspends on its fiber), epoch interruption (deadlines and fair yielding),
/// and the pooling allocator (instantiation in microseconds), with its pool
/// of instances alive at once.
///
/// The pool reserves address space up front: two 4 GiB memories per
/// instance. Where the process may not reserve that much (`ulimit -v`, a
/// strict overcommit), a pool half as large is tried, and so on, and the
/// one that fits is said in one line: more instances then queue for a slot.
///
/// The epoch also advances between ticks when the node interrupts its
/// calls; the returned counter counts the ticks alone, which measure cpu.
pub fn build(config: &config::Config) -> anyhow::Result<(Engine, u32, Arc<AtomicU64>)> {
    let mut instances = config.max_instances.max(1);
    let engine = loop {
        match Engine::new(&wasm_config(instances)) {
            Ok(engine) => break engine,
            Err(err) if instances > 1 => {
                tracing::debug!(instances, error = %err, "cannot reserve the instance pool");
                instances /= 2;
            }
            Err(err) => {
                return Err(anyhow::Error::from(err)
                    .context("cannot reserve address space for even one instance (see `ulimit -v`)"));
            }
        }
    };
    if instances < config.max_instances {
        tracing::warn!(
            "this process may not reserve address space for {} instances at once (see `ulimit -v`); \
             using a pool of {instances}",
            config.max_instances
        );
    }
    let ticks = Arc::new(AtomicU64::new(0));
    start_epoch_ticker(&engine, ticks.clone());
    Ok((engine, instances, ticks))
}

/// The engine's configuration, with a pool of `instances`.
fn wasm_config(instances: u32) -> Config {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(8))
        .total_memories(instances.saturating_mul(2))
        .total_tables(instances.saturating_mul(8))
        .total_stacks(instances)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .max_tables_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_memory_size(MAX_MEMORY_LIMIT as usize);

    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    wasm
}

/// Advances the epoch, and `ticks`, every [`EPOCH_TICK`] until the engine
/// is dropped.
fn start_epoch_ticker(engine: &Engine, ticks: Arc<AtomicU64>) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("prism-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                ticks.fetch_add(1, Ordering::Relaxed);
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("cannot start the epoch thread");
}

/// Names the engine's code format: compiled artifacts are only reused by an
/// engine with the same fingerprint (same wasmtime, same settings).
pub fn fingerprint(engine: &Engine) -> String {
    let mut hasher = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}
