//! Streaming generators: a task that yields values one at a time, each its
//! own object, read by the caller as they are produced.

use std::any::Any;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;

use crate::task::{Arg, CallError, Options};
use crate::wit::prism::core::tasks;
use crate::{Bytes, ObjectRef, Result};

/// The caller's end of a generator task: an iterator over the refs of its
/// items, in yield order, each available as soon as it was yielded.
///
/// ```no_run
/// #[prism::remote]
/// fn numbers(n: u32) -> impl Iterator<Item = u32> { 0..n }
///
/// # fn main() -> prism::Result<()> {
/// for r in numbers::remote(3) {
///     println!("{}", prism::get(&r)?);
/// }
/// # Ok(()) }
/// ```
///
/// If the generator fails, the item after its last yield is a ref whose
/// `get` returns the failure, and the iteration ends there.
pub struct Generator<T> {
    id: (u64, u64, u64, u64),
    _item: PhantomData<fn() -> T>,
}

impl<T> Generator<T> {
    pub(crate) fn from_wit(id: (u64, u64, u64, u64)) -> Self {
        Generator { id, _item: PhantomData }
    }

    /// Cancels the generator (Ray's `ray.cancel`): the items it yielded
    /// stay readable, then the iteration ends (`next_timeout` reports
    /// [`crate::Error::Cancelled`]).
    pub fn cancel(&self) -> Result<()> {
        Ok(tasks::cancel(self.id, true)?)
    }

    /// The next item's ref, `None` at the end; fails with
    /// [`crate::Error::Timeout`] if none came within `timeout`.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<ObjectRef<T>>> {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        Ok(tasks::next_item(self.id, Some(ms))?.map(ObjectRef::from_wit))
    }
}

impl<T> Iterator for Generator<T> {
    type Item = ObjectRef<T>;

    fn next(&mut self) -> Option<ObjectRef<T>> {
        // Without a timeout, only a cancelled generator fails: it has ended.
        tasks::next_item(self.id, None).ok().flatten().map(ObjectRef::from_wit)
    }
}

/// Dropping the generator releases the items not taken yet.
impl<T> Drop for Generator<T> {
    fn drop(&mut self) {
        tasks::close_generator(self.id);
    }
}

/// Starts the generator `function` with `args`.
pub fn remote_generator<T>(function: &str, args: Vec<Arg>, options: &Options) -> Generator<T> {
    let args: Vec<_> = args.into_iter().map(Arg::into_wit).collect();
    Generator::from_wit(tasks::remote_generator(function, &args, &options.to_wit(None)))
}

/// Stores `value` and appends it to the running generator's stream. Byte
/// strings are stored straight from this guest's memory (`put_bytes`).
pub fn yield_item<T: Serialize + 'static>(function: &str, value: &T) -> Result<(), CallError> {
    let stored = match (value as &dyn Any).downcast_ref::<Bytes>() {
        Some(bytes) => crate::put_bytes(bytes).map(|r| r.to_wit()),
        None => crate::put(value).map(|r| r.to_wit()),
    };
    let yielded = stored.and_then(|item| Ok(tasks::yield_item(item)?));
    yielded.map_err(|e| CallError::Returned(format!("`{function}` cannot yield: {e}")))
}
