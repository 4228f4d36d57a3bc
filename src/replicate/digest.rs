//! The order-independent database checksum of a point-in-time chain (docs/archive-format.md,
//! "Database checksum"): the sum, modulo 2^256, of `SHA-256(pgno ‖ page)` over the pages, kept
//! with one digest per page so that a commit updates it in O(changed pages).

use sha2::{Digest, Sha256};

pub type PageDigest = [u8; 32];

/// A 256-bit sum, four little-endian 64-bit limbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sum([u64; 4]);

fn limbs(d: &PageDigest) -> [u64; 4] {
    let mut l = [0u64; 4];
    for (i, c) in d.chunks_exact(8).enumerate() {
        l[i] = u64::from_le_bytes(c.try_into().expect("8 bytes"));
    }
    l
}

impl Sum {
    pub fn add(&mut self, d: &PageDigest) {
        let mut carry = false;
        for (a, b) in self.0.iter_mut().zip(limbs(d)) {
            let (s1, c1) = a.overflowing_add(b);
            let (s2, c2) = s1.overflowing_add(u64::from(carry));
            *a = s2;
            carry = c1 || c2;
        }
    }

    pub fn sub(&mut self, d: &PageDigest) {
        let mut borrow = false;
        for (a, b) in self.0.iter_mut().zip(limbs(d)) {
            let (s1, c1) = a.overflowing_sub(b);
            let (s2, c2) = s1.overflowing_sub(u64::from(borrow));
            *a = s2;
            borrow = c1 || c2;
        }
    }

    /// The little-endian bytes.
    pub fn bytes(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for (i, l) in self.0.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&l.to_le_bytes());
        }
        b
    }

    pub fn from_bytes(b: &[u8; 32]) -> Self {
        Sum(limbs(b))
    }

    /// 64 hex digits of the little-endian bytes.
    pub fn hex(&self) -> String {
        crate::fsutil::hex(&self.bytes())
    }
}

/// The digest of page `pgno` holding `page`.
pub fn page(pgno: u32, page: &[u8]) -> PageDigest {
    let mut h = Sha256::new();
    h.update(pgno.to_be_bytes());
    h.update(page);
    h.finalize().into()
}

/// The digest of every page of a database and their sum: the chain's idea of the database at
/// one point. Pages past the end of what was ever written are zeros (a file hole).
#[derive(Debug, Clone)]
pub struct Pages {
    pub page_size: u32,
    digests: Vec<PageDigest>,
    sum: Sum,
}

impl Pages {
    pub fn new(page_size: u32) -> Self {
        Pages { page_size, digests: Vec::new(), sum: Sum::default() }
    }

    pub fn len(&self) -> u32 {
        self.digests.len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    pub fn sum(&self) -> Sum {
        self.sum
    }

    pub fn get(&self, pgno: u32) -> Option<&PageDigest> {
        self.digests.get(pgno as usize - 1)
    }

    /// Page `pgno` now holds `page` (the database grows to it, with zero pages between).
    pub fn set(&mut self, pgno: u32, page: &[u8]) {
        self.set_digest(pgno, self::page(pgno, page));
    }

    pub fn set_digest(&mut self, pgno: u32, d: PageDigest) {
        if pgno > self.len() {
            self.resize(pgno);
        }
        let slot = &mut self.digests[pgno as usize - 1];
        self.sum.sub(slot);
        self.sum.add(&d);
        *slot = d;
    }

    /// The database is `n` pages long: pages past it are dropped, new ones are zeros.
    pub fn resize(&mut self, n: u32) {
        while self.len() > n {
            let d = self.digests.pop().expect("not empty");
            self.sum.sub(&d);
        }
        let zero = vec![0u8; self.page_size as usize];
        while self.len() < n {
            let d = page(self.len() + 1, &zero);
            self.sum.add(&d);
            self.digests.push(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sum_does_not_depend_on_order_and_updates_per_page() {
        let mut a = Pages::new(512);
        a.set(1, &[1; 512]);
        a.set(2, &[2; 512]);
        a.set(3, &[3; 512]);
        let mut b = Pages::new(512);
        b.set(3, &[3; 512]);
        b.set(1, &[9; 512]);
        b.set(2, &[2; 512]);
        assert_ne!(a.sum(), b.sum());
        b.set(1, &[1; 512]);
        assert_eq!(a.sum(), b.sum());
        // Truncation subtracts; growing again with zero pages is not the same as before.
        let before = a.sum();
        a.resize(2);
        assert_ne!(a.sum(), before);
        a.set(3, &[3; 512]);
        assert_eq!(a.sum(), before);
        let mut s = Sum::default();
        let d = page(7, &[7; 512]);
        s.add(&d);
        s.add(&d);
        s.sub(&d);
        s.sub(&d);
        assert_eq!(s, Sum::default());
        assert_eq!(s.hex().len(), 64);
    }
}
