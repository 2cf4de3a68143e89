//! Reading the log a bounded line at a time, so a damaged file (one huge
//! line, no newlines) cannot make a reader hold it all in memory.

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::os::unix::fs::FileExt;

use crate::record::MAX_RECORD_BYTES;

/// One line as found on disk.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A line that ended with a newline; the bytes exclude it.
    Complete(Vec<u8>),
    /// The file ended before a newline: an interrupted write.
    Torn(Vec<u8>),
    /// More than `MAX_RECORD_BYTES` before a newline; the rest is not read.
    TooLong,
}

/// The next line, or `None` at the end of the file.
pub(crate) fn next_line(reader: &mut impl BufRead) -> io::Result<Option<Line>> {
    let cap = MAX_RECORD_BYTES as u64 + 1;
    let mut buf = Vec::new();
    let n = reader.take(cap).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        return Ok(Some(Line::Complete(buf)));
    }
    if n as u64 == cap {
        return Ok(Some(Line::TooLong));
    }
    Ok(Some(Line::Torn(buf)))
}

/// Number of newlines in the first `upto` bytes of `file`. Only used to
/// name a line in an error, so it may be slow on a large log.
pub(crate) fn count_lines(file: &File, upto: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0u64;
    let mut count = 0u64;
    while offset < upto {
        let want = usize::try_from(upto - offset)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let got = file.read_at(&mut buf[..want], offset)?;
        if got == 0 {
            break;
        }
        count += buf[..got].iter().filter(|&&b| b == b'\n').count() as u64;
        offset += got as u64;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn all(bytes: &[u8]) -> Vec<Line> {
        let mut reader = Cursor::new(bytes.to_vec());
        let mut out = Vec::new();
        while let Some(line) = next_line(&mut reader).unwrap() {
            let stop = line == Line::TooLong;
            out.push(line);
            if stop {
                break;
            }
        }
        out
    }

    #[test]
    fn splits_complete_and_torn_lines() {
        assert_eq!(
            all(b"a\n\nbc"),
            vec![
                Line::Complete(b"a".to_vec()),
                Line::Complete(Vec::new()),
                Line::Torn(b"bc".to_vec()),
            ]
        );
        assert!(all(b"").is_empty());
    }

    #[test]
    fn a_line_at_the_limit_is_complete_and_one_past_is_too_long() {
        let mut exact = vec![b'x'; MAX_RECORD_BYTES];
        exact.push(b'\n');
        assert_eq!(
            all(&exact),
            vec![Line::Complete(vec![b'x'; MAX_RECORD_BYTES])]
        );
        let mut over = vec![b'x'; MAX_RECORD_BYTES + 1];
        over.push(b'\n');
        assert_eq!(all(&over), vec![Line::TooLong]);
    }

    #[test]
    fn counts_newlines_up_to_an_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"a\nb\nc\n").unwrap();
        let file = File::open(&path).unwrap();
        assert_eq!(count_lines(&file, 6).unwrap(), 3);
        assert_eq!(count_lines(&file, 3).unwrap(), 1);
    }
}
