//! A cancellation signal shared by the background tasks (a `watch` channel).

use tokio::sync::watch;

#[derive(Clone)]
pub struct CancelSignal(watch::Receiver<bool>);

pub struct CancelHandle(watch::Sender<bool>);

pub fn cancel_pair() -> (CancelHandle, CancelSignal) {
    let (tx, rx) = watch::channel(false);
    (CancelHandle(tx), CancelSignal(rx))
}

impl CancelHandle {
    pub fn cancel(&self) {
        let _ = self.0.send(true);
    }
}

impl CancelSignal {
    pub async fn cancelled(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|stopped| *stopped).await;
    }
}
