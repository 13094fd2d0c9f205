//! The studio line with a real SIP peer (sipp): a broadcaster calls the
//! studio number, enters the PIN `kuma token pin` printed with RFC 4733 keys,
//! picks the language and the prompt, records speech streamed as RTP (a
//! recording of French speech, 8 kHz µ-law), keeps it, and the campaign's
//! prompt is the new one: on disk (the old one in the history) and on
//! `/audio/…` at once. A wrong PIN gets nowhere. Every port is chosen at run
//! time; the campaign and its recordings are a copy, never the repository's.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, copy_dir, have_sipp, http, repo};

const CAMPAIGN: &str = "stop-trafficking-mali";
const STUDIO: &str = "2999";

/// A copy of the example campaign and its recordings, and a kuma.toml that
/// opens the studio line on [`STUDIO`].
struct Station {
    dir: tempfile::TempDir,
}

impl Station {
    fn new() -> Station {
        let dir = tempfile::tempdir().unwrap();
        let campaigns = dir.path().join("campaigns");
        std::fs::create_dir_all(&campaigns).unwrap();
        std::fs::copy(
            repo().join("campaigns").join(format!("{CAMPAIGN}.toml")),
            campaigns.join(format!("{CAMPAIGN}.toml")),
        )
        .unwrap();
        copy_dir(
            &repo().join("audio").join(CAMPAIGN),
            &dir.path().join("audio").join(CAMPAIGN),
        );
        std::fs::write(
            dir.path().join("kuma.toml"),
            format!("studio_numbers = [\"{STUDIO}\"]\nstudio_language = \"fr\"\n"),
        )
        .unwrap();
        Station { dir }
    }

    fn campaigns(&self) -> PathBuf {
        self.dir.path().join("campaigns")
    }

    fn prompt_dir(&self, lang: &str) -> PathBuf {
        self.dir.path().join("audio").join(CAMPAIGN).join(lang)
    }

    fn serve(&self) -> Server {
        let config = self.dir.path().join("kuma.toml");
        Server::start_with_env(
            &self.campaigns(),
            &[],
            &[
                ("KUMA_CONFIG", config.to_str().unwrap()),
                ("KUMA_LOG", "kuma=info"),
            ],
        )
    }
}

