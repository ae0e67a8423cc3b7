//! A copy of standard input kept on disk while the learning pass reads it, so that the main
//! pass reads the same bytes again and standard input gets the learning pass files get.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// An unnamed temporary file holding the bytes read from a stream so far (gone when closed).
pub struct Spool {
    file: File,
    written: Arc<AtomicU64>,
    /// The first write that failed: the copy is incomplete and cannot stand for the input.
    failure: Arc<Mutex<Option<String>>>,
}

impl Spool {
    /// Creates the file in the temporary directory (`TMPDIR`), unnamed from the start.
    pub fn create() -> io::Result<Self> {
        Ok(Spool { file: tempfile::tempfile()?, written: Arc::default(), failure: Arc::default() })
    }

    /// A reader of `input` that writes every byte it hands out to the spool as well.
    pub fn tee<R: Read>(&self, input: R) -> io::Result<Tee<R>> {
        Ok(Tee { input, copy: self.file.try_clone()?, written: self.written.clone(), failure: self.failure.clone() })
    }

    /// Bytes copied so far.
    pub fn len(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Why the copy is incomplete, if it is.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().map_or_else(|e| e.into_inner().clone(), |f| f.clone())
    }

    /// The bytes copied, from the first (once the tee is no longer read).
    pub fn replay(&self) -> io::Result<io::Take<File>> {
        let mut file = self.file.try_clone()?;
        file.seek(SeekFrom::Start(0))?;
        Ok(file.take(self.len()))
    }
}

/// Reads its input and copies what it reads into a [`Spool`]. A failed copy ends the read with
/// the error: bytes read but not kept would be missing from the second pass.
pub struct Tee<R> {
    input: R,
    copy: File,
    written: Arc<AtomicU64>,
    failure: Arc<Mutex<Option<String>>>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.input.read(buf)?;
        if let Err(e) = self.copy.write_all(&buf[..n]) {
            let reason = format!("cannot keep a copy of standard input in the temporary directory: {e}");
            if let Ok(mut failure) = self.failure.lock() {
                failure.get_or_insert(reason);
            }
            return Err(e);
        }
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_then_the_rest_of_the_input_is_the_whole_input() {
        let input: Vec<u8> = (0..10_000u32).flat_map(|k| k.to_le_bytes()).collect();
        let spool = Spool::create().unwrap();
        let mut source = io::Cursor::new(input.clone());
        let mut first = vec![0; 12_345];
        // Read a few bytes at a time: the copy is the sum of many writes.
        let mut tee = spool.tee(&mut source).unwrap();
        for chunk in first.chunks_mut(5) {
            tee.read_exact(chunk).unwrap();
        }
        drop(tee);
        assert_eq!(spool.len(), 12_345);
        assert_eq!(spool.failure(), None);
        let mut again = Vec::new();
        spool.replay().unwrap().chain(source).read_to_end(&mut again).unwrap();
        assert_eq!(again, input);
    }

    #[test]
    fn a_failed_copy_ends_the_read_and_is_reported() {
        let spool = Spool::create().unwrap();
        let mut tee = spool.tee(io::Cursor::new(vec![1u8; 100])).unwrap();
        // A copy that cannot be written: the spool's handle opened read-only.
        let path = std::env::temp_dir().join(format!("agentgraph-spool-test-{}", std::process::id()));
        std::fs::write(&path, b"").unwrap();
        tee.copy = File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let mut buf = [0u8; 10];
        assert!(tee.read(&mut buf).is_err());
        assert!(spool.failure().unwrap().contains("cannot keep a copy of standard input"));
        assert_eq!(spool.len(), 0);
    }
}
