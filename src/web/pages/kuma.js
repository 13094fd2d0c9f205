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
    var total = q.answered || 0;
    var answered = document.getElementById("answered");
    answered.textContent = total.toLocaleString(document.documentElement.lang);
    answered.dataset.count = total;
    q.choices.forEach(function (c) {
      var li = board.querySelector('li[data-choice="' + CSS.escape(c.id) + '"]');
      if (!li) return;
      var count = li.querySelector(".count");
      count.textContent = c.count.toLocaleString(document.documentElement.lang);
      count.dataset.count = c.count;
      li.querySelector(".pct").textContent = total ? Math.round(c.count * 100 / total) + "%" : "–";
      li.querySelector(".fill").style.width = (total ? Math.floor(c.count * 100 / total) : 0) + "%";
    });
    status.textContent = "● " + labels.live;
  });
}

document.addEventListener("DOMContentLoaded", function () {
  var board = document.getElementById("board");
  if (board) onAirBoard(board);
  var sim = document.getElementById("simulator");
  if (sim && window.kumaSimulator) window.kumaSimulator(sim);
});
