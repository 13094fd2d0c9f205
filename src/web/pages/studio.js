// The studio's script (schedule editor and prompts), loaded by those pages only.
// Every change goes through the studio API, which checks it like `kuma check`
// and writes the campaign file; this script only gathers what the broadcaster
// typed, shows what the server answers, and records from the microphone.
"use strict";

(function () {
  var labelsEl = document.getElementById("studio-labels");
  var labels = labelsEl ? JSON.parse(labelsEl.textContent) : {};
  var form = document.getElementById("schedule");
  if (form) scheduleEditor(form, labels);
  document.querySelectorAll("ul.prompts[data-api]").forEach(function (list) { promptsPage(list, labels); });
  var nodes = document.getElementById("nodes");
  if (nodes) nodesEditor(nodes, labels);
})();

// This week's question: each question or message node saved on its own
// (PUT …/nodes/{node}, If-Match), moved (`after`), removed (DELETE), or added
// after its prompt was recorded in every language. After a change the page is
// loaded again: the server's file is the truth.
function nodesEditor(root, labels) {
  var api = root.dataset.api;
  var errorEl = document.getElementById("nodes-error");

  function fields(box) {
    var get = function (name) { var e = box.querySelector('[data-field="' + name + '"]'); return e ? e.value.trim() : ""; };
    var kind = get("kind");
    var prompts = get("prompt").split(",").map(function (p) { return p.trim(); }).filter(Boolean);
    var body = { kind: kind, prompt: prompts.length === 1 ? prompts[0] : prompts };
    if (kind === "question") {
      body.choices = [];
      box.querySelectorAll("li.choice").forEach(function (li) {
        var key = li.querySelector('[data-field="key"]').value.trim();
        var id = li.querySelector('[data-field="choice"]').value.trim();
        if (key || id) body.choices.push({ key: key, id: id });
      });
      var fail = get("on_fail");
      body.on_fail = fail === "" ? null : fail;
    }
    var next = get("next");
    body.next = next === "" ? null : next;
    return body;
  }

  function send(method, node, body, status) {
    status.textContent = labels.uploading;
    errorEl.textContent = "";
    var init = { method: method, headers: { "If-Match": '"' + root.dataset.etag + '"' } };
    if (body) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    return fetch(api + "/" + encodeURIComponent(node), init).then(function (r) {
      return r.json().then(function (j) {
        if (r.status === 200) {
          root.dataset.etag = j.etag;
          status.textContent = labels.saved;
          root.dataset.saved = j.etag;
          location.reload();
          return;
        }
        var msg = (r.status === 409 ? labels.conflict + " " : "") + j.error;
        root.querySelectorAll("[aria-invalid]").forEach(function (e) { e.removeAttribute("aria-invalid"); });
        var box = status.closest(".node");
        var bad = box && j.field && (box.querySelector('[data-field="' + j.field + '"]') ||
          (j.field === "choices" ? box.querySelector("div.choices") : null));
        if (bad) bad.setAttribute("aria-invalid", "true");
        status.textContent = msg;
        errorEl.textContent = msg;
        root.dataset.refused = String(Date.now());
      });
    });
  }

  // The node `steps` places before or after `li` in the list, skipping none.
  function sibling(li, steps) {
    var all = Array.prototype.slice.call(root.querySelectorAll("ol.nodes > li.node"));
    var i = all.indexOf(li) + steps;
    return i >= 0 && i < all.length ? all[i].dataset.node : null;
  }

  root.addEventListener("change", function (e) {
    if (e.target.dataset.field !== "kind") return;
    var box = e.target.closest(".node");
    var question = e.target.value === "question";
    box.querySelector("div.choices").hidden = !question;
    box.querySelector("label.on-fail").hidden = !question;
  });

  root.addEventListener("click", function (e) {
    var t = e.target;
    var box = t.closest(".node");
    if (!box) return;
    var row = t.closest("p");
    var status = (row && row.querySelector(".status")) || box.querySelector(".status");
    if (t.classList.contains("add-choice")) {
      var ul = box.querySelector("ul.choices");
      ul.appendChild(document.getElementById("choice-row").content.cloneNode(true));
      var rows = ul.querySelectorAll("li.choice");
      rows[rows.length - 1].querySelector('[data-field="key"]').value = String(rows.length % 10);
    } else if (t.classList.contains("remove-choice")) {
      t.closest("li.choice").remove();
    } else if (t.classList.contains("save")) {
      send("PUT", box.dataset.node, fields(box), status);
    } else if (t.classList.contains("delete")) {
      send("DELETE", box.dataset.node, null, status);
    } else if (t.classList.contains("up") || t.classList.contains("down")) {
      // Up: after the node two places before; down: after the next one.
      var after = t.classList.contains("up") ? sibling(box, -2) : sibling(box, 1);
      if (!after) return;
      var body = fields(box);
      delete body.next;
      body.after = after;
      send("PUT", box.dataset.node, body, status);
    } else if (t.id === "add-node") {
      var body2 = fields(box);
      body2.after = box.querySelector('[data-field="after"]').value;
      send("PUT", box.querySelector('[data-field="id"]').value.trim(), body2, status);
    }
  });

  // The new question's recordings are made under its prompt's name.
  var newNode = document.getElementById("new-node");
  var promptInput = newNode.querySelector('[data-field="prompt"]');
  var idInput = newNode.querySelector('[data-field="id"]');
  function promptName() {
    newNode.querySelectorAll("li.prompt").forEach(function (li) {
      li.dataset.prompt = promptInput.value.split(",")[0].trim();
    });
  }
  idInput.addEventListener("input", function () {
    if (!promptInput.dataset.typed) { promptInput.value = idInput.value.trim(); promptName(); }
  });
  promptInput.addEventListener("input", function () { promptInput.dataset.typed = "1"; promptName(); });
  root.dataset.ready = "true";
}

