//! Self-checkpointing, as HTCondor does it: a job that exits with its
//! declared checkpoint exit code has saved its declared files; the resource
//! node sends them to the job's home, which keeps them and restarts the job
//! (on the same or another node), whose new node fetches them back into the
//! working directory before the process starts.
//!
//! Files are read and written without following links and only if the
//! job's account owns them, since they live in a directory the job
//! controls.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tonic::Status;
use xtreem_proto::jobs as pb;

use super::peers;
use super::record::{LocalUnit, SavedFile};
use crate::daemon::NodeShared;

/// Bytes per chunk on the wire.
const CHUNK: usize = 256 * 1024;
/// Checkpoint bytes one unit may save.
pub const UNIT_CHECKPOINT_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// A declared checkpoint file name, refused if it could leave its directory.
fn relative(file: &str) -> Result<&Path, Status> {
    let path = Path::new(file);
    let ok = !file.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(path)
    } else {
        Err(Status::invalid_argument(format!(
            "checkpoint file {file:?} is not a plain relative path"
        )))
    }
}

/// Where the home keeps a unit's checkpoint file.
fn stored(shared: &NodeShared, job: &str, rank: u32, file: &str) -> Result<PathBuf, Status> {
    Ok(shared
        .data
        .root()
        .join("checkpoints")
        .join(job)
        .join(rank.to_string())
        .join(relative(file)?))
}

/// The home takes one chunk of a checkpoint file.
pub async fn put(shared: &Arc<NodeShared>, chunk: pb::CheckpointChunk) -> Result<(), Status> {
    let job = shared
        .jobs
        .get(&chunk.job)
        .filter(|j| !j.state.is_terminal())
        .ok_or_else(|| Status::not_found(format!("no active job {}", chunk.job)))?;
    let declared = job
        .checkpoint
        .as_ref()
        .is_some_and(|c| c.files.contains(&chunk.file));
    if !declared || chunk.attempt != job.attempt {
        return Err(Status::failed_precondition(format!(
            "{} is not a checkpoint file of job {} attempt {}",
            chunk.file, chunk.job, chunk.attempt
        )));
    }
    let end = chunk.offset.saturating_add(chunk.data.len() as u64);
    if end > UNIT_CHECKPOINT_BYTES_MAX {
        return Err(Status::resource_exhausted(format!(
            "checkpoint file {} exceeds {} bytes",
            chunk.file, UNIT_CHECKPOINT_BYTES_MAX
        )));
    }
    let path = stored(shared, &chunk.job, chunk.rank, &chunk.file)?;
    let (offset, data) = (chunk.offset, chunk.data.clone());
    let write_path = path.clone();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        if let Some(dir) = write_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(offset == 0)
            .mode(0o600)
            .open(&write_path)?;
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(&data)?;
        file.sync_data()
    })
    .await
    .map_err(|e| Status::internal(e.to_string()))?
    .map_err(|e| Status::internal(format!("cannot store the checkpoint: {e}")))?;
    if chunk.last {
        let saved = SavedFile {
            rank: chunk.rank,
            file: chunk.file.clone(),
            size: end,
        };
        shared
            .jobs
            .update_durably(&chunk.job, Vec::new(), |j| {
                j.saved
                    .retain(|s| !(s.rank == saved.rank && s.file == saved.file));
                j.saved.push(saved.clone());
                true
            })
            .await
            .map_err(Status::internal)?;
    }
    Ok(())
}

/// The home hands out one chunk of a checkpoint file.
pub fn get(
    shared: &NodeShared,
    request: &pb::GetCheckpointRequest,
) -> Result<pb::CheckpointChunk, Status> {
    let path = stored(shared, &request.job, request.rank, &request.file)?;
    let mut file = std::fs::File::open(&path)
        .map_err(|e| Status::not_found(format!("checkpoint {}: {e}", request.file)))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    file.seek(SeekFrom::Start(request.offset))
        .map_err(|e| Status::internal(e.to_string()))?;
    let mut data = Vec::new();
    file.take(CHUNK as u64)
        .read_to_end(&mut data)
        .map_err(|e| Status::internal(e.to_string()))?;
    let last = request.offset + data.len() as u64 >= size;
    Ok(pb::CheckpointChunk {
        job: request.job.clone(),
        rank: request.rank,
        file: request.file.clone(),
        offset: request.offset,
        data,
        last,
        attempt: 0,
    })
}

/// After a unit exited with its checkpoint code: sends its declared files
/// to the home. Returns what could not be saved, if anything.
pub async fn push(shared: &Arc<NodeShared>, unit: &LocalUnit) -> Vec<String> {
    let Some(decl) = unit.checkpoint.as_ref() else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    for file in &decl.files {
        if let Err(e) = push_file(shared, unit, file).await {
            problems.push(format!("{file}: {}", e.message()));
        }
    }
    problems
}

