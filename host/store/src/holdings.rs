//! [`Holdings`]: the references one holder keeps.

use std::sync::Arc;

use crate::{IdSet, ObjectId, ObjectStore};

/// References held by one holder (an instance, a pending task's
/// arguments): one count per distinct ref, all given back when dropped.
#[derive(Default)]
pub struct Holdings {
    store: Option<Arc<ObjectStore>>,
    ids: IdSet,
}

impl Holdings {
    /// Holdings on `store`.
    pub fn new(store: &Arc<ObjectStore>) -> Self {
        Holdings { store: Some(store.clone()), ids: IdSet::default() }
    }

    fn store(&self) -> &ObjectStore {
        self.store.as_ref().expect("holdings are bound to a store")
    }

    /// Holds `id` (takes a new reference unless already held).
    pub fn hold(&mut self, id: ObjectId) {
        if !self.ids.contains(&id) && self.store().retain(&id) {
            self.ids.insert(id);
        }
    }

    /// Takes over the reference `id` carries (from `put`, `pending`...).
    pub fn adopt(&mut self, id: ObjectId) {
        if !self.ids.insert(id) {
            self.store().release(&id);
        }
    }

    /// Gives back `id`, if held.
    pub fn release(&mut self, id: &ObjectId) {
        if self.ids.remove(id) {
            self.store().release(id);
        }
    }

    /// Moves everything `other` holds here.
    pub fn absorb(&mut self, mut other: Holdings) {
        for id in std::mem::take(&mut other.ids) {
            if self.store.is_none() {
                self.store.clone_from(&other.store);
            }
            self.adopt(id);
        }
    }

    /// Whether `id` is held.
    pub fn holds(&self, id: &ObjectId) -> bool {
        self.ids.contains(id)
    }

    /// Binds empty holdings to `store`.
    pub fn bind(&mut self, store: &Arc<ObjectStore>) {
        if self.store.is_none() {
            self.store = Some(store.clone());
        }
    }
}

impl Drop for Holdings {
    fn drop(&mut self) {
        if let Some(store) = &self.store {
            for id in self.ids.drain() {
                store.release(&id);
            }
        }
    }
}
