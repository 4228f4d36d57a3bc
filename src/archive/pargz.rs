//! A gzip writer that compresses on every core: the input is cut into blocks, each block is
//! compressed on a worker thread into a complete gzip member ([`super::member`]: page by page,
//! by what each page holds), and the members are written in order. A file of several members
//! is one valid gzip stream (RFC 1952 §2.2) that `gzip -d`, `tar xzf` and
//! `flate2::read::MultiGzDecoder` read as a whole. Memory stays bounded: at most two blocks per
//! worker are in flight, and the blocks and members are recycled through a [`Pool`].

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::member::{Encoder, PAGE};
use super::pool::Pool;

/// 1 MiB blocks: each starts without a dictionary, which costs well under 0.1 % in size.
pub const BLOCK: usize = 1 << 20;

/// A block, where its first page starts in it, and where its member goes.
type Job = (Vec<u8>, usize, SyncSender<io::Result<Vec<u8>>>);

pub struct ParGzWriter<W: Write> {
    inner: Option<W>,
    buf: Vec<u8>,
    /// Where the current block ends: [`BLOCK`] bytes, or up to a page boundary near it.
    limit: usize,
    /// Bytes taken so far.
    pos: u64,
    /// A stream offset where a page starts: pages are classified on this grid.
    grid: u64,
    pending: VecDeque<Receiver<io::Result<Vec<u8>>>>,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    max_pending: usize,
    wrote_any: bool,
    pool: Pool,
}

impl<W: Write> ParGzWriter<W> {
    pub fn new(inner: W, level: u32, threads: usize) -> Self {
        Self::with_pool(inner, level, threads, Pool::new())
    }

    /// [`ParGzWriter::new`], taking its blocks from `pool` and giving them back there once
    /// compressed (and the members once written).
    pub fn with_pool(inner: W, level: u32, threads: usize, pool: Pool) -> Self {
        let threads = threads.max(1);
        let (tx, rx) = mpsc::sync_channel::<Job>(threads);
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..threads)
            .map(|_| {
                let rx = Arc::clone(&rx);
                let pool = pool.clone();
                std::thread::spawn(move || {
                    let mut encoder = Encoder::new(level);
                    loop {
                        let job = rx.lock().map(|r| r.recv());
                        let Ok(Ok((block, phase, reply))) = job else { return };
                        let member = encoder.encode_into(&block, phase, pool.take());
                        pool.give(block);
                        let _ = reply.send(member);
                    }
                })
            })
            .collect();
        ParGzWriter {
            inner: Some(inner),
            buf: pool.take(),
            limit: BLOCK,
            pos: 0,
            grid: 0,
            pending: VecDeque::new(),
            jobs: Some(tx),
            workers,
            max_pending: threads * 2,
            wrote_any: false,
            pool,
        }
    }

    /// How many bytes were written into this writer so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Pages (a database file's) start at stream offset `at`: classify on their grid, and end
    /// the current block on it, so that every later block starts on a page.
    pub fn align_pages(&mut self, at: u64) {
        self.grid = at;
        let start = self.pos - self.buf.len() as u64;
        let past = ((start + BLOCK as u64).wrapping_sub(at) % PAGE as u64) as usize;
        let mut limit = BLOCK - past;
        if limit < self.buf.len() {
            limit += PAGE;
        }
        self.limit = limit;
    }

    fn submit(&mut self) -> io::Result<()> {
        if self.pending.len() >= self.max_pending {
            self.write_oldest()?;
        }
        let block = std::mem::replace(&mut self.buf, self.pool.take());
        let start = self.pos - block.len() as u64;
        let page = PAGE as u64;
        let phase = ((self.grid % page + page - start % page) % page) as usize;
        self.limit = BLOCK;
        let (reply, rx) = mpsc::sync_channel(1);
        self.jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("the writer was finished"))?
            .send((block, phase, reply))
            .map_err(|_| io::Error::other("a compression thread stopped"))?;
        self.pending.push_back(rx);
        self.wrote_any = true;
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let out = rx.recv().map_err(|_| io::Error::other("a compression thread stopped"))??;
            self.inner
                .as_mut()
                .ok_or_else(|| io::Error::other("the writer was finished"))?
                .write_all(&out)?;
            self.pool.give(out);
        }
        Ok(())
    }

    /// Compress what is left, write every member, and hand back the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.buf.is_empty() || !self.wrote_any {
            self.submit()?;
        }
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        let mut inner = self.inner.take().ok_or_else(|| io::Error::other("the writer was finished"))?;
        inner.flush()?;
        Ok(inner)
    }
}

impl<W: Write> Write for ParGzWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() >= self.limit {
            self.submit()?;
        }
        let n = (self.limit - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        self.pos += n as u64;
        if self.buf.len() >= self.limit {
            self.submit()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for ParGzWriter<W> {
    fn drop(&mut self) {
        self.jobs.take();
        self.pending.clear();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn round_trips_through_a_multi_member_decoder() {
        let mut data = Vec::new();
        for i in 0..(3 * BLOCK + 12345) {
            data.push((i * 7 % 251) as u8);
        }
        let mut w = ParGzWriter::new(Vec::new(), 6, 2);
        for chunk in data.chunks(10_000) {
            w.write_all(chunk).unwrap();
        }
        let gz = w.finish().unwrap();
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn random_and_text_runs_round_trip_and_text_shrinks() {
        let mut data = Vec::new();
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for i in 0..(2 * BLOCK + 777) {
            // Alternate 200 KiB of noise with 100 KiB of text.
            if (i / (100 * 1024)) % 3 == 2 {
                data.push(b"keyfount audit row "[i % 19]);
            } else {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                data.push((x >> 24) as u8);
            }
        }
        let mut w = ParGzWriter::new(Vec::new(), 6, 2);
        w.write_all(&data).unwrap();
        let gz = w.finish().unwrap();
        assert!(
            gz.len() < data.len() * 75 / 100,
            "text runs were not compressed: {} of {}",
            gz.len(),
            data.len()
        );
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        // The system's gzip reads it too.
        assert_eq!(system_gunzip(gz), data);
    }

    /// What the system's `gzip -dc` makes of `gz` (it must succeed).
    pub(crate) fn system_gunzip(gz: Vec<u8>) -> Vec<u8> {
        let mut child = std::process::Command::new("gzip")
            .args(["-dc"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&gz).unwrap());
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(out.status.success());
        out.stdout
    }

    #[test]
    fn empty_input_is_a_valid_gzip_stream() {
        let gz = ParGzWriter::new(Vec::new(), 6, 2).finish().unwrap();
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..]).read_to_end(&mut back).unwrap();
        assert!(back.is_empty());
    }
}
