//! The gateway's side of a tunnel connection's control stream: reading the edge's
//! messages in a task of their own, and telling the edge to drain this connection.

use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::protocol::{frame, Control, FrameError, MAX_FRAME_LEN};
use crate::tasks::Tasks;

/// Reads the control stream in a task of `tasks` (frame reads are not cancel-safe; the
/// caller aborts it when the connection ends), handing each message (and the end or
/// error that stops it) to the returned channel.
pub(super) fn read_control<R>(
    mut control: R,
    tasks: &Tasks,
) -> (tokio::task::JoinHandle<()>, mpsc::Receiver<Result<Option<Control>, FrameError>>)
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::channel(4);
    let reader = tasks.spawn(async move {
        loop {
            let msg = frame::read::<Control, _>(&mut control, MAX_FRAME_LEN).await;
            let more = matches!(msg, Ok(Some(_)));
            if tx.send(msg).await.is_err() || !more {
                break;
            }
        }
    });
    (reader, rx)
}

/// Asks the edge to route nothing new to this connection; in-flight streams get `grace`.
pub(super) async fn send_drain<W: AsyncWrite + Unpin>(control: &mut W, grace: Duration) {
    let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
    let _ = frame::write(control, &Control::Drain { grace_ms }, MAX_FRAME_LEN).await;
    let _ = control.flush().await;
}
