//! SIGINT and SIGTERM as a reactor source: the first asks for a graceful
//! stop, a second one stops at once (the operator means it).

use std::io;

use log::{info, warn};
use mio::Interest;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use super::{LoopHandle, PostAction, SourceId};

pub(super) fn register(reactor: &mut LoopHandle) -> io::Result<SourceId> {
    let signals = Signals::new([SIGINT, SIGTERM])?;
    reactor.register(signals, Interest::READABLE, |signals, _, reactor| {
        for signal in signals.pending() {
            let name = if signal == SIGINT {
                "SIGINT"
            } else {
                "SIGTERM"
            };
            if reactor.is_stopping() {
                warn!("{name} again: stopping now");
                reactor.stop_now();
            } else {
                info!("{name}: stopping gracefully");
                reactor.stop();
            }
        }
        PostAction::Continue
    })
}
