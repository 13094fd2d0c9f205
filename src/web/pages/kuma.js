// kuma's one script. Pages work without it except where they cannot: the
// on-air board's live updates (EventSource on the results stream, authenticated
// by the login cookie) and the call simulator (audio and keys).
"use strict";

function onAirBoard(board) {
  var labels = JSON.parse(document.getElementById("board-labels").textContent);
  var status = document.getElementById("live-status");
  var question = board.dataset.question;
  var source = new EventSource(board.dataset.live);
  source.onopen = function () { status.textContent = "● " + labels.live; };
  source.onerror = function () { status.textContent = labels.reconnecting; };
  source.addEventListener("results", function (e) {
    var r = JSON.parse(e.data);
    var q = (r.questions || []).filter(function (x) { return x.id === question; })[0];
    if (!q) return;
    // A masked count is a string ("<5", "masked"): shown as it is (as "*" for
    // "masked", like the page), with no percentage and no bar.
    var text = function (n) {
      return typeof n === "number" ? n.toLocaleString(document.documentElement.lang)
        : n === "masked" ? "*" : String(n);
    };
    var total = typeof q.answered === "number" ? q.answered : 0;
    var answered = document.getElementById("answered");
    answered.textContent = text(q.answered);
    answered.dataset.count = q.answered;
    q.choices.forEach(function (c) {
      var li = board.querySelector('li[data-choice="' + CSS.escape(c.id) + '"]');
      if (!li) return;
      var n = typeof c.count === "number" ? c.count : 0;
      var count = li.querySelector(".count");
      count.textContent = text(c.count);
      count.dataset.count = c.count;
      li.querySelector(".pct").textContent = total && typeof c.count === "number" ? Math.round(n * 100 / total) + "%" : "–";
      li.querySelector(".fill").style.width = (total ? Math.floor(n * 100 / total) : 0) + "%";
    });
    status.textContent = "● " + labels.live;
  });
}

