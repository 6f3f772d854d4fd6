// The Schedules view: each periodic task's state, last and next run, with pause/resume
// and run-now buttons; polled every second while it is shown. Helpers come from
// dashboard.js (window.LadonTasks); every value reaches the page through textContent.
(function () {
  "use strict";

  var POLL_MS = 1000;
  var T = window.LadonTasks;
  var el = T.el, setText = T.setText;
  var $ = function (id) { return document.getElementById(id); };
  var timer = null;

  function button(label, action, name) {
    var node = el("button", "small", label);
    node.type = "button";
    node.dataset.action = action;
    node.dataset.schedule = name;
    node.addEventListener("click", function () { act(name, action, node); });
    return node;
  }

  function cell(text, className) { return el("td", className || "", text); }

  function show(answer) {
    var body = el("tbody");
    answer.schedules.forEach(function (s) {
      var tr = el("tr");
      tr.dataset.schedule = s.name;
      tr.appendChild(cell(s.name, "method"));
      tr.appendChild(cell(s.describe || "?"));
      tr.appendChild(cell(s.paused ? "paused" : "active", "state " + (s.paused ? "paused" : "active")));
      tr.appendChild(cell(T.clock(s.last_tick), "last"));
      tr.appendChild(cell(s.last_task ? s.last_task.slice(0, 8) : "—", "mono last-task"));
      tr.appendChild(cell(s.paused ? "paused" : T.clock(s.next_tick), "next"));
      var actions = el("td", "actions");
      actions.appendChild(s.paused ? button("Resume", "resume", s.name) : button("Pause", "pause", s.name));
      actions.appendChild(button("Run now", "run", s.name));
      tr.appendChild(actions);
      body.appendChild(tr);
    });
    $("schedules").querySelector("tbody").replaceWith(body);
    setText($("schedules-empty"), "No schedule: no task method here declares every= or cron=.");
    $("schedules-empty").hidden = answer.schedules.length > 0;
  }

  async function act(name, action, node) {
    node.disabled = true;
    try {
      var response = await T.post("api/schedules/" + encodeURIComponent(name) + "/" + action);
      if (!response.ok) {
        T.showError("Cannot " + action + " " + name + ": " + await T.readError(response));
      } else {
        var answer = await response.json();
        T.showError("");
        if (answer.task) setText($("status"), name + " run as task " + answer.task.task_id.slice(0, 8));
      }
    } catch (e) {
      T.showError("Cannot " + action + " " + name + ": " + e.message);
    }
    clearTimeout(timer);
    tick();
  }

  async function tick() {
    if (T.view() !== "schedules") return;
    try {
      var response = await fetch("api/schedules", { headers: { "Accept": "application/json" },
                                                    credentials: "same-origin", cache: "no-store" });
      if (!response.ok) throw new Error(await T.readError(response));
      show(await response.json());
    } catch (e) {
      T.showError("Cannot read the schedules: " + e.message);
    }
    clearTimeout(timer);
    timer = T.paused() ? null : setTimeout(tick, POLL_MS);
  }

  document.addEventListener("ladon-tasks:view", function () { clearTimeout(timer); tick(); });
  $("pause").addEventListener("change", function () { if (!T.paused()) { clearTimeout(timer); tick(); } });
  tick();
})();
