// The task page: polls the JSON API about once a second and updates the table in place.
// Task messages, arguments and errors are user data, so every value reaches the page
// through textContent or an attribute, never through HTML parsing.
(function () {
  "use strict";

  var POLL_MS = 1000;
  var CSRF_HEADERS = { "X-Requested-By": "ladon-tasks", "Accept": "application/json" };
  var STATES = ["queued", "running", "succeeded", "failed", "cancelled"];

  var rows = new Map();          // task_id -> row handles
  var knownMethods = new Set();
  var selectedId = null;
  var offset = 0;
  var generation = 0;            // bumps on every filter change; stale answers are dropped
  var timer = null;

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
    var method = $("method").value.trim();
    if (method) params.set("method", method);
    params.set("limit", $("limit").value);
    return params;
  }

  function saveFilters() {
    var params = filters();
    params.delete("limit");
    if ($("limit").value !== "100") params.set("limit", $("limit").value);
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
    cancel.addEventListener("click", function () { cancelTask(task.task_id, cancel); });

    var messageText = el("div", "message-text");
    var messageCell = el("td", "message");
    messageCell.appendChild(messageText);
    var cells = {
      id: el("td"), service: el("td", "service"), method: el("td", "method"),
      state: el("td"), progress: progressCell, message: messageCell,
      age: el("td", "num age"), duration: el("td", "num duration"),
      attempts: el("td", "num attempts"), actions: el("td", "actions")
    };
    cells.id.appendChild(idButton);
    var badge = el("span", "badge");
    cells.state.appendChild(badge);
    cells.actions.appendChild(cancel);
    Object.keys(cells).forEach(function (key) { tr.appendChild(cells[key]); });
    return { tr: tr, cells: cells, badge: badge, bar: bar, fill: fill, pct: pct, cancel: cancel, message: messageText };
  }

  function updateRow(row, task) {
    var state = stateOf(task);
    var p = percent(task);
    setText(row.cells.service, task.service);
    setText(row.cells.method, task.method);
    row.tr.dataset.state = state;
    setText(row.badge, task.cancel_requested && !task.finished ? state + " (cancelling)" : state);
    row.badge.className = "badge state-" + state;
    row.bar.className = "bar state-" + state;
    row.bar.setAttribute("aria-valuenow", String(p));
    row.fill.style.width = p + "%";
    setText(row.pct, p + "%");
    var message = messageOf(task);
    setText(row.message, message || "");
    row.cells.message.title = message || "";
    setText(row.cells.age, seconds(task.age));
    setText(row.cells.duration, task.started_at ? seconds(task.duration) : "—");
    setText(row.cells.attempts, task.attempts + "/" + task.max_attempts);
    row.cancel.hidden = !!task.finished;
    if (task.finished) row.cancel.disabled = true;
    row.tr.classList.toggle("selected", task.task_id === selectedId);
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
    $("empty").hidden = data.tasks.length > 0;
    $("newer").disabled = data.offset === 0;
    $("older").disabled = !data.has_more;
    var first = data.tasks.length ? data.offset + 1 : 0;
    setText($("status"), "tasks " + first + "–" + (data.offset + data.tasks.length) +
      " · updated " + clock(data.now).slice(11));
  }

  // -- polling -------------------------------------------------------------------------------

  async function poll() {
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
    timer = $("pause").checked ? null : setTimeout(poll, POLL_MS);
  }

  function refreshNow() {
    generation += 1;
    clearTimeout(timer);
    poll();
  }

  // -- cancel ------------------------------------------------------------------------------

  async function cancelTask(taskId, button) {
    if (button) button.disabled = true;
    try {
      var response = await fetch("api/tasks/" + encodeURIComponent(taskId) + "/cancel", {
        method: "POST", headers: CSRF_HEADERS, credentials: "same-origin"
      });
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
    field(list, "Attempts", task.attempts + " of " + task.max_attempts);
    field(list, "Priority", String(task.priority));
    if (task.tags && task.tags.length) field(list, "Tags", task.tags.join(", "));
    field(list, "Submitted", clock(task.submitted_at) + " (" + seconds(task.age) + " ago)");
    field(list, "Started", clock(task.started_at));
    field(list, "Finished", clock(task.finished_at));
    field(list, "Duration", task.started_at ? seconds(task.duration) : "—");
    $("detail-fields").replaceWith(list);
    showArguments(task.args || []);
    var hasError = !!task.error_type;
    $("detail-error-box").hidden = !hasError;
    setText($("detail-error"), hasError ? task.error_type + ": " + task.error_message : "");
    $("detail-cancel").hidden = !!task.finished;
    $("detail-cancel").disabled = !!task.finished;
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
    $("detail-error-box").hidden = true;
    $("detail-cancel").hidden = true;
  }

  // -- wiring ----------------------------------------------------------------------------------

  document.querySelectorAll('input[name="state"]').forEach(function (box) {
    box.addEventListener("change", filtersChanged);
  });
  $("method").addEventListener("change", filtersChanged);
  $("method").addEventListener("keydown", function (event) {
    if (event.key === "Enter") { event.preventDefault(); filtersChanged(); }
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
    if (selectedId) cancelTask(selectedId, $("detail-cancel"));
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && selectedId) closeDetail();
  });
  window.addEventListener("hashchange", function () { loadFilters(); offset = 0; refreshNow(); });

  loadFilters();
  refreshNow();
})();
