//! Ended things are kept for `[jobs] retention` (7 days unless configured),
//! then forgotten, so a node's store and its `xps` do not grow with its
//! whole history: jobs this home ran, the records of units whose end their
//! home has (kept here to serve their output), and ended reservations.
//! Usage records stay: `xos acct` sums all of them. A unit's record is kept
//! from when its home got its end; a job that a job of this home still
//! waits on is kept until that one has ended. Like Slurm's `MinJobAge`, a
//! forgotten job is unknown (also to a job of another home that would
//! still wait on it); its output files stay where the job wrote them, and
//! its saved checkpoint files are removed.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use xtreem_util::time::unix_now_millis;

use xtreem_job::JobSpec;

use super::machine::JobCommand;
use crate::daemon::NodeShared;

/// Records forgotten per store transaction, so one sweep after a long time
/// does not hold the writer for long.
const PER_TRANSACTION: usize = 2_000;
const SWEEP_EVERY_MAX: Duration = Duration::from_secs(600);
const SWEEP_EVERY_MIN: Duration = Duration::from_secs(1);

/// How often to sweep: often enough that nothing is kept much longer than
/// `retention`, at most every 10 minutes.
fn sweep_interval(retention: Duration) -> Duration {
    (retention / 4).clamp(SWEEP_EVERY_MIN, SWEEP_EVERY_MAX)
}

/// Sweeps until `stop`.
pub async fn run(shared: Arc<NodeShared>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(sweep_interval(shared.config.jobs.retention));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                if let Err(e) = sweep(&shared).await {
                    tracing::warn!(error = %e, "cannot forget ended jobs; retrying at the next sweep");
                }
            }
        }
    }
}

/// Forgets what ended more than `retention` ago; returns how many records.
pub async fn sweep(shared: &Arc<NodeShared>) -> Result<usize, String> {
    let retention = u64::try_from(shared.config.jobs.retention.as_millis()).unwrap_or(u64::MAX);
    let before_unix_ms = unix_now_millis().saturating_sub(retention);
    let keep = depended_on(shared);
    let mut total = 0;
    loop {
        let forgotten = shared
            .jobs
            .writer
            .write(JobCommand::ForgetEnded {
                before_unix_ms,
                limit: PER_TRANSACTION,
                keep: keep.clone(),
            })
            .done()
            .await?;
        if let Some(side) = shared.jobs.resource.as_ref() {
            for id in forgotten.iter().filter_map(|f| f.strip_prefix("held:")) {
                side.unhold(id);
            }
        }
        let jobs: Vec<String> = forgotten
            .iter()
            .filter_map(|f| f.strip_prefix("job:"))
            .map(str::to_owned)
            .collect();
        if !jobs.is_empty() {
            // Checkpoint files of a job that ended without a unit's end
            // discarding them (cancelled, failed by the home).
            let shared = Arc::clone(shared);
            let _ = tokio::task::spawn_blocking(move || {
                for job in jobs {
                    super::checkpoint::discard(&shared, &job);
                }
            })
            .await;
        }
        total += forgotten.len();
        // Each kind stops at the limit: fewer than that of every kind means
        // nothing is left.
        if forgotten.len() < PER_TRANSACTION {
            break;
        }
    }
    if total > 0 {
        tracing::info!(
            forgotten = total,
            retention = %humantime::format_duration(shared.config.jobs.retention),
            "forgot ended jobs, units and reservations"
        );
    }
    Ok(total)
}

/// This home's jobs that its jobs not yet ended depend on. (A job of
/// another home that depends on one here is not known here: it finds its
/// dependency gone if it still waits after the retention.)
fn depended_on(shared: &NodeShared) -> Vec<String> {
    let me = shared.config.name.as_str();
    let mut ids: Vec<String> = shared
        .jobs
        .active_where(|_| true)
        .iter()
        .filter_map(|job| JobSpec::from_json(&job.spec).ok())
        .flat_map(|spec| spec.after_ok.into_iter().chain(spec.after_any))
        .filter(|dep| dep.home == me)
        .map(|dep| dep.to_string())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_come_at_a_quarter_of_the_retention_within_bounds() {
        assert_eq!(
            sweep_interval(Duration::from_secs(8)),
            Duration::from_secs(2)
        );
        assert_eq!(sweep_interval(Duration::from_secs(1)), SWEEP_EVERY_MIN);
        assert_eq!(
            sweep_interval(Duration::from_secs(7 * 24 * 3600)),
            SWEEP_EVERY_MAX
        );
    }
}
