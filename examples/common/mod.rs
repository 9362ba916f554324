//! Shared by the `stream`, `realtime` and `costs` examples (included with `#[path]`).

use fal_client::{Error, FalClient};
use fal_mock::{FalMock, FalMockBuilder};

/// fal (or any server at the `FAL_*_URL`s) when `FAL_KEY` or `FAL_KEY_ID` is set; else the
/// bundled mock, started from `mock` and returned with the client (it stops when dropped).
/// Says which on stderr.
pub async fn client_or_mock(mock: FalMockBuilder) -> Result<(FalClient, Option<FalMock>), Error> {
    if std::env::var_os("FAL_KEY").is_some() || std::env::var_os("FAL_KEY_ID").is_some() {
        let fal = FalClient::from_env()?;
        eprintln!(
            "FAL_KEY is set: using fal at {} (run) and {} (Platform API)",
            fal.config().run_url(),
            fal.config().api_url()
        );
        return Ok((fal, None));
    }
    let mock = mock
        .start()
        .await
        .map_err(|e| Error::Config(format!("cannot start the mock: {e}")))?;
    eprintln!(
        "FAL_KEY is not set: running offline against the bundled FalMock at {}",
        mock.run_url()
    );
    let fal = mock.client()?;
    Ok((fal, Some(mock)))
}
