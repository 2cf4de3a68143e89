//! The harness every multi-node test uses, and the engine behind `xos demo`
//! and `xos bench`: it starts real `xosd` processes on loopback addresses
//! (127.A.B.x, a subnet per grid) with temporary data dirs, waits until they are healthy, and
//! can kill -9, restart, pause (SIGSTOP) and resume any of them.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use xtreem_testkit::{Grid, NodeSpec};
//! let mut grid = Grid::new(xtreem_testkit::xosd_next_to_current_exe()?)?;
//! grid.start_site("lab", 3).await?;          // 1 authority + 2 enrolled members
//! let nodes = grid.admin_client(1)?.list_nodes().await?;
//! assert_eq!(nodes.nodes.len(), 3);
//! grid.kill9(0)?;
//! grid.restart(0).await?;
//! # Ok(()) }
//! ```

mod grid;
mod http;
mod node;

pub use grid::Grid;
pub use http::http_get;
pub use node::{NodeProc, NodeSpec};

use std::path::PathBuf;

/// `xosd` beside the running executable (target/debug or target/release),
/// or `$XOSD_BIN`.
pub fn xosd_next_to_current_exe() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("XOSD_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    // Test binaries live in target/<profile>/deps.
    if dir.ends_with("deps") {
        dir.pop();
    }
    let candidate = dir.join("xosd");
    if candidate.exists() {
        Ok(candidate)
    } else {
        anyhow::bail!(
            "cannot find xosd next to {}: build the workspace first (`cargo build --release`) or set XOSD_BIN",
            exe.display()
        )
    }
}
