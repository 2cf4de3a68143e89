//! The launcher's end of a supervisor's report pipe: JSON lines (the
//! start, then the end; or a failure to start), read from a non-blocking
//! descriptor either by blocking in `poll` ([`ReportPipe::line_blocking`])
//! or on the tokio runtime ([`ReportPipe::line`]).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;

/// What one look at the pipe found.
enum Look {
    Line(Vec<u8>),
    /// The pipe is closed and no whole line is left.
    End,
    /// Nothing more to read now.
    Empty,
}

/// The read end (non-blocking) and what was read from it but not yet
/// returned as a line.
#[derive(Debug)]
pub(crate) struct ReportPipe {
    plain: Option<OwnedFd>,
    /// The descriptor once it had to be waited for on the runtime: a short
    /// unit's lines are usually there already, so most pipes never are.
    watched: Option<AsyncFd<OwnedFd>>,
    read: Vec<u8>,
}

impl ReportPipe {
    pub(crate) fn new(fd: OwnedFd) -> ReportPipe {
        ReportPipe {
            plain: Some(fd),
            watched: None,
            read: Vec::new(),
        }
    }

    fn raw(&self) -> Option<RawFd> {
        match (&self.watched, &self.plain) {
            (Some(afd), _) => Some(afd.get_ref().as_raw_fd()),
            (None, Some(fd)) => Some(fd.as_raw_fd()),
            (None, None) => None,
        }
    }

    /// Reads what the pipe holds now; a whole line if there is one.
    fn look(&mut self) -> io::Result<Look> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = self.read.iter().position(|b| *b == b'\n') {
                let rest = self.read.split_off(end + 1);
                let mut line = std::mem::replace(&mut self.read, rest);
                line.truncate(end);
                return Ok(Look::Line(line));
            }
            let fd = self
                .raw()
                .ok_or_else(|| io::Error::other("report pipe lost"))?;
            // SAFETY: read(2) into a buffer we own, on a descriptor we own.
            let n = unsafe { libc::read(fd, chunk.as_mut_ptr().cast(), chunk.len()) };
            match usize::try_from(n) {
                Ok(0) => return Ok(Look::End),
                Ok(n) => self.read.extend_from_slice(&chunk[..n.min(chunk.len())]),
                Err(_) => {
                    let e = io::Error::last_os_error();
                    match e.kind() {
                        io::ErrorKind::Interrupted => {}
                        io::ErrorKind::WouldBlock => return Ok(Look::Empty),
                        _ => return Err(e),
                    }
                }
            }
        }
    }

    /// The next line, blocking in `poll` up to `timeout`: `None` if the
    /// pipe closed first; `TimedOut` if nothing came.
    pub(crate) fn line_blocking(&mut self, timeout: Duration) -> io::Result<Option<Vec<u8>>> {
        let until = Instant::now() + timeout;
        loop {
            match self.look()? {
                Look::Line(line) => return Ok(Some(line)),
                Look::End => return Ok(None),
                Look::Empty => {}
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            let mut pfd = libc::pollfd {
                fd: self.raw().unwrap_or(-1),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = libc::c_int::try_from(left.as_millis()).unwrap_or(libc::c_int::MAX);
            // SAFETY: poll on one pollfd we own.
            if unsafe { libc::poll(&mut pfd, 1, ms.max(1)) } < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }

    /// The next line, awaited on the runtime up to `timeout` (`None`: no
    /// limit): `None` if the pipe closed first; `TimedOut` if nothing came.
    pub(crate) async fn line(&mut self, timeout: Option<Duration>) -> io::Result<Option<Vec<u8>>> {
        let until = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            match self.look()? {
                Look::Line(line) => return Ok(Some(line)),
                Look::End => return Ok(None),
                Look::Empty => {}
            }
            let afd = self.watched()?;
            let ready = match until {
                Some(until) => tokio::time::timeout_at(until, afd.readable())
                    .await
                    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?,
                None => afd.readable().await,
            };
            ready?.clear_ready();
        }
    }

    /// The descriptor registered with the runtime (once).
    fn watched(&mut self) -> io::Result<&AsyncFd<OwnedFd>> {
        if self.watched.is_none() {
            let fd = self
                .plain
                .take()
                .ok_or_else(|| io::Error::other("report pipe lost"))?;
            // SAFETY: the descriptor is ours and stays open (owned by the
            // AsyncFd) while it is registered.
            match unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) } {
                Ok(afd) => self.watched = Some(afd),
                Err(err) => {
                    let (fd, e) = err.into_parts();
                    self.plain = Some(fd);
                    return Err(e);
                }
            }
        }
        self.watched
            .as_ref()
            .ok_or_else(|| io::Error::other("report pipe lost"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn pipe() -> (ReportPipe, std::fs::File) {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK).unwrap();
        (ReportPipe::new(r), std::fs::File::from(w))
    }

    #[test]
    fn lines_come_whole_and_the_end_after_them() {
        let (mut p, mut w) = pipe();
        w.write_all(b"{\"a\":1}\n{\"b\"").unwrap();
        assert_eq!(
            p.line_blocking(Duration::from_secs(1)).unwrap().as_deref(),
            Some(&b"{\"a\":1}"[..])
        );
        // Half a line is not a line: nothing more within the timeout.
        let e = p.line_blocking(Duration::from_millis(20)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        w.write_all(b":2}\n").unwrap();
        drop(w);
        assert_eq!(
            p.line_blocking(Duration::from_secs(1)).unwrap().as_deref(),
            Some(&b"{\"b\":2}"[..])
        );
        assert_eq!(p.line_blocking(Duration::from_secs(1)).unwrap(), None);
    }

    #[test]
    fn the_runtime_waits_for_a_line_written_later() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (mut p, mut w) = pipe();
            let writer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                w.write_all(b"late\n").unwrap();
            });
            let line = p.line(Some(Duration::from_secs(5))).await.unwrap();
            assert_eq!(line.as_deref(), Some(&b"late"[..]));
            writer.join().unwrap();
            // The writer is gone: the end.
            assert_eq!(p.line(None).await.unwrap(), None);
            let (mut quiet, _w) = pipe();
            let e = quiet
                .line(Some(Duration::from_millis(20)))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        });
    }
}
