use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wit::prism::core::objects;
use crate::{ObjectRef, Result};

/// A value the driver sets and every task of its job can read: the port of
/// Ray's closure capture of a driver's global refs.
///
/// ```no_run
/// static REFS: prism::Global<Vec<prism::ObjectRef<i64>>> = prism::Global::new("refs");
/// ```
///
/// The value (and any refs inside it) stays alive until the job ends.
pub struct Global<T> {
    name: &'static str,
    _value: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned + 'static> Global<T> {
    /// A global named `name` within the job.
    pub const fn new(name: &'static str) -> Self {
        Global { name, _value: PhantomData }
    }

    /// Sets the value for every task started after this call.
    pub fn set(&self, value: &T) -> Result<()> {
        let r = crate::put(value)?;
        objects::set_global(self.name, r.to_wit())?;
        Ok(())
    }

    /// The value set by the driver, or `NotFound`.
    pub fn get(&self) -> Result<T> {
        let r: ObjectRef<T> = ObjectRef::from_wit(objects::get_global(self.name)?);
        crate::get(&r)
    }
}
