//! The TCP framer: the input is pushed in pieces (cut at the separator), and every
//! complete message is taken out after each piece; a framing error starts a new
//! connection, as the shell does.
#![no_main]

use kuma::sip::framing::StreamFramer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut framer = StreamFramer::new();
    let mut total = 0usize;
    for piece in kuma_fuzz::split(data) {
        framer.push(piece);
        total += piece.len();
        loop {
            match framer.next_message() {
                Ok(Some(message)) => assert!(message.len() <= total),
                Ok(None) => break,
                Err(_) => {
                    framer = StreamFramer::new();
                    total = 0;
                    break;
                }
            }
        }
        assert!(framer.buffered() <= total);
    }
});
