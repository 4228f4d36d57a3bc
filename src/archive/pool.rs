//! A small bounded pool of the 1 MiB buffers the archive pipeline hands between its threads
//! (reading, compressing, encrypting, hashing and writing, decrypting and decoding).
//!
//! Without it every block is a fresh allocation of over 128 KiB, which glibc maps and unmaps
//! on its own (and zeroes on first touch): 256 page faults per block, a fifth of the CPU time
//! of an encrypted backup. A buffer that comes back is kept for the next block instead; the
//! pool keeps at most [`KEEP`] of them, so what it holds is bounded whatever the archive's
//! size, and it is freed with the pipeline. No allocator setting is changed.

use std::sync::{Arc, Mutex};

use super::member::PAGE;
use super::pargz::BLOCK;

/// A buffer's capacity: a block, a page more (a block is ended on a page boundary near
/// [`BLOCK`]), and room for what an incompressible block grows by in a gzip member.
pub const CAPACITY: usize = BLOCK + PAGE + BLOCK / 32;

/// How many free buffers the pool keeps; more than the pipeline has in flight at once.
pub const KEEP: usize = 24;

/// A pool shared by the threads of one archive pipeline (clone it for each).
#[derive(Clone, Default)]
pub struct Pool {
    free: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Pool {
    pub fn new() -> Pool {
        Pool::default()
    }

    /// An empty buffer with room for [`CAPACITY`] bytes: a kept one, or a new one.
    pub fn take(&self) -> Vec<u8> {
        let kept = self.free.lock().ok().and_then(|mut f| f.pop());
        kept.unwrap_or_else(|| Vec::with_capacity(CAPACITY))
    }

    /// A buffer of exactly `len` bytes (zeroed where it was not written before), to read into.
    pub fn take_len(&self, len: usize) -> Vec<u8> {
        let mut v = self.take();
        v.resize(len, 0);
        v
    }

    /// Give a buffer back: kept when the pool has room and it is of the usual size (a buffer
    /// that grew far past it is freed, so one odd block cannot pin more memory).
    pub fn give(&self, mut v: Vec<u8>) {
        if v.capacity() < CAPACITY || v.capacity() > 2 * CAPACITY {
            return;
        }
        v.clear();
        if let Ok(mut free) = self.free.lock() {
            if free.len() < KEEP {
                free.push(v);
            }
        }
    }

    /// How many free buffers the pool holds now.
    #[cfg(test)]
    pub fn kept(&self) -> usize {
        self.free.lock().map(|f| f.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_and_the_pool_stays_bounded() {
        let pool = Pool::new();
        let a = pool.take();
        assert!(a.is_empty() && a.capacity() >= CAPACITY);
        let ptr = a.as_ptr();
        pool.give(a);
        assert_eq!(pool.kept(), 1);
        // The same memory again, empty.
        let b = pool.take();
        assert_eq!(b.as_ptr(), ptr);
        assert!(b.is_empty());
        // Never more than KEEP free buffers, from any number of threads.
        let mut many: Vec<Vec<u8>> = (0..KEEP * 2).map(|_| pool.take()).collect();
        std::thread::scope(|s| {
            while !many.is_empty() {
                let group: Vec<Vec<u8>> = many.drain(..KEEP / 2).collect();
                let pool = pool.clone();
                s.spawn(move || group.into_iter().for_each(|v| pool.give(v)));
            }
        });
        assert_eq!(pool.kept(), KEEP);
        // Small and oversized buffers are not kept.
        let pool = Pool::new();
        pool.give(Vec::with_capacity(64 << 10));
        pool.give(Vec::with_capacity(3 * CAPACITY));
        assert_eq!(pool.kept(), 0);
        // take_len reads into a buffer of that length.
        let mut v = pool.take();
        v.extend_from_slice(&[7; 100]);
        pool.give(v);
        let v = pool.take_len(1 << 20);
        assert_eq!(v.len(), 1 << 20);
        assert!(v.iter().all(|&b| b == 0));
    }
}
