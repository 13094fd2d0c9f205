//! Writes generated seeds for the fuzz targets, from the committed ones.
//!
//! Std only, so that it builds in a second without the fuzz crate:
//!
//! ```sh
//! rustc -O --edition 2021 fuzz/seeds.rs -o fuzz/target/seeds
//! fuzz/target/seeds fuzz/corpus fuzz/corpus-gen [STRIDE]
//! ```
//!
//! For every text seed (SIP, SDP, webhook bodies, digest challenges, campaigns)
//! it writes copies with a multibyte UTF-8 character, an invalid UTF-8 byte, a
//! cut multibyte sequence, a NUL, a CR, an LF and a CRLF inserted at every
//! STRIDE-th byte offset (1: every offset), and the seed cut at those offsets. For
//! the sequence targets it also writes whole sessions: a call's messages in order,
//! with time passing between them, over UDP and TCP. Generated seeds go to
//! `OUT/<target>/`, a folder git ignores.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The separator of sequence inputs (`kuma_fuzz::SEP`).
const SEP: &[u8] = b"\0~\0";

/// What is put in at each offset.
const INSERTS: &[&[u8]] = &[
    "é".as_bytes(),
    "€".as_bytes(),
    b"\xff",
    b"\xe2\x82",
    b"\0",
    b"\r",
    b"\n",
    b"\r\n",
];

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(corpus), Some(out)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: seeds CORPUS_DIR OUT_DIR [STRIDE]");
        std::process::exit(2);
    };
    let stride: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1).max(1);
    let corpus = Path::new(corpus);
    let out = Path::new(out);

    let sip = read_dir(&corpus.join("sip"))?;
    let mut total = 0;
    for target in ["sip_message", "sip_framing"] {
        total += write_mutations(&out.join(target), &sip, stride)?;
    }
    total += write_mutations(&out.join("sdp"), &read_dir(&corpus.join("sdp"))?, stride)?;
    total += write_mutations(
        &out.join("sip_digest"),
        &read_dir(&corpus.join("sip-digest"))?,
        stride,
    )?;
    total += write_mutations(
        &out.join("campaign"),
        &read_dir(&corpus.join("campaign"))?,
        stride * 8,
    )?;
    for (dir, target) in [
        ("webhook-at", "webhook_at"),
        ("webhook-twilio", "webhook_twilio"),
        ("studio-edit", "studio_edit"),
    ] {
        total += write_mutations(&out.join(target), &read_dir(&corpus.join(dir))?, stride)?;
    }

    // The endpoint: single messages mutated (sparser: each input is a session),
    // and whole calls.
    let endpoint = out.join("sip_endpoint");
    total += write_mutations(&endpoint, &sip, stride * 4)?;
    let find = |name: &str| {
        sip.iter()
            .find(|(n, _)| n.starts_with(name))
            .map(|(_, b)| b.clone())
            .unwrap_or_default()
    };
    let (invite, ack, bye) = (
        find("sipp-uac-invite"),
        find("sipp-uac-ack"),
        find("sipp-uac-bye"),
    );
    let wait = |ms10: u16| {
        let mut w = vec![1];
        w.extend_from_slice(&ms10.to_be_bytes());
        w
    };
    let tcp = |m: &[u8]| [&[3u8][..], m].concat();
    let sessions: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("call", vec![invite.clone(), ack.clone(), wait(100), bye.clone()]),
        (
            "call-tcp",
            vec![tcp(&invite), tcp(&ack), wait(100), tcp(&bye)],
        ),
        ("retransmit", vec![invite.clone(), wait(50), invite.clone(), wait(3200), ack.clone()]),
        ("no-ack", vec![invite.clone(), wait(6400)]),
        ("hang-up", vec![invite.clone(), ack.clone(), vec![2, 3, 0], wait(3200)]),
        ("refer", vec![invite.clone(), ack.clone(), vec![2, 6, 0], wait(100), bye.clone()]),
        ("dial", vec![vec![5, b'1', b'0', b'0'], wait(200), vec![2, 3, 0]]),
        ("shutdown", vec![vec![6], invite.clone()]),
    ];
    for (name, parts) in sessions {
        write(&endpoint.join(name), &parts.join(SEP))?;
        total += 1;
    }

    // RTP: every datagram, then all of them as one stream with time between them.
    let mut rtp = read_dir(&corpus.join("rtp"))?;
    rtp.extend(read_dir(&corpus.join("telephone-event"))?);
    let rtp_out = out.join("rtp");
    for (name, bytes) in &rtp {
        write(&rtp_out.join(name), bytes)?;
        total += 1;
    }
    let mut stream = Vec::new();
    for (_, bytes) in &rtp {
        stream.push(bytes.clone());
        stream.push(vec![1, 0, 20]);
    }
    write(&rtp_out.join("stream"), &stream.join(SEP))?;
    total += 1;

    println!("seeds: {total} files in {}", out.display());
    Ok(())
}

/// The files of a folder, sorted by name (an absent folder has none).
fn read_dir(dir: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(files);
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_file() {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.push((name, fs::read(&path)?));
        }
    }
    files.sort();
    Ok(files)
}

/// Every seed as it is, cut, and with each insert at every `stride`-th offset.
fn write_mutations(dir: &Path, seeds: &[(String, Vec<u8>)], stride: usize) -> io::Result<usize> {
    let mut n = 0;
    for (name, seed) in seeds {
        write(&dir.join(name), seed)?;
        n += 1;
        for at in (0..=seed.len()).step_by(stride) {
            let (head, tail) = seed.split_at(at);
            write(&dir.join(format!("{name}.cut{at}")), head)?;
            n += 1;
            for (i, insert) in INSERTS.iter().enumerate() {
                let data = [head, insert, tail].concat();
                write(&dir.join(format!("{name}.{at}.{i}")), &data)?;
                n += 1;
            }
        }
    }
    Ok(n)
}

fn write(path: &PathBuf, data: &[u8]) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, data)
}