async fn push_file(shared: &Arc<NodeShared>, unit: &LocalUnit, file: &str) -> Result<(), Status> {
    let path = Path::new(&unit.workdir).join(relative(file)?);
    let mut handle = open_owned(&path, unit.uid)?;
    let mut offset = 0u64;
    loop {
        let mut data = vec![0u8; CHUNK];
        let n = handle
            .read(&mut data)
            .map_err(|e| Status::internal(format!("cannot read {}: {e}", path.display())))?;
        data.truncate(n);
        let last = n < CHUNK;
        let chunk = pb::CheckpointChunk {
            job: unit.job.clone(),
            rank: unit.rank,
            file: file.to_owned(),
            offset,
            data,
            last,
            attempt: unit.attempt,
        };
        send_chunk(shared, &unit.home, chunk).await?;
        offset += n as u64;
        if last {
            return Ok(());
        }
    }
}

async fn send_chunk(
    shared: &Arc<NodeShared>,
    home: &str,
    chunk: pb::CheckpointChunk,
) -> Result<(), Status> {
    if home == shared.config.name.as_str() {
        return put(shared, chunk).await;
    }
    let endpoint = peers::endpoint_of(shared, home)?;
    let mut client = shared.jobs.peers.exec(shared, &endpoint)?;
    let answer = tokio::time::timeout(Duration::from_secs(10), client.put_checkpoint(chunk))
        .await
        .map_err(|_| {
            Status::deadline_exceeded("the home did not take the checkpoint within 10 s")
        })?;
    if answer.is_err() {
        shared.jobs.peers.forget(&endpoint);
    }
    answer.map(|_| ())
}

/// A regular file owned by `uid`, opened without following a link.
fn open_owned(path: &Path, uid: u32) -> Result<std::fs::File, Status> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Status::not_found(format!("cannot open {}: {e}", path.display())))?;
    let meta = file
        .metadata()
        .map_err(|e| Status::internal(e.to_string()))?;
    if !meta.is_file() || meta.uid() != uid {
        return Err(Status::permission_denied(format!(
            "{} is not a regular file of the job's account",
            path.display()
        )));
    }
    Ok(file)
}

/// Before a restarted unit starts: fetches its checkpoint files from the
/// home into the working directory, owned by the job's account.
pub async fn restore(
    shared: &Arc<NodeShared>,
    job: &str,
    home: &str,
    files: &[pb::CheckpointFile],
    workdir: &Path,
    uid: u32,
    gid: u32,
) -> Result<(), String> {
    for f in files {
        let target = workdir.join(relative(&f.file).map_err(|e| e.message().to_owned())?);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let _ = nix::unistd::chown(
                dir,
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            );
        }
        // A planted link or file of another owner is replaced, not followed.
        if std::fs::symlink_metadata(&target).is_ok() {
            std::fs::remove_file(&target)
                .map_err(|e| format!("cannot replace {}: {e}", target.display()))?;
        }
        let mut out = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&target)
            .map_err(|e| format!("cannot create {}: {e}", target.display()))?;
        let mut offset = 0u64;
        loop {
            let request = pb::GetCheckpointRequest {
                job: job.to_owned(),
                rank: f.rank,
                file: f.file.clone(),
                offset,
            };
            let chunk = fetch_chunk(shared, home, request)
                .await
                .map_err(|e| e.message().to_owned())?;
            out.write_all(&chunk.data)
                .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
            offset += chunk.data.len() as u64;
            if chunk.last || chunk.data.is_empty() {
                break;
            }
        }
        nix::unistd::fchown(
            &out,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )
        .map_err(|e| format!("cannot give {} to the job: {e}", target.display()))?;
    }
    Ok(())
}

async fn fetch_chunk(
    shared: &Arc<NodeShared>,
    home: &str,
    request: pb::GetCheckpointRequest,
) -> Result<pb::CheckpointChunk, Status> {
    if home == shared.config.name.as_str() {
        return get(shared, &request);
    }
    let endpoint = peers::endpoint_of(shared, home)?;
    let mut client = shared.jobs.peers.exec(shared, &endpoint)?;
    let answer = tokio::time::timeout(Duration::from_secs(10), client.get_checkpoint(request))
        .await
        .map_err(|_| {
            Status::deadline_exceeded("the home did not send the checkpoint within 10 s")
        })?;
    if answer.is_err() {
        shared.jobs.peers.forget(&endpoint);
    }
    Ok(answer?.into_inner())
}

/// Removes what the home kept of a job's checkpoints once it has ended.
pub fn discard(shared: &NodeShared, job: &str) {
    let dir = shared.data.root().join("checkpoints").join(job);
    if dir.exists()
        && let Err(e) = std::fs::remove_dir_all(&dir)
    {
        tracing::warn!(job, error = %e, "cannot remove the job's checkpoints");
    }
}
