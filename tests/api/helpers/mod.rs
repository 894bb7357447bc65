//! The test harness.

pub mod app;
pub mod services;
pub mod smtp;
pub mod sse;
pub mod tokens;
pub mod totp;

pub use app::{Mode, TestApp, TestUser};

/// Generates one test per mode from `async fn name(mode: Mode)`.
#[macro_export]
macro_rules! both_modes {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Mode::Embedded).await
                }
            )*
        }
        mod production {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Mode::Production).await
                }
            )*
        }
    };
}