// The call simulator: sends what the caller does to the real flow engine
// (POST …/simulate, stateless: the signed `session` comes back each step) and
// does what the engine asks: plays prompts one after another, waits for keys,
// sends `timeout` at the engine's deadline. Steps are sent one at a time, in
// order. The page's state is mirrored in data-* attributes (for the tests and
// for styling).
window.kumaSimulator = function (root) {
  var labels = JSON.parse(document.getElementById("sim-labels").textContent);
  var el = function (id) { return document.getElementById(id); };
  var screen = el("sim-screen"), audio = el("sim-audio"), extra = el("sim-extra");
  var session = null, waiting = null, ended = true, queue = [], generation = 0;
  var timer = null, recordStart = 0, chain = Promise.resolve();

  function say(text, cls) {
    var p = document.createElement("p");
    p.textContent = text;
    if (cls) p.className = cls;
    screen.appendChild(p);
    screen.scrollTop = screen.scrollHeight;
  }
  function button(text, onclick) {
    var b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.onclick = onclick;
    extra.appendChild(b);
  }
  function controls() {
    root.dataset.waiting = waiting || "";
    root.dataset.ended = ended ? "1" : "0";
    el("sim-start").disabled = !ended;
    el("sim-hangup").disabled = ended;
    el("sim-skip").disabled = ended || waiting !== "prompt";
    el("sim-wait").disabled = ended || waiting !== "key";
    root.querySelectorAll(".key").forEach(function (k) { k.disabled = ended; });
  }
  function silence() {
    generation++;
    queue = [];
    audio.pause();
  }
  function playNext() {
    var mine = generation;
    if (!queue.length) { send({ type: "prompt_finished" }); return; }
    var p = queue.shift();
    var next = function () { if (mine === generation) playNext(); };
    audio.onended = next;
    audio.onerror = next;
    audio.src = p.url;
    var played = audio.play();
    if (played && played.catch) played.catch(function () { /* no sound here: the error event moves on */ });
  }
  function send(event) {
    root.dataset.busy = "1";
    chain = chain.then(function () { return step(event); }).then(function () {
      root.dataset.busy = "0";
    });
  }
  function step(event) {
    if (ended && event.type !== "start") return null;
    clearTimeout(timer);
    extra.textContent = "";
    return fetch(root.dataset.api, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ session: session, event: event })
    }).then(function (res) {
      return res.json().then(function (body) {
        if (!res.ok) throw new Error(body.error || res.status);
        handle(body);
      });
    }).catch(function (e) {
      say(labels.error + " " + e.message, "error");
      silence();
      ended = true;
      waiting = null;
      controls();
    });
  }
  function handle(r) {
    session = r.session;
    waiting = r.waiting_for;
    ended = r.ended;
    root.dataset.node = r.node || "";
    var fresh = false; // a new `play`: otherwise the current one goes on
    r.actions.forEach(function (a) {
      switch (a.type) {
        case "enter": say("[" + a.node + "]", "muted"); break;
        case "play":
          silence();
          fresh = true;
          queue = a.prompts.slice();
          a.prompts.forEach(function (p) {
            say("▶ " + p.language + "/" + p.name + (p.transcript ? " : " + p.transcript : ""));
          });
          break;
        case "stop_playback": silence(); break;
        // Replay keys ([replay]): within the recording playing, held to it.
        case "seek":
          audio.currentTime = Math.max(0, Math.min(audio.duration || 0, audio.currentTime + a.seconds));
          say((a.seconds < 0 ? "⏪ " : "⏩ ") + Math.abs(a.seconds) + " s");
          break;
        case "pause": audio.pause(); say("⏸"); break;
        case "resume": audio.play(); say("▶"); break;
        case "language": say("🗣 " + a.language); break;
        case "answer": say("✔ " + a.question + " = " + a.choice + " (" + labels.answer + ")", "answer"); break;
        case "transfer": say("☎ " + labels.transfer + " " + a.to); break;
        case "record": say("● " + labels.recording); break;
        case "finished": say(labels.ended + " (" + a.outcome + ")", "ended"); break;
      }
    });
    if (ended) silence();
    else if (waiting === "prompt") { if (fresh) playNext(); }
    else if (waiting === "key" && (r.timeout_ms != null || r.deadline)) {
      var wait = r.timeout_ms != null ? r.timeout_ms : Date.parse(r.deadline) - Date.parse(r.at);
      timer = setTimeout(function () { send({ type: "timeout" }); }, Math.max(0, wait));
    } else if (waiting === "record") {
      recordStart = Date.now();
      button(labels.stop_recording, stopRecording);
    } else if (waiting === "transfer") {
      button(labels.helpline_answers, function () { send({ type: "hangup" }); });
      button(labels.helpline_fails, function () { send({ type: "transfer_failed" }); });
    }
    controls();
  }
  function stopRecording() {
    send({ type: "recording_finished", seconds: (Date.now() - recordStart) / 1000 });
  }

  el("sim-start").onclick = function () {
    session = null;
    ended = false;
    screen.textContent = "";
    var at = el("sim-at").value;
    var start = { type: "start" };
    if (at) start.at = new Date(at).toISOString();
    send(start);
  };
  el("sim-hangup").onclick = function () { silence(); send({ type: "hangup" }); };
  el("sim-skip").onclick = function () { silence(); send({ type: "prompt_finished" }); };
  el("sim-wait").onclick = function () { send({ type: "timeout" }); };
  root.querySelectorAll(".key").forEach(function (k) {
    k.onclick = function () {
      if (waiting === "record") { stopRecording(); return; }
      send({ type: "key", key: k.dataset.key });
    };
  });
  controls();
};

document.addEventListener("DOMContentLoaded", function () {
  var board = document.getElementById("board");
  if (board) onAirBoard(board);
  // The results filters apply as soon as they change (the button stays for
  // browsers without JavaScript).
  document.querySelectorAll("form.filters select").forEach(function (s) {
    s.addEventListener("change", function () { s.form.submit(); });
  });
  var sim = document.getElementById("simulator");
  if (sim && window.kumaSimulator) window.kumaSimulator(sim);
});
