// beanstalkt web console: live overview, live tube page, charts and small page helpers.
// Data from the server is only ever put into the page with textContent or
// setAttribute, never as HTML: a tube name or a job body cannot become markup.
// Every table keyed by a tube name is a Map: a tube called "__proto__",
// "constructor" or "toString" is a key like any other.
"use strict";

(function () {
  var SVG = "http://www.w3.org/2000/svg";
  var COUNTS = ["ready", "reserved", "delayed", "buried", "watching", "waiting", "total"];
  var CHART_WIDTH = 160;
  var CHART_HEIGHT = 28;
  var HISTORY_POINTS = 60;
  var historySeconds = 300;
  var interval = 1;
  var staleAfter = 40;
  // index -> {rows: Map(name -> row), hist: Map(name -> {r: [], b: []}), times: [],
  //           elements: Map(name -> tr), order: [], seen: ms, header: {}, top: number}
  var servers = new Map();
  var view = { sort: "problems", filter: "", limit: 100 };
  var socket = null;
  var lastMessage = 0;

  function text(element, value, highlight) {
    if (!element) {
      return;
    }
    var shown = value === null || value === undefined ? "\u2013" : String(value);
    if (element.textContent !== shown) {
      element.textContent = shown;
      if (highlight) {
        // A value that just changed stands out for a moment (restarted if it changes again).
        element.classList.remove("changed");
        void element.offsetWidth;
        element.classList.add("changed");
      }
    }
  }

  function plural(count, noun) {
    return count + " " + noun + (count === 1 ? "" : "s");
  }

  function duration(seconds) {
    if (typeof seconds !== "number" || seconds < 0) {
      return "\u2013";
    }
    function two(n) {
      return (n < 10 ? "0" : "") + n;
    }
    if (seconds < 60) {
      return seconds + " s";
    }
    if (seconds < 3600) {
      return Math.floor(seconds / 60) + " m " + two(seconds % 60) + " s";
    }
    if (seconds < 86400) {
      return Math.floor(seconds / 3600) + " h " + two(Math.floor((seconds % 3600) / 60)) + " m";
    }
    return Math.floor(seconds / 86400) + " d " + two(Math.floor((seconds % 86400) / 3600)) + " h";
  }

  function field(parent, name) {
    return parent.querySelector('[data-field="' + name + '"]');
  }

  function tubeUrl(server, tube) {
    return "/server/" + server + "/tube/" + encodeURIComponent(tube);
  }

  function cell(row, name) {
    var td = document.createElement("td");
    td.setAttribute("data-field", name);
    row.appendChild(td);
    return td;
  }

  function newRow(server, tube) {
    var row = document.createElement("tr");
    row.setAttribute("data-tube", tube);
    var nameCell = document.createElement("td");
    nameCell.className = "name";
    var link = document.createElement("a");
    link.setAttribute("href", tubeUrl(server, tube));
    link.textContent = tube;
    nameCell.appendChild(link);
    row.appendChild(nameCell);
    ["ready", "reserved", "delayed", "buried", "oldest", "watching", "waiting", "paused", "total",
      "put_rate", "delete_rate"].forEach(function (name) {
      cell(row, name);
    });
    var chart = document.createElement("td");
    chart.className = "chart";
    row.appendChild(chart);
    return row;
  }

  function stateOf(index) {
    var state = servers.get(index);
    if (!state) {
      state = {
        rows: new Map(), hist: new Map(), times: [], elements: new Map(), order: [],
        seen: Date.now(), header: {}, top: 1, section: null
      };
      servers.set(index, state);
    }
    return state;
  }

  function fillRow(row, tube, highlight) {
    ["ready", "reserved", "delayed", "buried", "watching", "waiting", "total", "put_rate",
      "delete_rate"].forEach(function (name) {
      text(field(row, name), tube[name], highlight && COUNTS.indexOf(name) >= 0);
    });
    text(field(row, "oldest"), tube.ready ? duration(tube.oldest) : "");
    text(field(row, "paused"), tube.paused ? tube.pause_left + " s" : "");
    row.classList.toggle("has-buried", tube.buried > 0);
  }

  function polyline(values, count, top, cssClass) {
    var line = document.createElementNS(SVG, "polyline");
    var step = CHART_WIDTH / (HISTORY_POINTS - 1);
    var coordinates = values.map(function (value, position) {
      var x = CHART_WIDTH - (values.length - 1 - position) * step;
      var y = CHART_HEIGHT - 2 - (value / top) * (CHART_HEIGHT - 4);
      return x.toFixed(1) + "," + y.toFixed(1);
    });
    line.setAttribute("points", coordinates.join(" "));
    line.setAttribute("class", cssClass);
    return line;
  }

  function drawChart(td, series, top) {
    var svg = td.querySelector("svg");
    if (!svg) {
      svg = document.createElementNS(SVG, "svg");
      svg.setAttribute("width", CHART_WIDTH);
      svg.setAttribute("height", CHART_HEIGHT);
      svg.setAttribute("viewBox", "0 0 " + CHART_WIDTH + " " + CHART_HEIGHT);
      svg.setAttribute("role", "img");
      td.appendChild(svg);
    }
    while (svg.firstChild) {
      svg.removeChild(svg.firstChild);
    }
    var title = document.createElementNS(SVG, "title");
    var ready = series.r.length ? series.r[series.r.length - 1] : 0;
    var buried = series.b.length ? series.b[series.b.length - 1] : 0;
    title.textContent = "ready " + ready + ", buried " + buried + " (scale 0\u2013" + top + ")";
    svg.appendChild(title);
    var grid = document.createElementNS(SVG, "line");
    grid.setAttribute("x1", "0");
    grid.setAttribute("x2", String(CHART_WIDTH));
    grid.setAttribute("y1", "2");
    grid.setAttribute("y2", "2");
    grid.setAttribute("class", "grid");
    svg.appendChild(grid);
    svg.appendChild(polyline(series.r, series.r.length, top, "ready"));
    svg.appendChild(polyline(series.b, series.b.length, top, "buried"));
  }

  function undifference(steps) {
    // [v0, v1 - v0, ...] back to [v0, v1, ...] (the server sends series difference-coded).
    var value = 0;
    return steps.map(function (step) {
      value += step;
      return value;
    });
  }

  function trim(list) {
    while (list.length > HISTORY_POINTS) {
      list.shift();
    }
  }

  function niceTop(value) {
    // The shared scale: the first of 1, 2, 5, 10, 20, 50... at or above the largest value.
    for (var power = 1; ; power *= 10) {
      for (var i = 0; i < 3; i++) {
        var top = [1, 2, 5][i] * power;
        if (top >= value) {
          return top;
        }
      }
    }
  }

  function renderServer(message) {
    var header = message.server;
    var state = stateOf(header.index);
    state.seen = Date.now();
    state.header = header;
    var section = document.querySelector('section.server[data-server="' + header.index + '"]');
    if (!section) {
      return;
    }
    state.section = section;
    section.classList.remove("stale");
    section.classList.toggle("up", header.up);
    section.classList.toggle("down", !header.up);
    text(field(section, "state"), header.up ? "up" : "down");
    var totals = header.totals || {};
    text(
      field(section, "summary"),
      header.up
        ? "beanstalkd " + header.version + " \u00b7 " + plural(totals.tubes, "tube") + " \u00b7 " +
            plural(totals.connections, "connection") + " \u00b7 " + plural(totals.workers, "worker")
        : header.error + (header.retry_in ? " \u00b7 retrying in " + header.retry_in + " s" : "")
    );
    text(field(section, "warnings"), (header.warnings || []).join(" \u00b7 "));

    // The rows that changed, then this tab's order of the rows shown.
    (message.rows || []).forEach(function (tube) {
      state.rows.set(tube.name, tube);
    });
    var order = message.order || [];
    var shown = new Set(order);
    Array.from(state.rows.keys()).forEach(function (name) {
      if (!shown.has(name)) {
        state.rows.delete(name);
        state.hist.delete(name);
      }
    });
    // History: the server's for tubes new to this tab, this tab's own samples for the others.
    var history = message.history;
    // [[name, [ready...], [buried...]], ...]: a list, so no name is ever an object key.
    var fresh = new Map();
    if (history) {
      history.tubes.forEach(function (entry) {
        fresh.set(entry[0], { r: undifference(entry[1]), b: undifference(entry[2]) });
      });
    }
    if (message.sampled) {
      order.forEach(function (name) {
        if (fresh.has(name)) {
          return;
        }
        var tube = state.rows.get(name);
        var series = state.hist.get(name) || { r: [], b: [] };
        series.r.push(tube.ready);
        series.b.push(tube.buried);
        trim(series.r);
        trim(series.b);
        state.hist.set(name, series);
      });
    }
    if (history) {
      state.times = history.times;
      fresh.forEach(function (series, name) {
        state.hist.set(name, series);
      });
    }
    if (!header.up) {
      state.hist.clear();
    }

    // The shared scale of every chart of this server.
    var largest = 1;
    state.hist.forEach(function (series) {
      series.r.forEach(function (v) { if (v > largest) { largest = v; } });
      series.b.forEach(function (v) { if (v > largest) { largest = v; } });
    });
    var top = niceTop(largest);
    var rescaled = top !== state.top;
    state.top = top;
    text(field(section, "axis"), "0\u2013" + top + " jobs, " + Math.round(historySeconds / 60) + " min");

    var tbody = section.querySelector("tbody");
    var changed = new Set((message.rows || []).map(function (tube) { return tube.name; }));
    // Rows rendered by the server at page load are adopted, not duplicated.
    if (state.elements.size === 0) {
      Array.prototype.forEach.call(tbody.rows, function (row) {
        state.elements.set(row.getAttribute("data-tube"), row);
      });
    }
    state.elements.forEach(function (row, name) {
      if (!shown.has(name)) {
        row.remove();
        state.elements.delete(name);
      }
    });
    order.forEach(function (name, position) {
      var row = state.elements.get(name);
      var known = !!row && row.getAttribute("data-filled") === "1";
      if (!row) {
        row = newRow(header.index, name);
        state.elements.set(name, row);
        changed.add(name);
      }
      if (tbody.rows[position] !== row) {
        tbody.insertBefore(row, tbody.rows[position] || null);
      }
      var tube = state.rows.get(name);
      if (tube && changed.has(name)) {
        fillRow(row, tube, known);
        row.setAttribute("data-filled", "1");
      }
      if (message.sampled || rescaled || changed.has(name) || fresh.has(name)) {
        drawChart(row.querySelector("td.chart"), state.hist.get(name) || { r: [], b: [] }, top);
      }
    });

    var totalsRow = section.querySelector('tr[data-totals="1"]');
    ["ready", "reserved", "delayed", "buried", "workers", "waiting"].forEach(function (name) {
      text(field(totalsRow, name), header.up ? totals[name] : "");
    });
    text(field(totalsRow, "oldest"), header.up ? duration(header.oldest) : "");
    text(field(totalsRow, "put_rate"), header.put_rate);
    text(field(totalsRow, "delete_rate"), header.delete_rate);
    text(
      field(totalsRow, "shown"),
      header.up ? "(" + order.length + " of " + message.matched +
        (view.filter ? " matching" : "") + " shown)" : ""
    );
  }

  var TUBE_FIELDS = {
    ready: "current-jobs-ready", reserved: "current-jobs-reserved",
    delayed: "current-jobs-delayed", buried: "current-jobs-buried",
    urgent: "current-jobs-urgent", total: "total-jobs", using: "current-using",
    watching: "current-watching", waiting: "current-waiting", deletes: "cmd-delete"
  };

  function renderTube(message) {
    var table = document.querySelector("table.tube-stats");
    if (!table) {
      return;
    }
    var state = stateOf(message.server.index);
    state.seen = Date.now();
    state.header = message.server;
    var row = message.row;
    var notice = document.getElementById("tube-live");
    if (!message.server.up) {
      text(notice, "server down: " + message.server.error);
      return;
    }
    if (!row) {
      text(notice, "this tube does not exist now (no job and nobody using or watching it)");
      return;
    }
    Object.keys(TUBE_FIELDS).forEach(function (key) {
      var td = field(table, TUBE_FIELDS[key]);
      if (td && row[key] !== undefined) {
        if (td.getAttribute("data-loaded") === null) {
          td.setAttribute("data-loaded", td.textContent);
        }
        text(td, row[key]);
      }
    });
    text(
      field(table, "pause-time-left"),
      row.paused ? row.pause_left + " s left" : "no"
    );
    var stale = ["current-jobs-ready", "current-jobs-delayed", "current-jobs-buried"].some(function (key) {
      var td = field(table, key);
      return td && td.getAttribute("data-loaded") !== null && td.getAttribute("data-loaded") !== td.textContent;
    });
    text(
      notice,
      "live \u00b7 updated " + new Date(message.server.time * 1000).toLocaleTimeString() +
        (stale ? " \u00b7 the counts changed since this page loaded: reload for the next jobs" : "")
    );
    document.body.classList.toggle("jobs-changed", stale);
  }

  function setLive(state, detail) {
    var status = document.getElementById("live-status");
    if (status) {
      status.setAttribute("data-state", state);
      status.textContent = state === "live" ? "\u25cf live" : "\u25cb " + state + (detail ? ": " + detail : "");
    }
  }

  function checkStale() {
    // Updates stopping must show: the badge and each server's section go stale.
    if (!socket || socket.readyState !== 1) {
      return;
    }
    var now = Date.now();
    var staleServers = [];
    servers.forEach(function (state, index) {
      if (now - state.seen > 1000 * staleAfter) {
        staleServers.push(index);
        if (state.section) {
          state.section.classList.add("stale");
          text(field(state.section, "state"), "stale");
        }
      }
    });
    if (staleServers.length) {
      setLive("stale", "no update for " + Math.round((now - lastMessage) / 1000) + " s");
    } else {
      setLive("live");
    }
  }

  function sendView() {
    if (socket && socket.readyState === 1) {
      socket.send(JSON.stringify(view));
    }
  }

  function connect(firstView) {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + "/live");
    socket.onopen = function () {
      setLive("live");
      lastMessage = Date.now();
      socket.send(JSON.stringify(firstView()));
    };
    socket.onmessage = function (event) {
      var started = performance.now();
      var message = JSON.parse(event.data);
      lastMessage = Date.now();
      if (message.type === "hello") {
        historySeconds = message.history_seconds;
        interval = message.interval || 1;
        staleAfter = message.stale_after || 40;
        servers.forEach(function (state) {
          state.rows.clear();
          state.hist.clear();
        });
      } else if (message.type === "server") {
        renderServer(message);
      } else if (message.type === "tube") {
        renderTube(message);
      }
      // What the tests (and a curious operator) can read: updates, bytes and main-thread time.
      var body = document.body;
      var spent = performance.now() - started;
      body.setAttribute("data-updates", String(1 + Number(body.getAttribute("data-updates") || 0)));
      body.setAttribute("data-last-bytes", String(event.data.length));
      body.setAttribute("data-max-bytes", String(Math.max(event.data.length, Number(body.getAttribute("data-max-bytes") || 0))));
      body.setAttribute("data-max-update-ms", String(Math.max(spent, Number(body.getAttribute("data-max-update-ms") || 0)).toFixed(1)));
      checkStale();
    };
    socket.onclose = function () {
      setLive("reconnecting");
      window.setTimeout(function () {
        connect(firstView);
      }, 2000);
    };
  }

  function controls() {
    var sort = document.getElementById("sort");
    var filter = document.getElementById("filter");
    var form = document.getElementById("view-controls");
    if (!sort || !filter || !form) {
      return;
    }
    var timer = null;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
    });
    sort.addEventListener("change", function () {
      view.sort = sort.value;
      sendView();
    });
    filter.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(function () {
        view.filter = filter.value.trim();
        sendView();
      }, 150);
    });
  }

  function confirmForms() {
    Array.prototype.forEach.call(document.querySelectorAll("form[data-confirm]"), function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) {
          event.preventDefault();
        }
      });
    });
  }

  function lookupForm() {
    var form = document.getElementById("lookup-form");
    if (!form) {
      return;
    }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var id = form.querySelector("input[name=id]").value.trim();
      window.location.href = "/server/" + form.getAttribute("data-server") + "/job/" + encodeURIComponent(id);
    });
  }

  confirmForms();
  lookupForm();
  controls();
  if (document.getElementById("servers")) {
    connect(function () {
      return view;
    });
  } else {
    var heading = document.querySelector("h1.tube-name[data-tube]");
    if (heading && heading.getAttribute("data-server") !== null) {
      var index = Number(heading.getAttribute("data-server"));
      var name = heading.getAttribute("data-tube");
      connect(function () {
        return { tube: [index, name] };
      });
    }
  }
  window.setInterval(checkStale, 1000);
})();
