//! Copy-on-write storage, so a copy of the engine (a what-if's simulated tenant) shares what it
//! does not change with the tenant it was copied from.
//!
//! [`ChunkedVec`] is a vector cut into chunks of [`CHUNK`] elements, each chunk behind an
//! [`Arc`]: copying the vector copies one pointer per chunk, and writing an element copies its
//! chunk first if another copy still shares it ([`Arc::make_mut`]). The engine's per-user
//! vectors hold their large elements behind an `Arc` too (`Option<Arc<User>>`), so that copying
//! a chunk only counts references: a change touching users spread over the whole directory then
//! copies pointers for every chunk and the records of the changed users, nothing else.
//!
//! The indexes and pools that change rarely (by principal name, by id, the attribute values,
//! ...) sit behind an `Arc` where they are declared and are written through
//! [`Arc::make_mut`].

use std::sync::Arc;

/// log2 of [`CHUNK`].
const CHUNK_BITS: u32 = 12;
/// Elements per chunk: 4,096, so copying a 1,000,000-element vector copies 245 pointers.
pub(crate) const CHUNK: usize = 1 << CHUNK_BITS;
const CHUNK_MASK: usize = CHUNK - 1;

/// A vector whose copies share their chunks until one of them writes (module docs).
#[derive(Debug)]
pub(crate) struct ChunkedVec<T> {
    chunks: Vec<Arc<Vec<T>>>,
    len: usize,
}

impl<T> Default for ChunkedVec<T> {
    fn default() -> Self {
        ChunkedVec {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

/// Copies the chunk pointers only; the elements stay shared.
impl<T> Clone for ChunkedVec<T> {
    fn clone(&self) -> Self {
        ChunkedVec {
            chunks: self.chunks.clone(),
            len: self.len,
        }
    }
}

impl<T> ChunkedVec<T> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn get(&self, index: usize) -> Option<&T> {
        self.chunks
            .get(index >> CHUNK_BITS)
            .and_then(|chunk| chunk.get(index & CHUNK_MASK))
    }

    /// Every element, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.chunks.iter().flat_map(|chunk| chunk.iter())
    }

    /// The chunks, in order, as slices (every chunk holds [`CHUNK`] elements but the last):
    /// for passes over every element that walk two vectors side by side.
    pub(crate) fn chunks(&self) -> impl Iterator<Item = &[T]> + '_ {
        self.chunks.iter().map(|chunk| chunk.as_slice())
    }

    /// Makes room for `additional` more elements without copying any chunk.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.chunks.reserve(additional.div_ceil(CHUNK));
    }

    /// Whether this vector and `other` still share the chunk holding `index` (for tests).
    #[cfg(test)]
    pub(crate) fn shares_chunk_with(&self, other: &ChunkedVec<T>, index: usize) -> bool {
        match (
            self.chunks.get(index >> CHUNK_BITS),
            other.chunks.get(index >> CHUNK_BITS),
        ) {
            (Some(mine), Some(theirs)) => Arc::ptr_eq(mine, theirs),
            _ => false,
        }
    }
}

impl<T: Clone> ChunkedVec<T> {
    pub(crate) fn push(&mut self, value: T) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < CHUNK => Arc::make_mut(chunk).push(value),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(value);
                self.chunks.push(Arc::new(chunk));
            }
        }
        self.len += 1;
    }
}

impl<T> std::ops::Index<usize> for ChunkedVec<T> {
    type Output = T;

    /// Out of bounds is a bug of the caller, as with a `Vec`.
    fn index(&self, index: usize) -> &T {
        &self.chunks[index >> CHUNK_BITS][index & CHUNK_MASK]
    }
}

impl<T: Clone> std::ops::IndexMut<usize> for ChunkedVec<T> {
    /// Copies the element's chunk first if another copy shares it.
    fn index_mut(&mut self, index: usize) -> &mut T {
        &mut Arc::make_mut(&mut self.chunks[index >> CHUNK_BITS])[index & CHUNK_MASK]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_shares_chunks_until_written_and_writes_leave_the_original_unchanged() {
        let mut original: ChunkedVec<Option<Arc<String>>> = ChunkedVec::default();
        let count = 3 * CHUNK + 17;
        for index in 0..count {
            original.push(Some(Arc::new(format!("user {index}"))));
        }
        assert_eq!(original.len(), count);
        let mut copy = original.clone();
        assert!((0..4).all(|chunk| copy.shares_chunk_with(&original, chunk * CHUNK)));

        // Write one element in the second chunk of the copy, and push to the copy.
        let written = CHUNK + 5;
        if let Some(value) = &mut copy[written] {
            Arc::make_mut(value).push_str(" (changed)");
        }
        copy[2 * CHUNK] = None;
        copy.push(Some(Arc::new("new".to_string())));

        assert_eq!(copy.len(), count + 1);
        assert_eq!(original.len(), count);
        assert_eq!(
            copy[written].as_deref().map(String::as_str),
            Some(&*format!("user {written} (changed)"))
        );
        assert_eq!(copy[2 * CHUNK], None);
        assert_eq!(copy[count].as_deref().map(String::as_str), Some("new"));
        // The original is unchanged, element by element.
        for index in 0..count {
            assert_eq!(
                original[index].as_deref(),
                Some(&format!("user {index}")),
                "element {index}"
            );
        }
        assert_eq!(original.get(count), None);
        // Only the written chunks were copied; the others are still shared.
        assert!(copy.shares_chunk_with(&original, 0));
        assert!(!copy.shares_chunk_with(&original, CHUNK));
        assert!(!copy.shares_chunk_with(&original, 2 * CHUNK));
        assert!(!copy.shares_chunk_with(&original, 3 * CHUNK));
        // The unchanged elements of a copied chunk are shared, not copied.
        if let (Some(Some(mine)), Some(Some(theirs))) = (copy.get(CHUNK + 6), original.get(CHUNK + 6)) {
            assert!(Arc::ptr_eq(mine, theirs));
        } else {
            panic!("element {} is missing", CHUNK + 6);
        }
        assert_eq!(copy.iter().count(), count + 1);
        assert!(original
            .iter()
            .zip(0..)
            .all(|(value, index)| value.as_deref() == Some(&format!("user {index}"))));
    }

    #[test]
    fn writing_the_original_leaves_a_copy_unchanged() {
        let mut original: ChunkedVec<u32> = ChunkedVec::default();
        for value in 0..(CHUNK as u32 + 3) {
            original.push(value);
        }
        let copy = original.clone();
        original[1] = 1_000;
        original.push(7);
        assert_eq!(copy[1], 1);
        assert_eq!(copy.len(), CHUNK + 3);
        assert_eq!(original[1], 1_000);
        assert_eq!(original.get(CHUNK + 3).copied(), Some(7));
        assert_eq!(original.get(CHUNK + 4), None);
    }
}
