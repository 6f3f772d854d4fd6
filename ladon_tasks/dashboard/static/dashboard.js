// The task page: polls the JSON API about once a second and updates the table in place;
// selects tasks for a bulk cancel, re-runs failed ones, and switches between the Tasks,
// Queues and Workers views (fleet.js draws the last two and the counts in the header).
// Every action that changes something asks first (the confirm bar). Task messages,
// arguments and errors are user data, so every value reaches the page through
// textContent or an attribute, never through HTML parsing.
(function () {
  "use strict";

  var POLL_MS = 1000;
  var CSRF_HEADERS = { "X-Requested-By": "ladon-tasks", "Accept": "application/json" };
  var STATES = ["queued", "running", "succeeded", "failed", "cancelled"];
  var VIEWS = ["tasks", "queues", "workers", "schedules"];

  var rows = new Map();          // task_id -> row handles
  var knownMethods = new Set();
  var chosen = new Set();        // task ids selected for a bulk cancel
  var selectedId = null;
  var offset = 0;
  var view = "tasks";
  var generation = 0;            // bumps on every filter change; stale answers are dropped
  var timer = null;
  var pendingConfirm = null;     // what the confirm bar's "yes" does
  var pendingAlt = null;         // and its second choice, when it offers one

  var $ = function (id) { return document.getElementById(id); };
  var tbody = document.querySelector("#tasks tbody");

  // -- formatting ------------------------------------------------------------------

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function seconds(value) {
    var s = Math.max(0, Math.floor(value || 0));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + pad(s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + pad(Math.floor(s / 60) % 60) + "m";
    return Math.floor(s / 86400) + "d " + Math.floor(s / 3600) % 24 + "h";
  }

  function clock(epoch) {
    if (!epoch) return "—";
    var d = new Date(epoch * 1000);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }

  function stateOf(task) {
    if (task.unreadable !== undefined) return "unreadable";
    return STATES.indexOf(task.state) >= 0 ? task.state : "unknown";
  }

  // What the message column says: the error of a failed task, why a damaged record
  // cannot be read, or the task's own message.
  function messageOf(task) {
    if (task.unreadable !== undefined) return "record cannot be read: " + task.unreadable;
    return task.error_type ? task.error_type + ": " + task.error_message : task.message;
  }

  function percent(task) { return Math.round(Math.max(0, Math.min(1, task.progress || 0)) * 100); }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function setText(node, text) { if (node.textContent !== text) node.textContent = text; }

  // -- status and errors ---------------------------------------------------------------

  function showError(message) {
    var banner = $("error");
    setText(banner, message);
    banner.hidden = !message;
  }

  async function readError(response) {
    try {
      var body = await response.json();
      return body.message || body.error || response.statusText;
    } catch (e) {
      return response.status + " " + response.statusText;
    }
  }

  // -- filters ---------------------------------------------------------------------------

  function filters() {
    var params = new URLSearchParams();
    document.querySelectorAll('input[name="state"]:checked').forEach(function (box) {
      params.append("state", box.value);
    });
    [["method", "method"], ["idprefix", "id"], ["tag", "tag"]].forEach(function (pair) {
      var value = $(pair[0]).value.trim();
      if (value) params.set(pair[1], pair[1] === "id" ? value.toLowerCase() : value);
    });
    params.set("limit", $("limit").value);
    return params;
  }

  function saveFilters() {
    var params = filters();
    params.delete("limit");
    if ($("limit").value !== "100") params.set("limit", $("limit").value);
    if (view !== "tasks") params.set("view", view);
    var hash = params.toString();
    history.replaceState(null, "", hash ? "#" + hash : location.pathname + location.search);
  }

  function loadFilters() {
    var params = new URLSearchParams(location.hash.slice(1));
    var states = params.getAll("state");
    document.querySelectorAll('input[name="state"]').forEach(function (box) {
      box.checked = states.indexOf(box.value) >= 0;
    });
    $("method").value = params.get("method") || "";
    $("idprefix").value = params.get("id") || "";
    $("tag").value = params.get("tag") || "";
    showView(VIEWS.indexOf(params.get("view")) >= 0 ? params.get("view") : "tasks");
    var limit = params.get("limit");
    if (limit && Array.prototype.some.call($("limit").options, function (o) { return o.value === limit; })) {
      $("limit").value = limit;
    }
  }

  function filtersChanged() {
    offset = 0;
    saveFilters();
    refreshNow();
  }

  function rememberMethod(name) {
    if (!name || knownMethods.has(name)) return;
    knownMethods.add(name);
    var option = document.createElement("option");
    option.value = name;
    $("methods").appendChild(option);
  }

  // -- rows --------------------------------------------------------------------------------

  function makeRow(task) {
    var tr = el("tr");
    tr.dataset.taskId = task.task_id;
    var pick = el("input", "pick");
    pick.type = "checkbox";
    pick.setAttribute("aria-label", "Select task " + task.task_id);
    pick.addEventListener("change", function () {
      if (pick.checked) chosen.add(task.task_id); else chosen.delete(task.task_id);
      showBulk();
    });
    var idButton = el("button", "link mono", task.task_id.slice(0, 8));
    idButton.type = "button";
    idButton.title = "Show task " + task.task_id;
    idButton.addEventListener("click", function () { openDetail(task.task_id); });

    var bar = el("div", "bar");
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    bar.setAttribute("aria-label", "progress of task " + task.task_id);
    var fill = el("span", "fill");
    bar.appendChild(fill);
    var pct = el("span", "pct num");
    var progressCell = el("td", "col-progress");
    var progressWrap = el("div", "progress");
    progressWrap.append(bar, pct);
    progressCell.appendChild(progressWrap);

    var cancel = el("button", "danger small cancel", "Cancel");
    cancel.type = "button";
    cancel.title = "Cancel task " + task.task_id;
    cancel.addEventListener("click", function () {
      confirmThen("Cancel task " + task.task_id.slice(0, 8) + " (" + task.method + ")?", "Cancel it",
        function () { cancelTask(task.task_id, cancel); });
    });
    var retry = el("button", "small retry", "Retry");
    retry.type = "button";
    retry.title = "Run task " + task.task_id + " again, as a new task";
    retry.addEventListener("click", function () {
      retryTask(task.task_id, task.method, retry, Number(retry.dataset.stepsDone || 0));
    });

    var messageText = el("div", "message-text");
    var messageCell = el("td", "message");
    messageCell.appendChild(messageText);
    var cells = {
      select: el("td", "col-select"), id: el("td"), service: el("td", "service"), method: el("td", "method"),
      principal: el("td", "principal"), state: el("td"), progress: progressCell, message: messageCell,
      age: el("td", "num age"), duration: el("td", "num duration"),
      attempts: el("td", "num attempts"), actions: el("td", "actions")
    };
    cells.select.appendChild(pick);
    cells.id.appendChild(idButton);
    var badge = el("span", "badge");
    cells.state.appendChild(badge);
    cells.actions.append(cancel, retry);
    Object.keys(cells).forEach(function (key) { tr.appendChild(cells[key]); });
    return { tr: tr, cells: cells, badge: badge, bar: bar, fill: fill, pct: pct, cancel: cancel, retry: retry,
             pick: pick, message: messageText };
  }

  function updateRow(row, task) {
    var state = stateOf(task);
    var p = percent(task);
    setText(row.cells.service, task.service);
    setText(row.cells.method, task.method);
    setText(row.cells.principal, task.principal || "—");
    row.tr.dataset.state = state;
    setText(row.badge, task.cancel_requested && !task.finished ? state + " (cancelling)" : state);
    row.badge.className = "badge state-" + state;
    row.bar.className = "bar state-" + state;
    row.bar.setAttribute("aria-valuenow", String(p));
    row.fill.style.width = p + "%";
    setText(row.pct, p + "%");
    var message = messageOf(task);
    if (state === "queued" && !task.started_at && task.not_before > 0) {
      message = "starts at " + clock(task.not_before) + (message ? " · " + message : "");
    }
    setText(row.message, message || "");
    row.cells.message.title = message || "";
    setText(row.cells.age, seconds(task.age));
    setText(row.cells.duration, task.started_at ? seconds(task.duration) : "—");
    setText(row.cells.attempts, task.attempts + "/" + Math.max(task.attempts, task.max_attempts));
    row.cancel.hidden = !!task.finished;
    if (task.finished) row.cancel.disabled = true;
    row.retry.hidden = !retryable(task);
    row.retry.dataset.stepsDone = String(task.steps_done || 0);
    row.pick.hidden = row.pick.disabled = !!task.finished;
    if (task.finished && chosen.delete(task.task_id)) showBulk();
    row.pick.checked = chosen.has(task.task_id);
    row.tr.classList.toggle("selected", task.task_id === selectedId);
  }

  function retryable(task) {
    return task.unreadable === undefined && (task.state === "failed" || task.state === "cancelled");
  }

  function render(data) {
    var seen = new Set();
    var previous = null;
    data.tasks.forEach(function (task) {
      seen.add(task.task_id);
      rememberMethod(task.method);
      var row = rows.get(task.task_id);
      if (!row) {
        row = makeRow(task);
        rows.set(task.task_id, row);
      }
      updateRow(row, task);
      var wanted = previous ? previous.nextSibling : tbody.firstChild;
      if (wanted !== row.tr) tbody.insertBefore(row.tr, wanted);
      previous = row.tr;
    });
    rows.forEach(function (row, id) {
      if (!seen.has(id)) { row.tr.remove(); rows.delete(id); }
    });
    showBulk();
    $("empty").hidden = data.tasks.length > 0;
    $("newer").disabled = data.offset === 0;
    $("older").disabled = !data.has_more;
    var first = data.tasks.length ? data.offset + 1 : 0;
    setText($("status"), "tasks " + first + "–" + (data.offset + data.tasks.length) +
      " · updated " + clock(data.now).slice(11));
  }

  // -- polling -------------------------------------------------------------------------------

  async function poll() {
    if (view !== "tasks") return;  // the other views poll for themselves (fleet.js)
    var mine = generation;
    var params = filters();
    params.set("offset", String(offset));
    try {
      var response = await fetch("api/tasks?" + params.toString(), {
        headers: { "Accept": "application/json" }, credentials: "same-origin", cache: "no-store"
      });
      if (mine !== generation) return;
      if (!response.ok) {
        showError("Cannot list tasks: " + await readError(response));
      } else {
        render(await response.json());
        showError("");
      }
      if (selectedId) await refreshDetail();
    } catch (e) {
      if (mine === generation) showError("The dashboard server does not answer (" + e.message + "); retrying…");
    } finally {
      if (mine === generation) schedule();
    }
  }

  function schedule() {
    clearTimeout(timer);
    timer = $("pause").checked || view !== "tasks" ? null : setTimeout(poll, POLL_MS);
  }

  function refreshNow() {
    generation += 1;
    clearTimeout(timer);
    poll();
  }

  // -- confirm, cancel, retry -----------------------------------------------------------

  // Shows the confirm bar; `action` runs only on "yes" - or `altAction` on the second
  // choice, when there is one (`altLabel`). One question at a time.
  function confirmThen(text, yesLabel, action, altLabel, altAction) {
    pendingConfirm = action;
    pendingAlt = altAction || null;
    setText($("confirm-text"), text);
    setText($("confirm-yes"), yesLabel);
    setText($("confirm-alt"), altLabel || "");
    $("confirm-alt").hidden = !altAction;
    $("confirm").hidden = false;
    $("confirm-yes").focus();
  }

  function closeConfirm() {
    pendingConfirm = null;
    pendingAlt = null;
    $("confirm").hidden = true;
  }

  function post(path, body) {
    var headers = Object.assign({}, CSRF_HEADERS);
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(path, { method: "POST", headers: headers, credentials: "same-origin",
                         body: body === undefined ? undefined : JSON.stringify(body) });
  }

  async function cancelTask(taskId, button) {
    if (button) button.disabled = true;
    try {
      var response = await post("api/tasks/" + encodeURIComponent(taskId) + "/cancel");
      if (!response.ok && response.status !== 409) {
        showError("Cancel failed: " + await readError(response));
        if (button) button.disabled = false;
        return;
      }
    } catch (e) {
      showError("Cancel failed: " + e.message);
      if (button) button.disabled = false;
      return;
    }
    refreshNow();
  }

  // A task whose steps succeeded in part is offered both re-runs: recover (the default,
  // its succeeded steps skipped) and restart (every step run again).
  function retryTask(taskId, method, button, stepsDone) {
    var text = "Run task " + taskId.slice(0, 8) + " (" + method + ") again, as a new task with the same arguments?";
    if (stepsDone > 0) {
      text += " Recover skips its " + stepsDone + " succeeded step" + (stepsDone === 1 ? "" : "s") +
        "; restart runs every step again.";
      confirmThen(text, "Recover", function () { rerun(taskId, button, false); },
        "Restart", function () { rerun(taskId, button, true); });
    } else {
      confirmThen(text, "Retry", function () { rerun(taskId, button, false); });
    }
  }

  async function rerun(taskId, button, restart) {
    if (button) button.disabled = true;
    try {
      var response = await post("api/tasks/" + encodeURIComponent(taskId) + "/retry", { restart: restart });
      if (!response.ok) {
        showError("Retry failed: " + await readError(response));
      } else {
        showError("");
        openDetail((await response.json()).task.task_id);
      }
    } catch (e) {
      showError("Retry failed: " + e.message);
    }
    if (button) button.disabled = false;
    refreshNow();
  }

  function showBulk() {
    $("bulk").hidden = chosen.size === 0;
    setText($("bulk-count"), chosen.size + " selected");
    var selectable = Array.from(rows.values()).filter(function (row) { return !row.pick.disabled; });
    $("select-all").checked = selectable.length > 0 && selectable.every(function (row) { return row.pick.checked; });
  }

  function bulkCancel() {
    var ids = Array.from(chosen);
    if (!ids.length) return;
    confirmThen("Cancel " + ids.length + " task" + (ids.length === 1 ? "" : "s") + "?", "Cancel them", async function () {
      try {
        var response = await post("api/cancel", { task_ids: ids });
        if (!response.ok) {
          showError("Cancel failed: " + await readError(response));
          return;
        }
        var failed = (await response.json()).results.filter(function (r) { return r.error; });
        showError(failed.length ? failed.length + " task(s) could not be cancelled: " + failed[0].message : "");
        chosen.clear();
        showBulk();
      } catch (e) {
        showError("Cancel failed: " + e.message);
      }
      refreshNow();
    });
  }

  // -- views ------------------------------------------------------------------------------

  function showView(name) {
    view = name;
    VIEWS.forEach(function (other) {
      $("view-" + other).hidden = other !== name;
      $("tab-" + other).setAttribute("aria-selected", String(other === name));
    });
    document.dispatchEvent(new CustomEvent("ladon-tasks:view", { detail: name }));
  }

  // -- detail ------------------------------------------------------------------------------

  function openDetail(taskId) {
    selectedId = taskId;
    rows.forEach(function (row, id) { row.tr.classList.toggle("selected", id === taskId); });
    $("detail").hidden = false;
    refreshDetail();
  }

  function closeDetail() {
    selectedId = null;
    $("detail").hidden = true;
    rows.forEach(function (row) { row.tr.classList.remove("selected"); });
  }

  async function refreshDetail() {
    var taskId = selectedId;
    if (!taskId) return;
    try {
      var response = await fetch("api/tasks/" + encodeURIComponent(taskId), {
        headers: { "Accept": "application/json" }, credentials: "same-origin", cache: "no-store"
      });
      if (taskId !== selectedId) return;
      if (!response.ok) {
        showDetailGone(taskId, await readError(response));
        return;
      }
      showDetail((await response.json()).task);
    } catch (e) {
      /* the list poll reports connection trouble */
    }
  }

  function field(list, name, value, className) {
    list.appendChild(el("dt", "", name));
    list.appendChild(el("dd", className || "", value));
  }

  function showDetail(task) {
    setText($("detail-title"), task.service + "." + task.method);
    var list = el("dl");
    list.id = "detail-fields";
    field(list, "Task id", task.task_id, "mono");
    field(list, "State", stateOf(task) + (task.cancel_requested && !task.finished ? " (cancel requested)" : ""));
    field(list, "Progress", percent(task) + "%");
    if (task.unreadable !== undefined) field(list, "Problem", messageOf(task));
    field(list, "Message", task.message || "—");
    if (task.not_before > 0) field(list, "Not before", clock(task.not_before));
    if (task.step) field(list, "Step", task.step + " (" + task.steps_done + " done)");
    // a task handed over or reissued has used more attempts than its retries allow
    field(list, "Attempts", task.attempts + " of " + Math.max(task.attempts, task.max_attempts));
    (task.attempt_errors || []).forEach(function (error) {
      field(list, "Earlier error", error);
    });
    (task.ran_on || []).forEach(function (where, index) {
      field(list, "Attempt " + (index + 1), where || "not recorded (lost before it started)", "mono");
    });
    if (task.retry_of) field(list, "Re-run of", task.retry_of, "mono");
    field(list, "Caller", task.principal || "— (started without one)");
    field(list, "Priority", String(task.priority));
    if (task.tags && task.tags.length) field(list, "Tags", task.tags.join(", "));
    field(list, "Submitted", clock(task.submitted_at) + " (" + seconds(task.age) + " ago)");
    field(list, "Started", clock(task.started_at));
    field(list, "Finished", clock(task.finished_at));
    field(list, "Duration", task.started_at ? seconds(task.duration) : "—");
    $("detail-fields").replaceWith(list);
    showArguments(task.args || []);
    showSteps(task.steps || []);
    showLimits(task.limits);
    var hasError = !!task.error_type;
    $("detail-error-box").hidden = !hasError;
    setText($("detail-error"), hasError ? task.error_type + ": " + task.error_message : "");
    $("detail-cancel").hidden = !!task.finished;
    $("detail-cancel").disabled = !!task.finished;
    $("detail-retry").hidden = !retryable(task);
    $("detail-retry").dataset.method = task.method;
    $("detail-retry").dataset.stepsDone = String(task.steps_done || 0);
  }

  // The limits and policies of the task's method, as this server declares it: what is
  // set, and the timeout and retries always (an operator asks about those first).
  function showLimits(limits) {
    var list = el("dl");
    list.id = "detail-limits";
    function limit(key, name, value) {
      field(list, name, value);
      list.lastChild.dataset.limit = key;
    }
    function secs(value) { return value + " s"; }
    if (!limits) {
      limit("unknown", "Not known", "the method is not declared in this process (give the dashboard its services)");
    } else {
      limit("executor", "Executor", limits.executor + (limits.queue ? " (queue " + limits.queue + ")" : ""));
      limit("timeout", "Timeout", limits.timeout ? secs(limits.timeout) : "none");
      if (limits.soft_timeout) limit("soft_timeout", "Soft timeout", secs(limits.soft_timeout));
      limit("retries", "Retries", !limits.retries ? "none" : limits.retries + ", backoff " +
            secs(limits.retry_delay) + " doubling, at most " + secs(limits.retry_max_delay) +
            (limits.retry_jitter ? ", less up to " + Math.round(limits.retry_jitter * 100) + " % at random" : ""));
      if (limits.retry_on.length) limit("retry_on", "Retry on", limits.retry_on.join(", "));
      if (limits.no_retry_on.length) limit("no_retry_on", "Never retry", limits.no_retry_on.join(", "));
      [["on_success", "On success"], ["on_failure", "On failure"], ["on_cancel", "On cancel"]].forEach(function (hook) {
        if (limits[hook[0]]) limit(hook[0], hook[1], limits[hook[0]]);
      });
      if (limits.max_tasks_per_child) {
        limit("max_tasks_per_child", "New child", "after " + limits.max_tasks_per_child + " tasks");
      }
      if (limits.max_memory_per_child) {
        limit("max_memory_per_child", "New child", "past " + limits.max_memory_per_child + " MiB resident");
      }
      limit("result_ttl", "Kept", secs(limits.result_ttl) + " after it ends");
    }
    $("detail-limits").replaceWith(list);
    $("detail-limits-box").hidden = false;
  }

  // Each step: its name, a state badge, how long it ran, and which attempt ran it (or
  // the task a recover carried it over from); a failed step's error as its row's title.
  function showSteps(steps) {
    var body = el("tbody");
    body.id = "detail-steps-body";
    steps.forEach(function (step) {
      var tr = el("tr");
      tr.dataset.step = step.name;
      tr.appendChild(el("td", "mono step-name", step.name));
      var badgeCell = el("td");
      var known = ["running", "succeeded", "failed"].indexOf(step.state) >= 0;
      badgeCell.appendChild(el("span", "badge state-" + (known ? step.state : "queued"), step.state));
      tr.appendChild(badgeCell);
      tr.appendChild(el("td", "num", step.started_at ? seconds(step.duration) : "—"));
      tr.appendChild(el("td", "num", step.origin ? "from " + step.origin.slice(0, 8) : String(step.attempt)));
      if (step.error) tr.title = step.error;
      body.appendChild(tr);
    });
    $("detail-steps-body").replaceWith(body);
    $("detail-steps-box").hidden = !steps.length;
  }

  // Each argument as "name (type): value", the value as JSON so a string shows its
  // quotes and a number does not; user data, so text nodes only.
  function showArguments(args) {
    var list = el("dl", "args");
    list.id = "detail-args";
    args.forEach(function (arg) {
      var term = el("dt", "", arg.name);
      if (arg.type) term.appendChild(el("span", "arg-type", " (" + arg.type + ")"));
      list.appendChild(term);
      list.appendChild(el("dd", "mono", JSON.stringify(arg.value, null, 2)));
    });
    if (!args.length) list.appendChild(el("dd", "none", "none"));
    $("detail-args").replaceWith(list);
  }

  function showDetailGone(taskId, message) {
    setText($("detail-title"), "Task " + taskId.slice(0, 8));
    var list = el("dl");
    list.id = "detail-fields";
    field(list, "Task id", taskId, "mono");
    field(list, "Not available", message);
    $("detail-fields").replaceWith(list);
    showArguments([]);
    showSteps([]);
    $("detail-error-box").hidden = true;
    $("detail-cancel").hidden = true;
    $("detail-retry").hidden = true;
  }

  // -- wiring ----------------------------------------------------------------------------------

  document.querySelectorAll('input[name="state"]').forEach(function (box) {
    box.addEventListener("change", filtersChanged);
  });
  ["method", "idprefix", "tag"].forEach(function (id) {
    $(id).addEventListener("change", filtersChanged);
    $(id).addEventListener("keydown", function (event) {
      if (event.key === "Enter") { event.preventDefault(); filtersChanged(); }
    });
  });
  $("select-all").addEventListener("change", function () {
    rows.forEach(function (row, id) {
      if (row.pick.disabled) return;
      row.pick.checked = $("select-all").checked;
      if (row.pick.checked) chosen.add(id); else chosen.delete(id);
    });
    showBulk();
  });
  $("bulk-cancel").addEventListener("click", bulkCancel);
  $("bulk-clear").addEventListener("click", function () {
    chosen.clear();
    rows.forEach(function (row) { row.pick.checked = false; });
    showBulk();
  });
  $("confirm-yes").addEventListener("click", function () {
    var action = pendingConfirm;
    closeConfirm();
    if (action) action();
  });
  $("confirm-alt").addEventListener("click", function () {
    var action = pendingAlt;
    closeConfirm();
    if (action) action();
  });
  $("confirm-no").addEventListener("click", closeConfirm);
  VIEWS.forEach(function (name) {
    $("tab-" + name).addEventListener("click", function () {
      showView(name);
      saveFilters();
      if (name === "tasks") refreshNow();
    });
  });
  $("limit").addEventListener("change", filtersChanged);
  $("filters").addEventListener("submit", function (event) { event.preventDefault(); });
  $("newer").addEventListener("click", function () {
    offset = Math.max(0, offset - Number($("limit").value));
    refreshNow();
  });
  $("older").addEventListener("click", function () {
    offset += Number($("limit").value);
    refreshNow();
  });
  $("pause").addEventListener("change", function () {
    if ($("pause").checked) { clearTimeout(timer); timer = null; } else { refreshNow(); }
  });
  $("detail-close").addEventListener("click", closeDetail);
  $("detail-cancel").addEventListener("click", function () {
    var taskId = selectedId;
    if (taskId) confirmThen("Cancel task " + taskId.slice(0, 8) + "?", "Cancel it",
      function () { cancelTask(taskId, $("detail-cancel")); });
  });
  $("detail-retry").addEventListener("click", function () {
    if (selectedId) retryTask(selectedId, $("detail-retry").dataset.method || "", $("detail-retry"),
                              Number($("detail-retry").dataset.stepsDone || 0));
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    if (!$("confirm").hidden) closeConfirm(); else if (selectedId) closeDetail();
  });
  window.addEventListener("hashchange", function () { loadFilters(); offset = 0; refreshNow(); });

  // what fleet.js shares
  window.LadonTasks = {
    el: el, setText: setText, seconds: seconds, clock: clock, showError: showError, readError: readError,
    post: post,
    paused: function () { return $("pause").checked; },
    view: function () { return view; }
  };

  loadFilters();
  refreshNow();
})();
