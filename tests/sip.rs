//! `kuma serve` answering real SIP peers (sipp) on loopback, with the example
//! campaign, checked through the store. Every port is chosen at run time.
//!
//! Needs `sipp` (Debian's sip-tester) and `baresip` (baresip-core); `./test` installs
//! them. Without them the tests fail, saying so (see `common::peer_missing`).

mod common;

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, count, free_port, have_sipp, repo};

const CAMPAIGN: &str = "stop-trafficking-mali";

impl Server {
    /// Runs a sipp scenario that answers the poll as the sipp scripts do (see
    /// [`assert_the_scripted_poll`]), checks that its one call completed at
    /// goodbye with those answers, and returns the results.
    fn completes_the_scripted_poll(&self, scenario: &str, what: &str) -> serde_json::Value {
        let calls = self.call(scenario, &[], what);
        assert_eq!(
            calls,
            [("completed".to_string(), Some("goodbye".to_string()))]
        );
        let r = self.results();
        assert_the_scripted_poll(&r);
        r
    }

    fn database(&self) -> String {
        format!("sqlite://{}/data/kuma.db", self.dir.path().display())
    }

    /// Runs a scenario that must succeed (`what` says what success means), then
    /// returns the stored calls once one has ended.
    fn call(&self, scenario: &str, extra: &[&str], what: &str) -> Vec<(String, Option<String>)> {
        let out = self.sipp(scenario, "2000", extra);
        assert!(out.status.success(), "{what}");
        self.wait_calls(1)
    }

    /// `kuma results --format json`.
    fn results(&self) -> serde_json::Value {
        let args = ["results", CAMPAIGN, "--format", "json"];
        common::kuma_json(
            &repo().join("campaigns"),
            &self.database(),
            &self.data,
            &args,
        )
    }

