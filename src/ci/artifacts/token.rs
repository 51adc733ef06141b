//! The backend ids of the artifact service, read from the runtime token: `ACTIONS_RUNTIME_TOKEN`
//! is a JWT whose `scp` claim (space-separated scopes) holds
//! `Actions.Results:<workflowRunBackendId>:<workflowJobRunBackendId>`. The signature is not
//! checked: the service checks it; we only need the ids it expects back.

use base64::Engine;

use super::ArtifactError;

/// The ids every artifact service call names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendIds {
    pub workflow_run_backend_id: String,
    pub workflow_job_run_backend_id: String,
}

/// Reads the backend ids from the runtime token.
pub fn backend_ids(runtime_token: &str) -> Result<BackendIds, ArtifactError> {
    let claims = claims(runtime_token)?;
    let scopes = claims
        .get("scp")
        .and_then(|s| s.as_str())
        .ok_or(ArtifactError::NoResultsScope)?;
    scopes
        .split(' ')
        .filter_map(|scope| {
            let parts: Vec<&str> = scope.split(':').collect();
            match parts.as_slice() {
                ["Actions.Results", run, job] if !run.is_empty() && !job.is_empty() => {
                    Some(BackendIds {
                        workflow_run_backend_id: (*run).to_string(),
                        workflow_job_run_backend_id: (*job).to_string(),
                    })
                }
                _ => None,
            }
        })
        .next()
        .ok_or(ArtifactError::NoResultsScope)
}

/// The JWT's payload as JSON.
fn claims(token: &str) -> Result<serde_json::Value, ArtifactError> {
    let bad = |why: &str| ArtifactError::BadToken(why.to_string());
    let mut parts = token.trim().split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("not three dot-separated parts"));
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| bad("its payload is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| bad("its payload is not JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.sig", b64(r#"{"alg":"RS256"}"#), b64(payload))
    }

    #[test]
    fn finds_the_results_scope_among_others() {
        let token = jwt(
            r#"{"scp":"Actions.ExampleScope Actions.Results:ce7f54c7-61c7:ca395085-040a Actions.UploadArtifacts:0:0"}"#,
        );
        let ids = backend_ids(&token).unwrap();
        assert_eq!(ids.workflow_run_backend_id, "ce7f54c7-61c7");
        assert_eq!(ids.workflow_job_run_backend_id, "ca395085-040a");
    }

    #[test]
    fn a_token_without_the_scope_is_refused() {
        let no_scope = jwt(r#"{"scp":"Actions.GenericRead:1:2"}"#);
        assert!(matches!(
            backend_ids(&no_scope),
            Err(ArtifactError::NoResultsScope)
        ));
        let malformed = jwt(r#"{"scp":"Actions.Results:only-one"}"#);
        assert!(matches!(
            backend_ids(&malformed),
            Err(ArtifactError::NoResultsScope)
        ));
        let four = jwt(r#"{"scp":"Actions.Results:a:b:c"}"#);
        assert!(matches!(
            backend_ids(&four),
            Err(ArtifactError::NoResultsScope)
        ));
        let no_claim = jwt(r#"{"sub":"x"}"#);
        assert!(matches!(
            backend_ids(&no_claim),
            Err(ArtifactError::NoResultsScope)
        ));
    }

    #[test]
    fn a_token_that_is_not_a_jwt_is_refused() {
        for token in ["", "abc", "a.b", "a.!!!.c", "a.e30.c.d"] {
            assert!(
                matches!(backend_ids(token), Err(ArtifactError::BadToken(_))),
                "{token}"
            );
        }
    }
}
