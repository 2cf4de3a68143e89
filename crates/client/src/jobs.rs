//! Calls to the jobs service: submit, list, status, signal, hold, release,
//! wait, logs and accounting, as a VO user or a site administrator.

use tonic::Request;
use xtreem_proto::jobs as pb;
use xtreem_proto::jobs::jobs_client::JobsClient as Raw;

use crate::{ClientError, Profile, Result};

/// Answers listing many jobs exceed the usual message bound.
const LIST_BYTES_MAX: usize = 64 * 1024 * 1024;

#[derive(Clone)]
pub struct JobsClient {
    endpoint: String,
    raw: Raw<tonic::transport::Channel>,
    bearer: Option<String>,
}

impl JobsClient {
    /// Connects with the administrator certificate when `as_admin` and the
    /// profile has one; otherwise with server-authenticated TLS and `bearer`.
    pub fn connect(
        profile: &Profile,
        endpoint: &str,
        as_admin: bool,
        bearer: Option<String>,
    ) -> Result<JobsClient> {
        let channel = crate::call::channel(profile, endpoint, as_admin)?;
        Ok(JobsClient {
            endpoint: endpoint.to_owned(),
            raw: Raw::new(channel).max_decoding_message_size(LIST_BYTES_MAX),
            bearer: if as_admin { None } else { bearer },
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn request<T>(&self, message: T) -> Result<Request<T>> {
        crate::call::request(message, self.bearer.as_deref())
    }

    fn err(&self, status: tonic::Status) -> ClientError {
        ClientError::from_status(&self.endpoint, status)
    }

    /// Submits a description (TOML, JSON or JSDL); the ids of the job or of
    /// each array element.
    pub async fn submit(
        &mut self,
        spec: &str,
        array: Option<&str>,
        hold: bool,
    ) -> Result<Vec<String>> {
        let request = self.request(pb::SubmitRequest {
            spec: spec.to_owned(),
            array: array.unwrap_or_default().to_owned(),
            hold,
            on_behalf: None,
        })?;
        Ok(self
            .raw
            .submit(request)
            .await
            .map_err(|s| self.err(s))?
            .into_inner()
            .ids)
    }

    pub async fn list(&mut self, filter: pb::ListRequest) -> Result<pb::ListResponse> {
        let request = self.request(filter)?;
        Ok(self
            .raw
            .list(request)
            .await
            .map_err(|s| self.err(s))?
            .into_inner())
    }

    pub async fn status(&mut self, id: &str) -> Result<pb::JobInfo> {
        let request = self.request(pb::JobRef {
            id: id.to_owned(),
            on_behalf: None,
        })?;
        Ok(self
            .raw
            .status(request)
            .await
            .map_err(|s| self.err(s))?
            .into_inner())
    }

    /// Sends `signal` (a name such as TERM or STOP, or a number); how many
    /// units got it.
    pub async fn signal(&mut self, id: &str, signal: &str) -> Result<u32> {
        let request = self.request(pb::SignalRequest {
            id: id.to_owned(),
            signal: signal.to_owned(),
            on_behalf: None,
        })?;
        Ok(self
            .raw
            .signal(request)
            .await
            .map_err(|s| self.err(s))?
            .into_inner()
            .units)
    }

    pub async fn hold(&mut self, id: &str) -> Result<pb::JobInfo> {
        let request = self.request(pb::JobRef {
            id: id.to_owned(),
            on_behalf: None,
        })?;
        Ok(self
            .raw
            .hold(request)
            .await
            .map_err(|s| self.err(s))?
            .into_inner())
    }

    pub async fn release(&mut self, id: &str) -> Result<pb::JobInfo> {
        let request = self.request(pb::JobRef {
            id: id.to_owned(),
            on_behalf: None,
        })?;
        Ok(self
            .raw
            .release(request)
            .await
            .map_err(|s| self.err(s))?
            .into_inner())
    }

    /// Asks a self-checkpointing job to checkpoint and restart.
    pub async fn checkpoint(&mut self, id: &str) -> Result<pb::JobInfo> {
        let request = self.request(pb::JobRef {
            id: id.to_owned(),
            on_behalf: None,
        })?;
        Ok(self
            .raw
            .checkpoint(request)
            .await
            .map_err(|s| self.err(s))?
            .into_inner())
    }

    /// Checkpoints the job and restarts it on a node matching `to`.
    pub async fn migrate(&mut self, id: &str, to: &str) -> Result<pb::JobInfo> {
        let request = self.request(pb::MigrateRequest {
            id: id.to_owned(),
            to: to.to_owned(),
            on_behalf: None,
        })?;
        Ok(self
            .raw
            .migrate(request)
            .await
            .map_err(|s| self.err(s))?
            .into_inner())
    }

    pub async fn reserve(&mut self, request: pb::ReserveRequest) -> Result<pb::ReservationInfo> {
        let request = self.request(request)?;
        Ok(self
            .raw
            .reserve(request)
            .await
            .map_err(|s| self.err(s))?
            .into_inner())
    }

    pub async fn reservations(&mut self) -> Result<Vec<pb::ReservationInfo>> {
        let request = self.request(pb::ReservationsRequest { on_behalf: None })?;
        Ok(self
            .raw
            .reservations(request)
            .await
            .map_err(|s| self.err(s))?
            .into_inner()
            .reservations)
    }

    pub async fn cancel_reservation(&mut self, id: &str) -> Result<pb::ReservationInfo> {
        let request = self.request(pb::ReservationRef {
            id: id.to_owned(),
            on_behalf: None,
        })?;
        Ok(self
            .raw
            .cancel_reservation(request)
            .await
            .map_err(|s| self.err(s))?
            .into_inner())
    }

    /// Waits until the job has ended (asking again every few seconds).
    pub async fn wait(&mut self, id: &str) -> Result<pb::JobInfo> {
        loop {
            let request = self.request(pb::WaitRequest {
                id: id.to_owned(),
                timeout_ms: 5_000,
                on_behalf: None,
            })?;
            let info = self
                .raw
                .wait(request)
                .await
                .map_err(|s| self.err(s))?
                .into_inner();
            if matches!(info.state.as_str(), "done" | "failed" | "cancelled") {
                return Ok(info);
            }
        }
    }

    /// Streams a unit's output (`JOB` or `JOB.UNIT`) into `out`; with
    /// `follow`, until the unit has ended.
    pub async fn logs(
        &mut self,
        id: &str,
        stderr: bool,
        follow: bool,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<()> {
        let request = self.request(pb::LogsRequest {
            id: id.to_owned(),
            stderr,
            follow,
            offset: 0,
            on_behalf: None,
        })?;
        let mut stream = self
            .raw
            .logs(request)
            .await
            .map_err(|s| self.err(s))?
            .into_inner();
        while let Some(chunk) = stream.message().await.map_err(|s| self.err(s))? {
            out.write_all(&chunk.data)
                .and_then(|()| out.flush())
                .map_err(|e| ClientError::Local(format!("cannot write the output: {e}")))?;
        }
        Ok(())
    }

    pub async fn acct(&mut self, request: pb::AcctRequest) -> Result<pb::AcctResponse> {
        let request = self.request(request)?;
        Ok(self
            .raw
            .acct(request)
            .await
            .map_err(|s| self.err(s))?
            .into_inner())
    }
}