fn kuma(s: &Server, campaigns: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kuma"))
        .args(args)
        .arg("--campaigns")
        .arg(campaigns)
        .arg("--data")
        .arg(&s.data)
        .arg("--database")
        .arg(format!("sqlite://{}/kuma.db", s.data.display()))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A broadcaster token named `presenter` and its studio PIN.
fn presenter_pin(s: &Server, campaigns: &Path) -> String {
    let args = [
        "token",
        "create",
        "--role",
        "broadcaster",
        "--name",
        "presenter",
    ];
    let out = kuma(s, campaigns, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = kuma(s, campaigns, &["token", "pin", "presenter"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pin = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        pin.len() == 6 && pin.chars().all(|c| c.is_ascii_digit()),
        "{pin}"
    );
    pin
}

/// What the broadcaster's phone does after the call is answered.
enum Step {
    /// An RFC 4733 key (sipp sends only the first of keys pressed close
    /// together: each is followed by a pause).
    Key(char),
    Pause(u32),
    /// This raw 8 kHz µ-law file, as the call's RTP.
    Stream(&'static str),
}

/// A sipp scenario (written into the server's folder): the INVITE to the
/// studio number with PCMU and telephone-event, the steps, then either a BYE
/// from the phone (`hang_up`) or waiting for kuma's.
fn scenario(s: &Server, name: &str, steps: &[Step], hang_up: bool) -> PathBuf {
    let mut body = String::new();
    for step in steps {
        body += &match step {
            Step::Key(k) => format!(
                "  <nop><action><exec play_dtmf=\"{k}\"/></action></nop>\n  <pause milliseconds=\"1200\"/>\n"
            ),
            Step::Pause(ms) => format!("  <pause milliseconds=\"{ms}\"/>\n"),
            Step::Stream(file) => {
                format!("  <nop><action><exec rtp_stream=\"{file},1,0\"/></action></nop>\n")
            }
        };
    }
    let end = if hang_up {
        r#"  <send retrans="500">
    <![CDATA[
      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: "presenter" <sip:+22370999999@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: sip:+22370999999@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
"#
    } else {
        r#"  <recv request="BYE" timeout="30000"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: sip:+22370999999@[local_ip]:[local_port]
      Content-Length: 0
    ]]>
  </send>
"#
    };
    let xml = format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="kuma studio line">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: "presenter" <sip:+22370999999@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:+22370999999@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 96
      a=rtpmap:0 PCMU/8000
      a=rtpmap:96 telephone-event/8000
      a=fmtp:96 0-15
      a=ptime:20
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: "presenter" <sip:+22370999999@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: sip:+22370999999@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <pause milliseconds="1500"/>
{body}{end}  <ResponseTimeRepartition value="10, 20, 50, 100, 500"/>
</scenario>
"#
    );
    let path = s.dir.path().join(name);
    std::fs::write(&path, xml).unwrap();
    path
}

fn pin_steps(pin: &str) -> Vec<Step> {
    pin.chars().map(Step::Key).collect()
}

fn get_audio(s: &Server, path: &str) -> Vec<u8> {
    let reply = http(s.http, "GET", path, &[], None);
    assert_eq!(reply.status, 200, "{path}");
    reply.body
}

fn log_of(s: &Server) -> String {
    std::fs::read_to_string(&s.log).unwrap_or_default()
}

/// Waits until the server's log holds `what`.
fn wait_log(s: &Server, what: &str) -> String {
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let log = log_of(s);
        if log.contains(what) || Instant::now() > until {
            return log;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_broadcaster_replaces_a_prompt_by_phone() {
    if !have_sipp() {
        return;
    }
    let station = Station::new();
    let s = station.serve();
    let pin = presenter_pin(&s, &station.campaigns());
    let served = "/audio/stop-trafficking-mali/fr/choose_language.wav";
    let before_file = std::fs::read(station.prompt_dir("fr").join("choose_language.wav")).unwrap();
    let before_served = get_audio(&s, served);
    // Three seconds of French speech, as the phone's RTP.
    let speech = std::fs::read(repo().join("src/audio/dtmf/testdata/talkoff-fr-8k.ulaw")).unwrap();
    std::fs::write(
        s.dir.path().join("speech.ulaw"),
        speech.get(8000..8000 * 4).unwrap(),
    )
    .unwrap();
    let mut steps = pin_steps(&pin);
    steps.extend([
        // One campaign: straight to the languages (bm, fr, snk): 2 is French.
        Step::Key('2'),
        // The prompts, in the campaign's order: 1 is `choose_language`.
        Step::Key('1'),
        // Heard as callers hear it; 1 records (after "speak after the beep").
        Step::Key('1'),
        Step::Pause(4500),
        Step::Stream("speech.ulaw"),
        Step::Pause(3500),
        // # ends the take; it is played back; 1 keeps it.
        Step::Key('#'),
        Step::Key('1'),
        Step::Pause(5000),
    ]);
    let xml = scenario(&s, "studio_keep.xml", &steps, true);
    let out = s.sipp(xml.to_str().unwrap(), STUDIO, &[]);
    assert!(out.status.success(), "the studio call went through");
    let log = wait_log(&s, "prompt recorded");
    assert!(log.contains("prompt recorded"), "{log}");
    assert!(log.contains("studio line on numbers [2999] (fr)"), "{log}");
    assert!(
        log.lines().any(|l| l.contains("prompt recorded")
            && l.contains("presenter")
            && l.contains("phone")),
        "who and how: {log}"
    );
    assert!(
        !log.contains("22370999999"),
        "the caller's number is never logged"
    );
    // The new take is the prompt, as a WAV; the old one is in the history.
    let after_file = std::fs::read(station.prompt_dir("fr").join("choose_language.wav")).unwrap();
    assert_ne!(after_file, before_file, "the prompt's file changed");
    assert_eq!(after_file.get(..4), Some(&b"RIFF"[..]));
    let history = s
        .data
        .join("history")
        .join(CAMPAIGN)
        .join("recordings")
        .join("fr");
    let kept: Vec<_> = std::fs::read_dir(&history).unwrap().flatten().collect();
    assert_eq!(kept.len(), 1, "the old recording is kept");
    assert_eq!(std::fs::read(kept[0].path()).unwrap(), before_file);
    // Served at once; the other languages untouched; no listener call stored.
    // Served once the catalog has reloaded (the log line comes just before).
    let deadline = Instant::now() + Duration::from_secs(60);
    while get_audio(&s, served) == before_served {
        assert!(Instant::now() < deadline, "/audio serves the new one");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = kuma(&s, &station.campaigns(), &["check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results = common::kuma_json(
        &station.campaigns(),
        &format!("sqlite://{}/kuma.db", s.data.display()),
        &s.data,
        &["results", CAMPAIGN, "--format", "json"],
    );
    assert_eq!(
        results["calls"], 0,
        "a studio call is not a listener's call"
    );
    let takes = std::fs::read_dir(s.data.join("studio")).map_or(0, |d| d.count());
    assert_eq!(takes, 0, "the take's scratch file went with the call");
}

#[test]
fn a_wrong_pin_gets_nowhere_and_the_line_hangs_up() {
    if !have_sipp() {
        return;
    }
    let station = Station::new();
    let s = station.serve();
    let pin = presenter_pin(&s, &station.campaigns());
    let wrong: String = pin
        .chars()
        .map(|c| if c == '1' { '2' } else { '1' })
        .collect();
    let before = std::fs::read(station.prompt_dir("fr").join("choose_language.wav")).unwrap();
    let mut steps = Vec::new();
    for attempt in 1..=3 {
        steps.extend(pin_steps(&wrong));
        // (sipp takes kuma's BYE as unexpected during a pause.)
        if attempt < 3 {
            steps.push(Step::Pause(1500));
        }
    }
    let xml = scenario(&s, "studio_wrong_pin.xml", &steps, false);
    let out = s.sipp(xml.to_str().unwrap(), STUDIO, &[]);
    assert!(out.status.success(), "kuma hung up after three wrong PINs");
    let log = wait_log(&s, "studio call ended");
    assert_eq!(log.matches("studio PIN refused").count(), 3, "{log}");
    assert!(!log.contains("studio PIN accepted"), "{log}");
    assert!(
        !log.lines().any(|l| l.contains("PIN") && l.contains(&wrong)),
        "the PIN tried is not logged"
    );
    assert_eq!(
        std::fs::read(station.prompt_dir("fr").join("choose_language.wav")).unwrap(),
        before
    );
}
