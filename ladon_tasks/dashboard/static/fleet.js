// The counts in the header (every second, whatever the view) and the Queues and Workers
// views (each polled while it is shown). Helpers come from dashboard.js (window.LadonTasks);
// every value reaches the page through textContent, never through HTML parsing.
(function () {
  "use strict";

  var POLL_MS = 1000;
  var T = window.LadonTasks;
  var el = T.el, setText = T.setText;
  var $ = function (id) { return document.getElementById(id); };
  var timer = null;

  async function getJSON(path) {
    var response = await fetch(path, { headers: { "Accept": "application/json" }, credentials: "same-origin",
                                       cache: "no-store" });
    if (!response.ok) throw new Error(await T.readError(response));
    return response.json();
  }

  // Replaces a table body's rows with `rows` (arrays of cell texts; a cell may be
  // {text, className}); `empty` is shown in place of the table when there are none.
  function fill(table, rows, emptyId, emptyText) {
    var body = el("tbody");
    rows.forEach(function (cells) {
      var tr = el("tr");
      cells.forEach(function (cell) {
        var plain = typeof cell !== "object";
        tr.appendChild(el("td", plain ? "" : cell.className || "", plain ? String(cell) : String(cell.text)));
      });
      body.appendChild(tr);
    });
    $(table).querySelector("tbody").replaceWith(body);
    if (emptyId) {
      setText($(emptyId), emptyText);
      $(emptyId).hidden = rows.length > 0;
    }
  }

  function num(value) { return { text: value, className: "num" }; }

  function showCounts(counts, workers) {
    document.querySelectorAll("#counts .count").forEach(function (link) {
      var state = link.dataset.state;
      var value = state === "workers" ? workers : counts.states[state];
      if (value !== undefined) setText(link.querySelector("b"), String(value));
    });
  }

  function showMethods(counts) {
    fill("methods-table", Object.keys(counts.methods).map(function (name) {
      var m = counts.methods[name];
      return [name, num(m.queued), num(m.running), num(m.succeeded), num(m.failed), num(m.cancelled),
              num(m.retried), num(m.reissued)];
    }));
  }

  function showQueues(answer) {
    fill("queues", answer.queues.map(function (q) {
      var levels = q.levels.map(function (l) { return l.priority + ": " + l.waiting + " / " + l.running; }).join(", ");
      return [{ text: q.queue, className: "method" }, num(q.waiting), num(q.delayed), num(q.running), levels];
    }), "queues-empty", answer.redis ? "No queue yet: no task was queued for a worker and no worker started."
      : "No Redis queues: with the in-process store every task runs in this server's own processes.");
  }

  function showWorkers(answer) {
    var now = answer.now;
    fill("workers", answer.workers.map(function (w) {
      var running = w.running.length ? w.running.map(function (id) { return id.slice(0, 8); }).join(", ") : "idle";
      return [{ text: w.worker_id, className: "mono" }, w.host, num(w.pid), w.queues.join(", "),
              num(w.running.length + " / " + w.concurrency), { text: running, className: "mono" },
              num(T.seconds(now - w.started_at)), num(T.seconds(now - w.heartbeat_at) + " ago"), w.version];
    }), "workers-empty", answer.redis ? "No live worker: start one with ladon-tasks worker."
      : "No workers: with the in-process store every task runs in this server.");
    fill("webs", answer.web_processes.map(function (p) {
      return [{ text: p.owner, className: "mono" }, num(p.holds), num(T.seconds(p.lease_left))];
    }), "webs-empty", "None with a live owner lease.");
  }

  async function tick() {
    var view = T.view();
    try {
      var counts = await getJSON("api/counts");
      var workers = await getJSON("api/workers");
      showCounts(counts, workers.workers.length);
      document.querySelector('#counts [data-state="workers"]').hidden = !workers.redis;
      if (view === "queues") {
        showQueues(await getJSON("api/queues"));
        showMethods(counts);
      } else if (view === "workers") {
        showWorkers(workers);
      }
      if (view !== "tasks") {
        T.showError("");
        setText($("status"), view + " · updated " + new Date(counts.now * 1000).toTimeString().slice(0, 8));
      }
    } catch (e) {
      if (view !== "tasks") T.showError("Cannot read the " + view + ": " + e.message);
    }
    schedule();
  }

  function schedule() {
    clearTimeout(timer);
    timer = T.paused() ? null : setTimeout(tick, POLL_MS);
  }

  document.addEventListener("ladon-tasks:view", function () { clearTimeout(timer); tick(); });
  $("pause").addEventListener("change", function () { if (!T.paused()) { clearTimeout(timer); tick(); } });
  tick();
})();
