//! `remote_sandbox_workspace!`: the `Workspace` impl shared by the sandboxes that are an
//! agent-server reached over HTTP and nothing else (Cloud, Runtime API, Apptainer). Commands,
//! files and git go to the inner `RemoteWorkspace` (field `remote`); pause, resume and close
//! go to the type's own `pause_sandbox`, `resume_sandbox` and `close_sandbox`; `stopped` to
//! the method named after `stopped:`, when one is.

/// Implements `Workspace` for `$ty` (with a `remote: RemoteWorkspace` field) as `$kind`.
macro_rules! remote_sandbox_workspace {
    ($ty:ty, $kind:expr $(, stopped: $stopped:ident)?) => {
        #[async_trait::async_trait]
        impl $crate::workspace::Workspace for $ty {
            fn kind(&self) -> $crate::workspace::WorkspaceKind {
                $kind
            }

            fn working_dir(&self) -> &str {
                self.remote.working_dir()
            }

            async fn execute(
                &self,
                request: $crate::workspace::ExecRequest,
            ) -> Result<$crate::workspace::CommandResult, $crate::workspace::WorkspaceError> {
                self.remote.execute(request).await
            }

            async fn upload(
                &self,
                source: &std::path::Path,
                destination: &str,
            ) -> Result<$crate::workspace::FileOperationResult, $crate::workspace::WorkspaceError>
            {
                self.remote.upload(source, destination).await
            }

            async fn download(
                &self,
                source: &str,
                destination: &std::path::Path,
            ) -> Result<$crate::workspace::FileOperationResult, $crate::workspace::WorkspaceError>
            {
                self.remote.download(source, destination).await
            }

            async fn git_changes(
                &self,
                path: &str,
            ) -> Result<Vec<$crate::workspace::GitChange>, $crate::workspace::WorkspaceError> {
                self.remote.git_changes(path).await
            }

            async fn git_diff(
                &self,
                path: &str,
            ) -> Result<$crate::workspace::GitDiff, $crate::workspace::WorkspaceError> {
                self.remote.git_diff(path).await
            }

            async fn pause(&self) -> Result<(), $crate::workspace::WorkspaceError> {
                self.pause_sandbox().await
            }

            async fn resume(&self) -> Result<(), $crate::workspace::WorkspaceError> {
                self.resume_sandbox().await
            }

            async fn close(&self) -> Result<(), $crate::workspace::WorkspaceError> {
                self.close_sandbox().await
            }

            $(
                async fn stopped(&self) -> Option<$crate::workspace::WorkspaceError> {
                    self.$stopped()
                }
            )?
        }
    };
}

pub(crate) use remote_sandbox_workspace;
