//! prism's object store: immutable objects named by 32-byte ids.
//!
//! Two tiers. The memory tier holds every object this process made or read
//! and the state of every pending task result; `get` and `wait` are served
//! from it. Small objects live there in full; a large one is written once,
//! at `put`, to an immutable file named by its hash ([`Object::Blob`]), which
//! guests map instead of copying. The disk tier makes objects survive
//! restarts: a background writer fsyncs blob files and group-commits the
//! index and small objects to redb, so `put` never waits for an fsync. Task
//! results reach it only in a store opened with [`Results::Durable`].
//! [`ObjectStore::flush`] waits until everything written before it is durable.
//!
//! The parts:
//! - [`ObjectStore`] (`store.rs`): the memory tier, reference counts, capacity;
//! - `disk.rs`: the redb index and the group-commit writer;
//! - [`IndexRecord`] (`index.rs`): what the index keeps for each object;
//! - [`Object`] (`object.rs`): a value in memory or in a blob file;
//! - [`Holdings`]: the references one holder keeps;
//! - [`ObjectId`] (`id.rs`) and the maps keyed by it;
//! - [`nested_refs`] (`nested.rs`): the refs a MessagePack value holds;
//! - [`error`]: why an object has no value ([`Failure`]);
//! - [`fsutil`]: crash-safe file writes;
//! - [`RedbFile`] (`redb_file.rs`): a redb database reopened after a failed write.

mod disk;
pub mod error;
pub mod fsutil;
mod holdings;
mod id;
mod index;
mod nested;
mod object;
mod redb_file;
mod store;

pub use self::disk::DiskError;
pub use self::error::{Failure, Link};
pub use self::holdings::Holdings;
pub use self::id::{IdHasher, IdMap, IdSet, ObjectId};
pub use self::index::{IndexBody, IndexRecord};
pub use self::nested::{REF_EXT, checked_refs, nested_refs};
pub use self::object::{Blob, ByteString, Object, bin_header};
pub use self::redb_file::{Closed, RedbFile, redb_failure};
pub use self::store::{Capacity, Demand, GetError, Gone, ObjectStore, Results, Unread, Whereabouts, content_hash};

/// Objects up to this size live inside redb; larger ones are files of their
/// own, which guests map instead of copying.
pub const INLINE_OBJECT_MAX: usize = 64 << 10;

/// The largest object a guest can `put` (wasm32 cannot address more).
pub const MAX_OBJECT_SIZE: usize = (4 << 30) - 1;