    /// Rows of a query on the server's database.
    fn query<T>(&self, sql: &'static str) -> Vec<T>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin,
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let pool = sqlx::SqlitePool::connect(&self.database()).await.unwrap();
            let rows = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows
        })
    }

    /// The outcome and last node of every stored call, oldest first.
    fn calls(&self) -> Vec<(String, Option<String>)> {
        self.query::<(Option<String>, Option<String>)>(
            "SELECT outcome, last_node FROM calls ORDER BY id",
        )
        .into_iter()
        .map(|(o, n)| (o.unwrap_or_default(), n))
        .collect()
    }

    /// Waits until `n` calls have ended (the store is written after sipp's last step).
    fn wait_calls(&self, n: usize) -> Vec<(String, Option<String>)> {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let calls = self.calls();
            if calls.iter().filter(|(o, _)| !o.is_empty()).count() >= n || Instant::now() > until {
                return calls;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits (up to 10 s) until `/metrics` has `line`; the metrics then.
    fn wait_metric(&self, line: &str) -> String {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let metrics = self.http_get("/metrics");
            if metrics.lines().any(|l| l == line) || Instant::now() > until {
                return metrics;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the `kuma serve` process is still running.
    fn child_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn http_get(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.http).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: kuma\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    }
}

/// One call answered the poll as the sipp scripts do: French, then yes, no,
/// yes, woman, Koulikoro.
fn assert_the_scripted_poll(r: &serde_json::Value) {
    assert_eq!(r["calls"], 1);
    assert_eq!(r["languages"]["fr"], 1);
    assert_eq!(count(r, "q_offered_work", "yes"), 1);
    assert_eq!(count(r, "q_know_signs", "no"), 1);
    assert_eq!(count(r, "q_would_report", "yes"), 1);
    assert_eq!(count(r, "q_gender", "woman"), 1);
    assert_eq!(count(r, "q_region", "koulikoro"), 1);
}

#[test]
fn a_full_poll_answered_with_rfc4733_keys() {
    if !have_sipp() {
        return;
    }
    let k = Server::start();
    let r = k.completes_the_scripted_poll(
        "poll_rfc4733.xml",
        "the call went through, and kuma hung up with BYE",
    );
    assert_eq!(r["completed"], 1);
    let metrics = k.http_get("/metrics");
    assert!(metrics.contains("kuma_answers_total 5"), "{metrics}");
    assert!(
        metrics.contains("kuma_calls_total{outcome=\"completed\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_caller_who_hangs_up_during_a_prompt_is_stored_with_the_node() {
    if !have_sipp() {
        return;
    }
    let k = Server::start();
    // sipp's built-in caller: INVITE, ACK, 1.5 s of the language menu, BYE.
    let out = k.sipp("uac", "2000", &["-d", "1500"]);
    assert!(out.status.success());
    let calls = k.wait_calls(1);
    assert_eq!(
        calls,
        [("caller_hangup".to_string(), Some("welcome".to_string()))]
    );
    // The funnel counted it where it happened.
    let funnel: Vec<(String, i64, i64)> =
        k.query("SELECT node, reached, hung_up FROM node_counts ORDER BY node");
    assert_eq!(funnel, [("welcome".to_string(), 1, 1)]);
}

#[test]
fn options_unknown_numbers_codecs_and_garbage() {
    if !have_sipp() {
        return;
    }
    let k = Server::start();
    assert!(k.http_get("/healthz").ends_with("ok\n"));
    // Garbage and an oversized datagram change nothing.
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe.send_to(b"\x00\x01garbage\r\n\r\n", k.sip).unwrap();
    probe.send_to(&vec![b'A'; 65_000], k.sip).unwrap();
    probe
        .send_to(b"INVITE sip:2000@x SIP/2.0\r\n\r\n", k.sip)
        .unwrap();
    assert!(
        k.sipp("options.xml", "2000", &[]).status.success(),
        "OPTIONS: 200"
    );
    assert!(
        k.sipp("unknown_number.xml", "9999", &[]).status.success(),
        "unknown number: 404"
    );
    assert!(
        k.sipp("g729_only.xml", "2000", &[]).status.success(),
        "G.729 only: 488"
    );
    // Refused for its offer, the call never reached the campaign: it is in the
    // metrics, not in the results.
    let rejected = "kuma_calls_total{outcome=\"rejected\"} 1";
    let metrics = k.wait_metric(rejected);
    assert!(metrics.lines().any(|l| l == rejected), "{metrics}");
    // Still answering calls.
    assert!(k.sipp("uac", "2000", &["-d", "500"]).status.success());
    let calls = k.wait_calls(1);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_ne!(calls[0].0, "rejected");
    assert_eq!(k.results()["calls"], 1);
    assert!(k.http_get("/healthz").ends_with("ok\n"));
}

/// Raw 8 kHz µ-law: keys as tones, with silence between them, and some speech.
fn inband_tape(steps: &[&str]) -> Vec<u8> {
    use kuma::audio::dtmf::generate::{silence, tone};
    let speech = std::fs::read(repo().join("src/audio/dtmf/testdata/talkoff-fr-8k.ulaw")).unwrap();
    let mut pcm: Vec<i16> = silence(1000, 8000);
    for step in steps {
        match *step {
            "speech" => pcm.extend(kuma::audio::g711::ulaw_decode(&speech[8000..8000 * 4])),
            key => {
                let k = key.chars().next().unwrap();
                pcm.extend(tone(k, 120, -10.0, -10.0, 0.0, 8000).unwrap());
                pcm.extend(silence(1200, 8000));
            }
        }
    }
    pcm.extend(silence(15_000, 8000));
    kuma::audio::g711::ulaw_encode(&pcm)
}

#[test]
fn a_voice_message_left_with_keys_sent_as_tones() {
    if !have_sipp() {
        return;
    }
    let k = Server::start();
    let tape = inband_tape(&["2", "9", "3", "9", "speech", "#", "9", "0"]);
    std::fs::write(k.dir.path().join("inband.ulaw"), tape).unwrap();
    let calls = k.call(
        "voice_message_inband.xml",
        &[],
        "kuma heard the keys in the audio and hung up after goodbye",
    );
    assert_eq!(
        calls,
        [("completed".to_string(), Some("goodbye".to_string()))]
    );
    let recordings: Vec<(String, i64)> = k.query("SELECT file, duration_ms FROM recordings");
    assert_eq!(recordings.len(), 1, "{recordings:?}");
    let (file, ms) = recordings[0].clone();
    assert!(
        (2500..6000).contains(&ms),
        "about three seconds of speech recorded, got {ms} ms"
    );
    let wav = hound::WavReader::open(&file).unwrap();
    assert_eq!(wav.spec().sample_rate, 8000);
    assert!(wav.duration() >= 20_000, "the file holds the message");
    // A caller's voice, the database and the secret are the owner's only.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(std::path::Path::new(&file)), 0o600, "{file}");
    assert_eq!(mode(&k.data.join("kuma.db")), 0o600);
    assert_eq!(mode(&k.data), 0o700);
    assert_eq!(mode(std::path::Path::new(&file).parent().unwrap()), 0o700);
}

/// The RFC 4733 poll's keys (`poll_rfc4733.xml`: French, skip, the poll, skip, five
/// answers, skip, goodbye), as tones of 150 ms 1.2 s apart, pressed while a radio
/// in the room plays the campaign's French prompts: each pair 3 dB under the speech.
fn poll_over_a_radio() -> Vec<i16> {
    use kuma::audio::dtmf::generate::{active_level_dbm0, mix, silence, tone};
    let speech = std::fs::read(repo().join("src/audio/dtmf/testdata/talkoff-fr-8k.ulaw")).unwrap();
    let radio = kuma::audio::g711::ulaw_decode(&speech);
    let per_tone = active_level_dbm0(&radio) - 3.0 - 3.01;
    let mut keys: Vec<i16> = silence(1000, 8000);
    for key in "29291211390".chars() {
        keys.extend(tone(key, 150, per_tone, per_tone, 0.0, 8000).unwrap());
        keys.extend(silence(1050, 8000));
    }
    keys.extend(silence(15_000, 8000));
    mix(&keys, &radio[..keys.len().min(radio.len())])
}

#[test]
fn a_poll_answered_with_tones_while_a_radio_plays() {
    if !have_sipp() {
        return;
    }
    let tape = kuma::audio::g711::ulaw_encode(&poll_over_a_radio());
    // The tape itself, as kuma will hear it: every key heard once by the detector,
    // in order, nothing else (so a failure below is the call's, not the tape's).
    let pcm = kuma::audio::g711::ulaw_decode(&tape);
    let heard: String = kuma::audio::dtmf::tape::detect(&pcm, 160)
        .iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(heard, "29291211390");
    let k = Server::start();
    std::fs::write(k.dir.path().join("inband.ulaw"), tape).unwrap();
    let r = k.completes_the_scripted_poll(
        "voice_message_inband.xml",
        "kuma heard the keys over the radio and hung up after goodbye",
    );
    assert_eq!(r["completed"], 1);
}

#[test]
fn a_gateway_sending_each_key_as_sip_info_and_as_tones_answers_the_poll_once() {
    if !have_sipp() {
        return;
    }
    use kuma::audio::dtmf::generate::{silence, tone};
    // The poll's keys as tones, at the times poll_info_and_tones.xml sends them
    // as SIP INFO (all but the last, 0 for goodbye, which only the tones carry).
    let mut pcm: Vec<i16> = silence(1000, 8000);
    for key in "29291211390".chars() {
        pcm.extend(tone(key, 100, -12.0, -12.0, 0.0, 8000).unwrap());
        pcm.extend(silence(1100, 8000));
    }
    pcm.extend(silence(15_000, 8000));
    let k = Server::start();
    std::fs::write(
        k.dir.path().join("inband.ulaw"),
        kuma::audio::g711::ulaw_encode(&pcm),
    )
    .unwrap();
    k.completes_the_scripted_poll(
        "poll_info_and_tones.xml",
        "tones heard and each press counted once: the poll went through to goodbye",
    );
    let metrics = k.http_get("/metrics");
    assert!(metrics.contains("kuma_answers_total 5"), "{metrics}");
}

#[test]
fn a_phone_sending_each_key_as_rfc4733_and_sip_info_answers_the_poll_once() {
    if !have_sipp() {
        return;
    }
    let k = Server::start();
    k.completes_the_scripted_poll(
        "poll_info_and_rfc4733.xml",
        "each press counted once: the poll went through to goodbye",
    );
    let metrics = k.http_get("/metrics");
    assert!(metrics.contains("kuma_answers_total 5"), "{metrics}");
}

#[test]
fn a_lost_ack_is_given_up_with_bye() {
    if !have_sipp() {
        return;
    }
    let k = Server::start();
    let out = k.sipp("lost_ack.xml", "2000", &[]);
    assert!(out.status.success(), "200 OK retransmitted, then BYE");
    // kuma's answer never confirmed (a forged INVITE's fate): no call of the
    // results, no row; counted in the metrics.
    let no_ack = "kuma_calls_total{outcome=\"no_ack\"} 1";
    let metrics = k.wait_metric(no_ack);
    assert!(metrics.lines().any(|l| l == no_ack), "{metrics}");
    assert_eq!(k.calls(), []);
    assert_eq!(k.results()["calls"], 0);
}

#[test]
fn a_call_over_tcp() {
    if !have_sipp() {
        return;
    }
    let k = Server::start();
    // sipp's built-in caller over one TCP connection: INVITE, ACK, BYE after 1 s.
    let calls = k.call("uac", &["-t", "t1", "-d", "1000"], "SIP over TCP");
    assert_eq!(
        calls,
        [("caller_hangup".to_string(), Some("welcome".to_string()))]
    );
}

#[test]
fn the_helpline_transfer_is_a_refer_to_the_gateway() {
    if !have_sipp() {
        return;
    }
    let k = Server::start();
    let calls = k.call(
        "transfer_refer.xml",
        &[],
        "REFER, 202, NOTIFY 200, then kuma's BYE",
    );
    assert_eq!(
        calls,
        [("transferred".to_string(), Some("helpline".to_string()))]
    );
}

#[test]
fn sigterm_lets_the_call_in_progress_finish_then_stops() {
    if !have_sipp() {
        return;
    }
    let mut k = Server::start();
    let sip = k.sip;
    let dir = k.dir.path().to_path_buf();
    // A caller who stays 4 s, then hangs up.
    let caller = std::thread::spawn(move || {
        Command::new("sipp")
            .args([
                "-sn",
                "uac",
                &sip.to_string(),
                "-s",
                "2000",
                "-m",
                "1",
                "-d",
                "4000",
            ])
            .args([
                "-i",
                "127.0.0.1",
                "-mi",
                "127.0.0.1",
                "-p",
                &free_port().to_string(),
            ])
            .args([
                "-mp",
                &common::free_media_port().to_string(),
                "-timeout",
                "30",
                "-timeout_error",
                "-nostdin",
            ])
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    });
    std::thread::sleep(Duration::from_millis(1500));
    let pid = k.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = caller.join().unwrap();
    assert!(
        out.status.success(),
        "the call in progress went on to its end"
    );
    let until = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = k.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < until,
            "kuma did not stop after its last call"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success());
    assert_eq!(
        k.calls(),
        [("caller_hangup".to_string(), Some("welcome".to_string()))]
    );
}

/// A machine that cannot keep the calls' audio on time (kuma stopped for
/// 150 ms out of every 200, as a starved or stolen CPU does): within a second
/// new calls and probes get 503, so a proxy sends them elsewhere; the calls in
/// progress go on; once the audio is on time again, the node takes calls.
#[test]
fn a_node_whose_audio_goes_out_late_refuses_new_calls_until_it_is_on_time() {
    if !have_sipp() {
        return;
    }
    let k = Server::start();
    let callers = twelve_calls_on_a_stalling_node(&k);
    assert_eq!(
        sip_status(k.sip, "OPTIONS", 1000).as_deref(),
        Some("SIP/2.0 503 Service Unavailable"),
        "late: the node is busy"
    );
    assert_eq!(
        sip_status(k.sip, "INVITE", 1001).as_deref(),
        Some("SIP/2.0 503 Service Unavailable"),
        "late: a new call is refused"
    );
    on_time(k.sip, 1002);
    let out = callers.join().unwrap();
    assert!(
        out.status.success(),
        "the calls in progress went on to their end: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let log = std::fs::read_to_string(&k.log).unwrap();
    assert!(log.contains("new calls refused (503)"), "{log}");
    assert!(log.contains("on time again"), "{log}");
}

#[test]
fn a_node_with_the_media_guard_off_takes_calls_however_late_its_audio() {
    if !have_sipp() {
        return;
    }
    let k = Server::start_with(&["--media-guard", "off"]);
    let callers = twelve_calls_on_a_stalling_node(&k);
    assert_eq!(
        sip_status(k.sip, "OPTIONS", 1000).as_deref(),
        Some("SIP/2.0 200 OK"),
        "the guard is off: never busy"
    );
    let out = callers.join().unwrap();
    assert!(
        out.status.success(),
        "the calls went on to their end: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let log = std::fs::read_to_string(&k.log).unwrap();
    assert!(!log.contains("new calls refused"), "{log}");
}

/// Waits until OPTIONS gets 200 (20 s at most), numbering its probes from `from`.
fn on_time(sip: std::net::SocketAddr, from: u32) {
    let until = Instant::now() + Duration::from_secs(20);
    let mut n = from;
    while sip_status(sip, "OPTIONS", n).as_deref() != Some("SIP/2.0 200 OK") {
        assert!(
            Instant::now() < until,
            "the node stayed busy while its audio was on time"
        );
        std::thread::sleep(Duration::from_millis(250));
        n += 1;
    }
}

/// Twelve sipp callers who stay 9 s (600 packets a second from kuma); once
/// they are in, kuma is stopped (SIGSTOP) 150 ms of every 200 for 2 s, so its
/// audio goes out late. Returns when that is over, with sipp's thread.
fn twelve_calls_on_a_stalling_node(k: &Server) -> std::thread::JoinHandle<std::process::Output> {
    let sip = k.sip;
    let dir = k.dir.path().to_path_buf();
    let callers = std::thread::spawn(move || {
        Command::new("sipp")
            .args(["-sn", "uac", &sip.to_string(), "-s", "2000"])
            .args(["-m", "12", "-l", "12", "-r", "12", "-d", "9000"])
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .args(["-p", &free_port().to_string()])
            .args(["-mp", &common::free_media_port().to_string()])
            .args(["-timeout", "60", "-timeout_error", "-nostdin"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    });
    std::thread::sleep(Duration::from_millis(2000));
    on_time(sip, 1);
    let pid = k.child.id().to_string();
    let signal = |s: &str| {
        assert!(
            Command::new("kill")
                .args([s, &pid])
                .status()
                .unwrap()
                .success()
        )
    };
    for _ in 0..10 {
        signal("-STOP");
        std::thread::sleep(Duration::from_millis(150));
        signal("-CONT");
        std::thread::sleep(Duration::from_millis(50));
    }
    callers
}

fn have_baresip() -> bool {
    Command::new("baresip").arg("-h").output().is_ok()
        || common::peer_missing("baresip (baresip-core)")
}

/// baresip dialling kuma's 2000, its keys typed on its `cons` console (UDP): the
/// process and the console's port. Its microphone is 90 s of French speech.
fn baresip_calling(k: &Server) -> (std::process::Child, u16) {
    let cfg = k.dir.path().join("baresip");
    std::fs::create_dir_all(&cfg).unwrap();
    // The caller's microphone: 90 s of French speech at 8 kHz.
    let speech = std::fs::read(repo().join("src/audio/dtmf/testdata/talkoff-fr-8k.ulaw")).unwrap();
    let voice = cfg.join("voice.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&voice, spec).unwrap();
    for s in kuma::audio::g711::ulaw_decode(&speech) {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    let console = free_port();
    let rtp = free_port();
    std::fs::write(
        cfg.join("config"),
        format!(
            "sip_listen 127.0.0.1:{sip}\naudio_player aufile,{heard}\naudio_source aufile,{voice}\n\
             audio_alert aufile,/dev/null\nmodule_path /usr/lib/baresip/modules\nmodule stdio.so\n\
             module g711.so\nmodule aufile.so\nmodule cons.so\ncons_listen 127.0.0.1:{console}\n\
             module_app account.so\nmodule_app menu.so\nrtp_ports {rtp}-{rtp_end}\n",
            sip = free_port(),
            heard = cfg.join("heard.wav").display(),
            voice = voice.display(),
            rtp_end = rtp.saturating_add(10),
        ),
    )
    .unwrap();
    std::fs::write(cfg.join("accounts"), "<sip:listener@127.0.0.1>;regint=0\n").unwrap();
    let phone = Command::new("baresip")
        .arg("-f")
        .arg(&cfg)
        .args(["-e", &format!("/dial sip:2000@{}", k.sip), "-t", "40"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (phone, console)
}

impl Server {
    /// Waits up to 30 s for the first call to end.
    fn wait_first_call(&self) {
        let until = Instant::now() + Duration::from_secs(30);
        while self.calls().iter().all(|(o, _)| o.is_empty()) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// A second, independent SIP stack: baresip (its own SDP with several codecs and
/// telephone-event rates, its own RFC 4733 sender) answers the whole poll.
#[test]
fn baresip_answers_the_poll() {
    if !have_baresip() {
        return;
    }
    let k = Server::start();
    let (mut phone, console) = baresip_calling(&k);
    std::thread::sleep(Duration::from_secs(3));
    // Keys typed on baresip's console, sent by it as RFC 4733 events: French, skip
    // the welcome, the poll, skip its introduction, five answers, skip the thanks,
    // goodbye.
    let keypad = UdpSocket::bind("127.0.0.1:0").unwrap();
    for key in ["2", "9", "2", "9", "1", "2", "1", "1", "3", "9", "0"] {
        keypad
            .send_to(key.as_bytes(), ("127.0.0.1", console))
            .unwrap();
        std::thread::sleep(Duration::from_millis(800));
    }
    k.wait_first_call();
    let _ = phone.kill();
    let _ = phone.wait();
    assert_eq!(
        k.calls(),
        [("completed".to_string(), Some("goodbye".to_string()))]
    );
    let r = k.results();
    assert_eq!(count(&r, "q_offered_work", "yes"), 1);
    assert_eq!(count(&r, "q_region", "koulikoro"), 1);
    assert_eq!(r["languages"]["fr"], 1);
}

/// A listener who types quickly: the whole call typed at once on baresip's
/// keypad, which queues the keys and sends them back to back as RFC 4733 events,
/// a new timestamp for each. That is as fast as baresip types: libre's sender
/// gives each event 9 packets and its 3 end packets at the 20 ms packet time, so
/// a key every 240 ms, the next starting 20 ms after the last end packet of the
/// one before (measured below; `;ptime=10` on the account does not change it).
/// The answers "1", "1", "2", "1", "1" repeat a digit for consecutive questions:
/// every answer must be stored, none twice (a press heard twice would answer the
/// next question too, one missed would leave the last unanswered).
#[test]
fn baresip_typing_quickly_answers_every_question() {
    if !have_baresip() {
        return;
    }
    let k = Server::start();
    let (mut phone, console) = baresip_calling(&k);
    std::thread::sleep(Duration::from_secs(3));
    // French, skip the welcome, the poll, skip its introduction, five answers,
    // skip the thanks, goodbye: one datagram.
    let keypad = UdpSocket::bind("127.0.0.1:0").unwrap();
    keypad
        .send_to(b"29291121190", ("127.0.0.1", console))
        .unwrap();
    k.wait_first_call();
    let _ = phone.kill();
    let _ = phone.wait();
    assert_eq!(
        k.calls(),
        [("completed".to_string(), Some("goodbye".to_string()))]
    );
    let r = k.results();
    assert_eq!(r["languages"]["fr"], 1);
    assert_eq!(count(&r, "q_offered_work", "yes"), 1);
    assert_eq!(count(&r, "q_know_signs", "yes"), 1);
    assert_eq!(count(&r, "q_would_report", "no"), 1);
    assert_eq!(count(&r, "q_gender", "woman"), 1);
    assert_eq!(count(&r, "q_region", "bamako"), 1);
    // How quickly baresip typed, from the answers' times (ms): ~240 each.
    let times: Vec<(i64,)> = k.query("SELECT answered_at FROM answers ORDER BY answered_at");
    let gaps: Vec<i64> = times.windows(2).map(|w| w[1].0 - w[0].0).collect();
    eprintln!("ms between answers: {gaps:?}");
    assert_eq!(gaps.len(), 4);
    assert!(
        gaps.iter().all(|&g| g < 1000),
        "not typed quickly: {gaps:?}"
    );
}

#[test]
fn hold_and_resume_keep_the_call() {
    if !have_sipp() {
        return;
    }
    let k = Server::start();
    let calls = k.call(
        "hold_resume.xml",
        &[],
        "re-INVITE sendonly -> 200 recvonly, then sendrecv -> 200 sendrecv, \
         then no offer -> 200 with kuma's offer, answered in the ACK",
    );
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].0, "caller_hangup",
        "the call lasted until the caller's BYE"
    );
}

#[test]
fn a_malformed_invite_gets_400() {
    if !have_sipp() {
        return;
    }
    let k = Server::start();
    let out = k.sipp("malformed_invite.xml", "2000", &[]);
    assert!(
        out.status.success(),
        "a Content-Length that is not a number: 400"
    );
    assert!(k.http_get("/healthz").ends_with("ok\n"));
}

#[test]
fn a_caller_who_gives_up_while_it_rings_is_cancelled() {
    if !have_sipp() {
        return;
    }
    let k = Server::start_with(&["--answer-after", "3s"]);
    let out = k.sipp("cancel.xml", "2000", &[]);
    assert!(
        out.status.success(),
        "180, then CANCEL: 200, and 487 for the INVITE"
    );
    // The listener never reached the campaign: no call of the results.
    let cancelled = "kuma_calls_total{outcome=\"cancelled\"} 1";
    let metrics = k.wait_metric(cancelled);
    assert!(metrics.lines().any(|l| l == cancelled), "{metrics}");
    assert_eq!(k.calls(), []);
    assert_eq!(k.results()["calls"], 0);
}

/// A valid request from `me` (responses come back to it: `rport`), its SDP
/// pointing at `media`, a socket of this test's.
fn hostile_template(
    method: &str,
    to: std::net::SocketAddr,
    me: std::net::SocketAddr,
    media: u16,
    n: u32,
) -> Vec<u8> {
    let sdp = if method == "INVITE" {
        format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {media} RTP/AVP 0 101\r\n\
             a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n",
            ip = me.ip()
        )
    } else {
        String::new()
    };
    let ct = if sdp.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{method} sip:2000@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};rport;branch=z9hG4bK-hostile-{n}\r\n\
         From: \"Awa\" <sip:+22376000000@{ip}>;tag=h{n}\r\nTo: <sip:2000@{to}>\r\nCall-ID: hostile-{n}@{ip}\r\n\
         CSeq: {n} {method}\r\nContact: <sip:awa@{me}>\r\nMax-Forwards: 70\r\n{ct}Content-Length: {len}\r\n\r\n{sdp}",
        ip = me.ip(),
        len = sdp.len()
    )
    .into_bytes()
}

/// kuma's 200 OK goes back to where the INVITE came from, and the call's audio
/// waits for the ACK that only a caller who received it can send. Before, one
/// INVITE with a forged source (UDP) and a victim's address in its SDP made
/// kuma stream a call's audio to the victim: several hundred times the
/// INVITE's size, until the silent line's timeout.
#[test]
fn no_audio_goes_out_before_the_ack() {
    let k = Server::start();
    let sig = UdpSocket::bind("127.0.0.1:0").unwrap();
    sig.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    media
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let me = sig.local_addr().unwrap();
    let invite = hostile_template("INVITE", k.sip, me, media.local_addr().unwrap().port(), 1);
    sig.send_to(&invite, k.sip).unwrap();
    let mut buf = [0u8; 8192];
    let start = Instant::now();
    let ok = loop {
        assert!(start.elapsed() < Duration::from_secs(10), "no 200 OK");
        if let Ok((n, _)) = sig.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with("SIP/2.0 200") {
                break text;
            }
        }
    };
    let heard = |within: Duration| {
        let mut buf = [0u8; 2048];
        let mut n = 0;
        let start = Instant::now();
        while start.elapsed() < within {
            if media.recv_from(&mut buf).is_ok() {
                n += 1;
            }
        }
        n
    };
    assert_eq!(heard(Duration::from_secs(2)), 0, "audio before the ACK");
    let to = ok
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("to:"))
        .unwrap();
    let ack = format!(
        "ACK sip:2000@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {me};rport;branch=z9hG4bK-ack-1\r\n\
         From: \"Awa\" <sip:+22376000000@{ip}>;tag=h1\r\n{to}\r\nCall-ID: hostile-1@{ip}\r\n\
         CSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        sip = k.sip,
        ip = me.ip()
    );
    sig.send_to(ack.as_bytes(), k.sip).unwrap();
    assert!(heard(Duration::from_secs(2)) > 20, "no audio after the ACK");
}

/// Every byte offset of `valid` with a multibyte character, an invalid UTF-8 byte,
/// a NUL, or line breaks inserted there, and `valid` cut there.
fn byte_mutations(valid: &[u8]) -> Vec<Vec<u8>> {
    let inserts: [&[u8]; 6] = [b"\xc3\xa9", b"\xff", b"\0", b"\r\n", b"\r", b"\n"];
    let mut out = Vec::new();
    for at in 0..=valid.len() {
        let (head, tail) = valid.split_at(at);
        for insert in inserts {
            out.push([head, insert, tail].concat());
        }
        out.push(head.to_vec());
    }
    out
}

/// Huge and negative numbers where SIP and SDP expect small ones.
fn huge_numbers(valid: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(valid).into_owned();
    let mut out = Vec::new();
    for (from, to) in [
        ("Content-Length: ", "Content-Length: 18446744073709551616"),
        ("Content-Length: ", "Content-Length: -1"),
        ("CSeq: ", "CSeq: 99999999999999999999999"),
        ("Max-Forwards: 70", "Max-Forwards: 4294967296"),
        ("m=audio ", "m=audio 99999999999 "),
        ("a=ptime:20", "a=ptime:18446744073709551615"),
        (
            "o=- 1 1",
            "o=- 99999999999999999999999 99999999999999999999999",
        ),
        (
            "\r\n\r\n",
            "\r\nExpires: 340282366920938463463374607431768211456\r\n\r\n",
        ),
    ] {
        if text.contains(from) {
            out.push(text.replacen(from, to, 1).into_bytes());
        }
    }
    out
}

/// Sends `request` from a fresh socket and waits for its response's status line.
fn sip_status(to: std::net::SocketAddr, method: &str, n: u32) -> Option<String> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let me = s.local_addr().unwrap();
    let req = hostile_template(method, to, me, 9, n);
    let mut buf = [0u8; 4096];
    for _ in 0..6 {
        s.send_to(&req, to).unwrap();
        if let Ok((len, _)) = s.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..len]).into_owned();
            return text.lines().next().map(str::to_owned);
        }
    }
    None
}

/// `OPTIONS sipé SIP/2.0` once stopped the whole server. That line, then every
/// byte-by-byte mutation of a valid INVITE and OPTIONS (multibyte, invalid UTF-8,
/// NUL, CR/LF, cut short) and huge numbers, over UDP and TCP, to a real `kuma
/// serve`: afterwards it still answers OPTIONS and a sipp call completes.
#[test]
fn hostile_datagrams_and_streams_never_stop_the_server() {
    use std::io::Write;
    if !have_sipp() {
        return;
    }
    let mut k = Server::start();
    // From another loopback address than sipp's: the INVITEs that parse are
    // calls, and the flood guard limits them by source.
    let attacker = UdpSocket::bind("127.0.0.2:0").unwrap();
    let media = UdpSocket::bind("127.0.0.2:0").unwrap();
    let (me, media_port) = (
        attacker.local_addr().unwrap(),
        media.local_addr().unwrap().port(),
    );
    let first = b"OPTIONS sip\xc3\xa9 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:9;rport;branch=z9hG4bK-1\r\n\
                  From: <sip:a@127.0.0.2>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: 1\r\nCSeq: 1 OPTIONS\r\n\r\n";
    attacker.send_to(first, k.sip).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(k.child_alive(), "kuma serve stopped on one datagram");
    assert_eq!(
        sip_status(k.sip, "OPTIONS", 1).as_deref(),
        Some("SIP/2.0 200 OK"),
        "kuma serve answers OPTIONS after `OPTIONS sipé SIP/2.0`"
    );

    let mut battery = Vec::new();
    let mut huge = Vec::new();
    for (i, method) in ["INVITE", "OPTIONS"].into_iter().enumerate() {
        let valid = hostile_template(method, k.sip, me, media_port, 100 + i as u32);
        battery.extend(byte_mutations(&valid));
        huge.extend(huge_numbers(&valid));
    }
    battery.extend(huge.iter().cloned());
    for (i, m) in battery.iter().enumerate() {
        attacker.send_to(m, k.sip).unwrap();
        // Paced, so that the socket buffer does not drop what is being tested.
        if i % 32 == 31 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    // The same over TCP, one stream after another: a stream kuma cannot frame is
    // closed, and the next message goes on a new connection.
    let mut tcp: Option<std::net::TcpStream> = None;
    let mut connections = 0;
    for m in battery.iter().step_by(3) {
        if tcp.is_none() {
            tcp = std::net::TcpStream::connect(k.sip).ok();
            connections += 1;
        }
        if let Some(s) = tcp.as_mut()
            && s.write_all(m).is_err()
        {
            tcp = None;
        }
    }
    drop(tcp);
    // Huge numbers each on a stream of its own: an unframeable one is closed.
    let mut closed = 0;
    for m in &huge {
        use std::io::Read;
        let mut s = std::net::TcpStream::connect(k.sip).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let _ = s.write_all(m);
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => {
                    closed += 1;
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    assert!(
        closed >= 2,
        "the bad Content-Lengths closed their streams ({closed})"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        k.child_alive(),
        "kuma serve stopped during the battery of {} messages",
        battery.len()
    );
    eprintln!(
        "sent {} mutated messages over UDP, a third of them over {connections} TCP connections",
        battery.len()
    );
    assert_eq!(
        sip_status(k.sip, "OPTIONS", 2).as_deref(),
        Some("SIP/2.0 200 OK")
    );
    assert!(
        k.sipp("options.xml", "2000", &["-t", "t1"])
            .status
            .success(),
        "OPTIONS over TCP"
    );
    let before = k.calls().len();
    assert!(
        k.sipp("poll_rfc4733.xml", "2000", &[]).status.success(),
        "a whole call still completes"
    );
    let until = Instant::now() + Duration::from_secs(10);
    while k.calls().len() <= before && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = k.results();
    assert!(count(&r, "q_region", "koulikoro") >= 1, "{r}");
    assert!(k.http_get("/healthz").ends_with("ok\n"));
}

/// Logs for a file or a shipper: no colour codes when standard error is not a
/// terminal, one JSON object a line with `--log-format json`, and every line of a
/// call with its call id and the caller's pseudonym, never the number.
#[test]
fn call_logs_carry_the_call_and_the_pseudonym_never_the_number() {
    if !have_sipp() {
        return;
    }
    // The poll open whatever the day: the example's window is closed from
    // Monday 08:30 to Tuesday 19:00 (and Thursday 19:00 to Saturday 08:30),
    // when the call would hear "poll closed" instead of the questions.
    let k = Server::start_with_env(
        &common::open_poll_campaigns(),
        &["--log-format", "json"],
        &[("KUMA_LOG", "kuma=debug")],
    );
    assert!(k.sipp("poll_rfc4733.xml", "2000", &[]).status.success());
    k.wait_calls(1);
    let log = std::fs::read_to_string(&k.log).unwrap();
    assert!(!log.contains('\u{1b}'), "no ANSI escape codes");
    assert!(
        !log.contains("22370123456"),
        "the caller's number is in the log"
    );
    let mut call_lines = 0;
    for line in log.lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if v["span"]["name"] == "call" {
            call_lines += 1;
            assert!(v["span"]["call"].is_string(), "{line}");
            assert!(
                v["span"]["caller"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("c_")),
                "{line}"
            );
        }
    }
    assert!(call_lines >= 5, "{call_lines} lines of the call in:\n{log}");
}

/// `/metrics` tells how a station's line is used: with a token set, only
/// requests that carry it get it.
#[test]
fn metrics_need_their_token_when_one_is_set() {
    use std::io::{Read, Write};
    let k = Server::start_with_env(
        &repo().join("campaigns"),
        &[],
        &[("KUMA_METRICS_TOKEN", "m3trics-t0ken-for-tests")],
    );
    let get = |auth: &str| {
        let mut s = std::net::TcpStream::connect(k.http).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: kuma\r\n{auth}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    };
    assert!(get("").starts_with("HTTP/1.1 403"), "{}", get(""));
    assert!(get("Authorization: Bearer wrong\r\n").starts_with("HTTP/1.1 403"));
    let ok = get("Authorization: Bearer m3trics-t0ken-for-tests\r\n");
    assert!(
        ok.starts_with("HTTP/1.1 200") && ok.contains("kuma_calls_active"),
        "{ok}"
    );
}
