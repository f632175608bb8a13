// beanstalkt web console: live overview, charts and small page helpers.
// Data from the server is only ever put into the page with textContent or
// setAttribute, never as HTML: a tube name or a job body cannot become markup.
"use strict";

(function () {
  var SVG = "http://www.w3.org/2000/svg";
  var FIELDS = ["ready", "reserved", "delayed", "buried"];
  var CHART_WIDTH = 160;
  var CHART_HEIGHT = 28;
  var historySeconds = 300;
  // history[serverIndex][tube] = [[time, ready, buried], ...]
  var history = {};

  function text(element, value) {
    var shown = value === null || value === undefined ? "\u2013" : String(value);
    if (element.textContent !== shown) {
      element.textContent = shown;
    }
  }

  function plural(count, noun) {
    return count + " " + noun + (count === 1 ? "" : "s");
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
    FIELDS.concat(["paused", "total", "put_rate", "delete_rate"]).forEach(function (name) {
      cell(row, name);
    });
    var chart = document.createElement("td");
    chart.className = "chart";
    row.appendChild(chart);
    return row;
  }

  function findRow(tbody, tube) {
    for (var i = 0; i < tbody.rows.length; i++) {
      if (tbody.rows[i].getAttribute("data-tube") === tube) {
        return tbody.rows[i];
      }
    }
    return null;
  }

  function remember(server, snapshot) {
    var perTube = history[server.index] || (history[server.index] = {});
    var seen = {};
    (server.tubes || []).forEach(function (tube) {
      seen[tube.name] = true;
      var points = perTube[tube.name] || (perTube[tube.name] = []);
      var last = points[points.length - 1];
      if (!last || last[0] < server.time) {
        points.push([server.time, tube.ready, tube.buried]);
      }
      while (points.length && points[0][0] < server.time - historySeconds) {
        points.shift();
      }
    });
    Object.keys(perTube).forEach(function (name) {
      if (!seen[name]) {
        delete perTube[name];
      }
    });
  }

  function polyline(points, now, span, top, column, cssClass) {
    var line = document.createElementNS(SVG, "polyline");
    var coordinates = points.map(function (point) {
      var x = CHART_WIDTH - ((now - point[0]) / span) * CHART_WIDTH;
      var y = CHART_HEIGHT - 2 - (point[column] / top) * (CHART_HEIGHT - 4);
      return x.toFixed(1) + "," + y.toFixed(1);
    });
    line.setAttribute("points", coordinates.join(" "));
    line.setAttribute("class", cssClass);
    return line;
  }

  function drawChart(td, points, now) {
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
    var top = 1;
    points.forEach(function (point) {
      top = Math.max(top, point[1], point[2]);
    });
    var title = document.createElementNS(SVG, "title");
    var last = points[points.length - 1] || [now, 0, 0];
    title.textContent = "ready " + last[1] + ", buried " + last[2] + " (scale 0\u2013" + top + ")";
    svg.appendChild(title);
    // The time axis covers what this console has seen, at least a minute, at most the history.
    var seen = points.length ? now - points[0][0] : 0;
    var span = Math.min(historySeconds, Math.max(60, seen));
    svg.appendChild(polyline(points, now, span, top, 1, "ready"));
    svg.appendChild(polyline(points, now, span, top, 2, "buried"));
  }

  function renderServer(server) {
    var section = document.querySelector('section.server[data-server="' + server.index + '"]');
    if (!section) {
      return;
    }
    section.classList.toggle("up", server.up);
    section.classList.toggle("down", !server.up);
    text(field(section, "state"), server.up ? "up" : "down");
    text(
      field(section, "summary"),
      server.up
        ? "beanstalkd " + server.version + " \u00b7 " + plural(server.totals.tubes, "tube") + " \u00b7 " +
            plural(server.totals.connections, "connection") + " \u00b7 " +
            plural(server.totals.workers, "worker")
        : server.error
    );
    var tbody = section.querySelector("tbody");
    var wanted = {};
    (server.tubes || []).forEach(function (tube, position) {
      wanted[tube.name] = true;
      var row = findRow(tbody, tube.name) || newRow(server.index, tube.name);
      if (tbody.rows[position] !== row) {
        tbody.insertBefore(row, tbody.rows[position] || null);
      }
      FIELDS.forEach(function (name) {
        text(field(row, name), tube[name]);
      });
      text(field(row, "paused"), tube.paused ? tube.pause_left + " s" : "");
      text(field(row, "total"), tube.total);
      text(field(row, "put_rate"), tube.put_rate);
      text(field(row, "delete_rate"), tube.delete_rate);
      row.classList.toggle("has-buried", tube.buried > 0);
      var points = (history[server.index] || {})[tube.name] || [];
      drawChart(row.querySelector("td.chart"), points, server.time);
    });
    Array.prototype.slice.call(tbody.rows).forEach(function (row) {
      if (!wanted[row.getAttribute("data-tube")]) {
        tbody.removeChild(row);
      }
    });
    var totals = section.querySelector('tr[data-totals="1"]');
    var sums = server.totals || {};
    FIELDS.forEach(function (name) {
      text(field(totals, name), server.up ? sums[name] : "");
    });
    text(field(totals, "put_rate"), server.put_rate);
    text(field(totals, "delete_rate"), server.delete_rate);
  }

  function setLive(state) {
    var status = document.getElementById("live-status");
    if (status) {
      status.setAttribute("data-state", state);
      status.textContent = state === "live" ? "\u25cf live" : "\u25cb " + state;
    }
  }

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + window.location.host + "/live");
    socket.onopen = function () {
      setLive("live");
    };
    socket.onmessage = function (event) {
      var message = JSON.parse(event.data);
      if (message.type === "hello") {
        historySeconds = message.history_seconds;
        history = {};
        message.servers.forEach(function (server, position) {
          var perTube = (history[server.index] = {});
          var points = message.history[position] || {};
          Object.keys(points).forEach(function (name) {
            perTube[name] = points[name];
          });
          renderServer(server);
        });
      } else if (message.type === "server") {
        remember(message.server);
        renderServer(message.server);
      }
      document.body.setAttribute("data-updates", String(1 + Number(document.body.getAttribute("data-updates") || 0)));
    };
    socket.onclose = function () {
      setLive("reconnecting");
      window.setTimeout(connect, 2000);
    };
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
  if (document.getElementById("servers")) {
    connect();
  }
})();