function scheduleEditor(form, labels) {
  var api = form.dataset.api;
  var slots = document.getElementById("slots");
  var errorEl = document.getElementById("schedule-error");
  var status = document.getElementById("schedule-status");
  var seq = 0, timer = null;

  function field(name) { return form.querySelector('[data-field="' + name + '"]:not(.slot *)'); }
  function value(name) { var v = field(name).value.trim(); return v === "" ? null : v; }

  function body() {
    var broadcasts = [];
    slots.querySelectorAll("li.slot").forEach(function (li) {
      var time = li.querySelector('[data-field="time"]');
      if (li.dataset.kind === "cron") {
        broadcasts.push({ cron: li.querySelector('[data-field="cron"]').textContent });
      } else if (li.dataset.kind === "once") {
        broadcasts.push({ date: li.querySelector('[data-field="date"]').value, time: time.value });
      } else {
        var days = [];
        li.querySelectorAll("input[data-day]").forEach(function (c) { if (c.checked) days.push(c.dataset.day); });
        broadcasts.push({ days: days, time: time.value });
      }
    });
    return {
      timezone: field("timezone").value.trim(),
      broadcasts: broadcasts,
      poll_window: value("poll_window"),
      from: value("from"),
      until: value("until"),
    };
  }

  // The element a `field` of an error names: `timezone`, `broadcasts[1].date`…
  function marked(name) {
    if (!name) return null;
    var m = /^broadcasts\[(\d+)\](?:\.(\w+))?(?:\[(\d+)\])?/.exec(name);
    if (!m) return field(name);
    var li = slots.querySelectorAll("li.slot")[Number(m[1])];
    if (!li || !m[2]) return li || null;
    if (m[2] === "days") return li.querySelectorAll("input[data-day]")[Number(m[3] || 0)] || li;
    return li.querySelector('[data-field="' + m[2] + '"]') || li;
  }

  function showError(reply) {
    form.querySelectorAll("[aria-invalid]").forEach(function (e) { e.removeAttribute("aria-invalid"); });
    errorEl.textContent = reply ? reply.error : "";
    form.dataset.valid = reply ? "false" : "true";
    var el = reply && marked(reply.field);
    if (el) el.setAttribute("aria-invalid", "true");
  }

  function showPreview(reply) {
    var next = document.getElementById("next");
    next.textContent = "";
    (reply.next_broadcasts.length ? reply.next_broadcasts.map(function (b) { return b.text; }) : [labels.none])
      .forEach(function (t) { var li = document.createElement("li"); li.textContent = t; next.appendChild(li); });
    var poll = document.getElementById("poll-state");
    poll.dataset.open = String(reply.poll.open);
    poll.textContent = reply.poll.open ? labels.open : labels.closed;
  }

  function send(method, url, headers) {
    headers["Content-Type"] = "application/json";
    return fetch(url, { method: method, headers: headers, body: JSON.stringify(body()) })
      .then(function (r) { return r.json().then(function (j) { return { status: r.status, json: j }; }); });
  }

  function check() {
    var mine = ++seq;
    status.textContent = "";
    send("POST", api + "/check", {}).then(function (r) {
      if (mine !== seq) return;
      if (r.status === 200) { showError(null); showPreview(r.json); } else showError(r.json);
      form.dataset.checked = String(mine);
    });
  }

  function later() { clearTimeout(timer); timer = setTimeout(check, 250); }

  form.addEventListener("input", later);
  form.addEventListener("change", later);
  slots.addEventListener("click", function (e) {
    if (e.target.classList.contains("remove")) { e.target.closest("li.slot").remove(); later(); }
  });
  ["weekly", "once"].forEach(function (kind) {
    document.getElementById("add-" + kind).addEventListener("click", function () {
      slots.appendChild(document.getElementById("slot-" + kind).content.cloneNode(true));
      later();
    });
  });
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    ++seq;
    send("PUT", api, { "If-Match": '"' + form.dataset.etag + '"' }).then(function (r) {
      if (r.status === 200) {
        form.dataset.etag = r.json.etag;
        showError(null);
        showPreview(r.json);
        status.textContent = labels.saved;
        form.dataset.saved = r.json.etag;
      } else if (r.status === 409) {
        showError({ error: labels.conflict + " " + r.json.error });
      } else {
        showError(r.json);
      }
    });
  });
  form.dataset.ready = "true";
}

