//! `impl Workspace for DockerWorkspace`: commands and git through the agent-server, files
//! through the engine's archive API, pause/resume as `docker pause`/`unpause`, and removal (the
//! container, then its network) on `close` or `Drop`.

use std::path::Path;
use std::sync::atomic::Ordering;

use async_trait::async_trait;

use super::{archive, blocking, cleanup, engine, join_remote, DockerWorkspace};
use crate::workspace::{
    CommandResult, ExecRequest, FileOperationResult, GitChange, GitDiff, Workspace, WorkspaceError,
    WorkspaceKind,
};

#[async_trait]
impl Workspace for DockerWorkspace {
    fn kind(&self) -> WorkspaceKind {
        WorkspaceKind::Docker
    }

    fn working_dir(&self) -> &str {
        self.remote.working_dir()
    }

    async fn execute(&self, request: ExecRequest) -> Result<CommandResult, WorkspaceError> {
        self.remote.execute(request).await
    }

    async fn upload(
        &self,
        source: &Path,
        destination: &str,
    ) -> Result<FileOperationResult, WorkspaceError> {
        let dest = join_remote(self.working_dir(), destination);
        let (local, at, owner) = (source.to_path_buf(), dest.clone(), self.owner);
        let outcome = match blocking(move || archive::path_archive(&local, &at, owner)).await {
            Ok((tar, size)) => self
                .put_archive(tar)
                .await
                .map(|()| size)
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("cannot read {}: {e}", source.display())),
        };
        Ok(op_result(&source.to_string_lossy(), &dest, outcome))
    }

    async fn download(
        &self,
        source: &str,
        destination: &Path,
    ) -> Result<FileOperationResult, WorkspaceError> {
        let src = join_remote(self.working_dir(), source);
        let outcome = match self.get_archive(&src).await {
            Ok(tar) => {
                let dest = destination.to_path_buf();
                blocking(move || archive::unpack_at(&tar, &dest))
                    .await
                    .map_err(|e| format!("cannot write {}: {e}", destination.display()))
            }
            Err(e) => Err(e.to_string()),
        };
        Ok(op_result(&src, &destination.to_string_lossy(), outcome))
    }

    async fn git_changes(&self, path: &str) -> Result<Vec<GitChange>, WorkspaceError> {
        self.remote.git_changes(path).await
    }

    async fn git_diff(&self, path: &str) -> Result<GitDiff, WorkspaceError> {
        self.remote.git_diff(path).await
    }

    async fn pause(&self) -> Result<(), WorkspaceError> {
        self.docker
            .pause_container(&self.container_id)
            .await
            .map_err(engine::error("pause the container"))
    }

    async fn resume(&self) -> Result<(), WorkspaceError> {
        self.docker
            .unpause_container(&self.container_id)
            .await
            .map_err(engine::error("unpause the container"))
    }

    async fn close(&self) -> Result<(), WorkspaceError> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        if self.keeps_container() {
            self.announce_kept();
            return Ok(());
        }
        for id in self.containers() {
            cleanup::unregister(&id);
            cleanup::force_remove(&self.docker, &id)
                .await
                .map_err(engine::error("remove the container"))?;
        }
        let Some(network) = &self.network_id else {
            return Ok(());
        };
        cleanup::unregister_network(network);
        cleanup::remove_network(&self.docker, network)
            .await
            .map_err(engine::error("remove the sandbox's network"))
    }

    async fn stopped(&self) -> Option<WorkspaceError> {
        let how = engine::how_it_stopped(&self.docker, &self.container_id).await?;
        Some(self.died(&format!("{how} while the run went on")).await)
    }
}

impl Drop for DockerWorkspace {
    fn drop(&mut self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        if self.keeps_container() {
            return self.announce_kept();
        }
        let containers = self.containers();
        containers.iter().for_each(|c| cleanup::unregister(c));
        let networks: Vec<String> = self.network_id.iter().cloned().collect();
        networks.iter().for_each(|n| cleanup::unregister_network(n));
        cleanup::remove_blocking(containers, networks);
    }
}

fn op_result(source: &str, dest: &str, outcome: Result<u64, String>) -> FileOperationResult {
    let (success, file_size, error) = match outcome {
        Ok(size) => (true, Some(size), None),
        Err(e) => (false, None, Some(e)),
    };
    FileOperationResult {
        success,
        source_path: source.to_string(),
        destination_path: dest.to_string(),
        file_size,
        error,
    }
}
