//! Issue 14's table for spandsp's DTMF receiver (`dtmf_rx`, the one FreeSWITCH
//! uses), on exactly the tapes kuma's detector is measured on
//! (`kuma::audio::dtmf::table`), so the two can be shown side by side. A comparison
//! only: spandsp is not part of kuma.
//!
//! spandsp is loaded at run time with `dlopen` (Debian: `libspandsp2`, or
//! `libspandsp-dev` for its headers), so this bench builds everywhere and says so
//! when the library is missing. Its receiver runs with its defaults (twist 8 dB,
//! reverse twist 4 dB, −42 dBm0, no dial-tone filter); keys are taken from its
//! real-time callback at the start of each tone.
//!
//! Run: `cargo bench --bench dtmf_spandsp` (`DTMF_TALKOFF_MINUTES`, default 120).

use std::ffi::{CStr, c_int, c_void};
use std::time::Instant;

use kuma::audio::dtmf::KeyEvent;
use kuma::audio::dtmf::table;

type RxInit = unsafe extern "C" fn(*mut c_void, *const c_void, *mut c_void) -> *mut c_void;
type Callback = extern "C" fn(*mut c_void, c_int, c_int, c_int);
type SetCallback = unsafe extern "C" fn(*mut c_void, Callback, *mut c_void);
type Rx = unsafe extern "C" fn(*mut c_void, *const i16, c_int) -> c_int;
type Free = unsafe extern "C" fn(*mut c_void) -> c_int;

struct Spandsp {
    init: RxInit,
    set_callback: SetCallback,
    rx: Rx,
    free: Free,
}

fn symbol(lib: *mut c_void, name: &CStr) -> Option<*mut c_void> {
    // SAFETY: dlsym on a handle dlopen returned, with a NUL-terminated name.
    let p = unsafe { libc::dlsym(lib, name.as_ptr()) };
    (!p.is_null()).then_some(p)
}

fn load() -> Option<Spandsp> {
    // SAFETY: dlopen with a NUL-terminated name; the handle is never closed.
    let lib = unsafe { libc::dlopen(c"libspandsp.so.2".as_ptr(), libc::RTLD_NOW) };
    if lib.is_null() {
        return None;
    }
    // SAFETY: the symbols have these C signatures in spandsp 0.0.6 (spandsp/dtmf.h).
    unsafe {
        Some(Spandsp {
            init: std::mem::transmute::<*mut c_void, RxInit>(symbol(lib, c"dtmf_rx_init")?),
            set_callback: std::mem::transmute::<*mut c_void, SetCallback>(symbol(
                lib,
                c"dtmf_rx_set_realtime_callback",
            )?),
            rx: std::mem::transmute::<*mut c_void, Rx>(symbol(lib, c"dtmf_rx")?),
            free: std::mem::transmute::<*mut c_void, Free>(symbol(lib, c"dtmf_rx_free")?),
        })
    }
}

struct Heard {
    /// The first sample of the chunk being fed.
    pos: u64,
    keys: Vec<KeyEvent>,
}

extern "C" fn on_tone(user: *mut c_void, code: c_int, _level: c_int, _delay: c_int) {
    if code == 0 || user.is_null() {
        return;
    }
    // SAFETY: `user` is the `Heard` that `detect` passed, alive for the call.
    let heard = unsafe { &mut *(user as *mut Heard) };
    heard.keys.push(KeyEvent {
        key: code as u8 as char,
        // spandsp decides after two blocks of 102 samples: date the key from there.
        start_sample: heard.pos.saturating_sub(204),
    });
}

/// The keys a fresh spandsp receiver reports in `samples`, fed 40 samples at a time.
fn detect(s: &Spandsp, samples: &[i16]) -> Vec<KeyEvent> {
    let mut heard = Heard {
        pos: 0,
        keys: Vec::new(),
    };
    // SAFETY: spandsp allocates the state (NULL first argument); `heard` outlives it.
    unsafe {
        let rx = (s.init)(std::ptr::null_mut(), std::ptr::null(), std::ptr::null_mut());
        if rx.is_null() {
            return Vec::new();
        }
        (s.set_callback)(rx, on_tone, &mut heard as *mut Heard as *mut c_void);
        for chunk in samples.chunks(40) {
            (s.rx)(rx, chunk.as_ptr(), chunk.len() as c_int);
            heard.pos += chunk.len() as u64;
        }
        (s.free)(rx);
    }
    heard.keys
}

fn main() {
    let Some(spandsp) = load() else {
        eprintln!("dtmf_spandsp: libspandsp.so.2 not found (Debian: apt-get install libspandsp2)");
        return;
    };
    let minutes = std::env::var("DTMF_TALKOFF_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(120);
    let started = Instant::now();
    let rows = table::table(&mut |s| detect(&spandsp, s), minutes, &table::SEEDS);
    eprintln!(
        "dtmf: issue 14's table, spandsp 0.0.6 dtmf_rx ({:.0} s):\n{}",
        started.elapsed().as_secs_f64(),
        table::markdown(&rows)
    );
}