function promptsPage(list, labels) {
  var api = list.dataset.api;

  function upload(li, blob, type) {
    var status = li.querySelector(".status");
    status.textContent = labels.uploading;
    li.dataset.uploaded = "";
    return fetch(api + "/" + encodeURIComponent(li.dataset.language) + "/" + encodeURIComponent(li.dataset.prompt), {
      method: "PUT",
      headers: { "Content-Type": type || "application/octet-stream" },
      body: blob,
    }).then(function (r) {
      return r.json().then(function (j) {
        if (r.status !== 200) {
          status.textContent = j.error;
          li.dataset.uploaded = "refused";
          return;
        }
        li.dataset.state = j.state;
        var stateEl = li.querySelector(".state");
        if (stateEl) stateEl.textContent = j.state;
        var audio = li.querySelector("audio");
        if (audio && j.audio) audio.src = j.audio + "?v=" + Date.now();
        status.textContent = labels.saved + (j.duration_ms ? " · " + (j.duration_ms / 1000).toFixed(1) + " s" : "") +
          (j.reason ? " · " + j.reason : "");
        li.dataset.uploaded = "ok";
        li.dataset.durationMs = j.duration_ms;
      });
    });
  }

  list.addEventListener("change", function (e) {
    if (!e.target.matches("input[data-upload]") || !e.target.files.length) return;
    if (!e.target.closest("li.prompt").dataset.prompt) return;
    var file = e.target.files[0];
    upload(e.target.closest("li.prompt"), file, file.type);
  });

  // Recording: the microphone's samples, kept as they come, with a level meter;
  // stop, listen back, retake, or keep (sent as a 16-bit WAV).
  var rec = null;

  function stopRecording() {
    if (!rec) return;
    rec.stream.getTracks().forEach(function (t) { t.stop(); });
    rec.node.disconnect();
    var li = rec.li, done = rec;
    rec = null;
    done.ctx.close();
    li.take = { chunks: done.chunks, rate: done.ctx.sampleRate };
    li.querySelector(".record").textContent = labels.record;
    li.querySelector(".level").hidden = true;
    ["listen", "retake", "keep"].forEach(function (b) { li.querySelector("." + b).hidden = false; });
    li.dataset.recording = "taken";
  }

  function startRecording(li) {
    var status = li.querySelector(".status");
    navigator.mediaDevices.getUserMedia({ audio: true }).then(function (stream) {
      var ctx = new AudioContext();
      var source = ctx.createMediaStreamSource(stream);
      var node = ctx.createScriptProcessor(4096, 1, 1);
      var mute = ctx.createGain();
      mute.gain.value = 0;
      var meter = li.querySelector(".level");
      meter.hidden = false;
      rec = { li: li, stream: stream, ctx: ctx, node: node, chunks: [] };
      var mine = rec;
      node.onaudioprocess = function (e) {
        var data = new Float32Array(e.inputBuffer.getChannelData(0));
        mine.chunks.push(data);
        var sum = 0;
        for (var i = 0; i < data.length; i++) sum += data[i] * data[i];
        meter.value = Math.min(1, Math.sqrt(sum / data.length) * 4);
        li.dataset.level = meter.value.toFixed(3);
      };
      source.connect(node);
      node.connect(mute);
      mute.connect(ctx.destination);
      li.querySelector(".record").textContent = labels.stop;
      li.dataset.recording = "on";
    }).catch(function (e) { status.textContent = labels.mic + " " + e.message; });
  }

  function wav(take) {
    var n = take.chunks.reduce(function (a, c) { return a + c.length; }, 0);
    var buf = new DataView(new ArrayBuffer(44 + n * 2));
    var str = function (o, s) { for (var i = 0; i < s.length; i++) buf.setUint8(o + i, s.charCodeAt(i)); };
    str(0, "RIFF"); buf.setUint32(4, 36 + n * 2, true); str(8, "WAVE");
    str(12, "fmt "); buf.setUint32(16, 16, true); buf.setUint16(20, 1, true); buf.setUint16(22, 1, true);
    buf.setUint32(24, take.rate, true); buf.setUint32(28, take.rate * 2, true);
    buf.setUint16(32, 2, true); buf.setUint16(34, 16, true);
    str(36, "data"); buf.setUint32(40, n * 2, true);
    var o = 44;
    take.chunks.forEach(function (c) {
      for (var i = 0; i < c.length; i++, o += 2) {
        var s = Math.max(-1, Math.min(1, c[i]));
        buf.setInt16(o, s < 0 ? s * 0x8000 : s * 0x7fff, true);
      }
    });
    return new Blob([buf.buffer], { type: "audio/wav" });
  }

  list.addEventListener("click", function (e) {
    var li = e.target.closest("li.prompt");
    if (!li) return;
    if (e.target.classList.contains("record")) {
      if (rec && rec.li === li) stopRecording();
      else { stopRecording(); startRecording(li); }
    } else if (e.target.classList.contains("retake")) {
      startRecording(li);
    } else if (e.target.classList.contains("listen") && li.take) {
      var ctx = new AudioContext();
      var n = li.take.chunks.reduce(function (a, c) { return a + c.length; }, 0);
      var b = ctx.createBuffer(1, Math.max(1, n), li.take.rate);
      var ch = b.getChannelData(0), o = 0;
      li.take.chunks.forEach(function (c) { ch.set(c, o); o += c.length; });
      var src = ctx.createBufferSource();
      src.buffer = b;
      src.connect(ctx.destination);
      src.onended = function () { ctx.close(); };
      src.start();
    } else if (e.target.classList.contains("keep") && li.take) {
      upload(li, wav(li.take), "audio/wav").then(function () {
        if (li.dataset.uploaded === "ok") {
          ["listen", "retake", "keep"].forEach(function (b) { li.querySelector("." + b).hidden = true; });
        }
      });
    }
  });
  list.dataset.ready = "true";
}
