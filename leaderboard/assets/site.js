// HMU-Bench leaderboard: sortable and filterable tables, the trade-off plot picker and the stick-figure
// player. Plain JavaScript; every piece of data is embedded in the page, nothing is fetched.
(function () {
  "use strict";

  // ------------------------------------------------------------------ sorting
  // A sortable header names its column (data-col) and type (data-type: num | text); a cell's sort key is
  // its data-sort attribute. Rows without a key go last in either direction; pinned rows (the reference)
  // stay on top.
  function compareCells(a, b, type, descending) {
    var x = a ? a.getAttribute("data-sort") : null;
    var y = b ? b.getAttribute("data-sort") : null;
    var xMissing = x === null || x === "";
    var yMissing = y === null || y === "";
    if (xMissing || yMissing) {
      return xMissing === yMissing ? 0 : xMissing ? 1 : -1;
    }
    var order = type === "num" ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
    return descending ? -order : order;
  }

  function sortTable(table, header) {
    var column = parseInt(header.getAttribute("data-col"), 10);
    var type = header.getAttribute("data-type") || "num";
    var descending = header.getAttribute("aria-sort") === "ascending";
    table.querySelectorAll("th[aria-sort]").forEach(function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", descending ? "descending" : "ascending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var pinned = rows.filter(function (row) { return row.classList.contains("pinned"); });
    var others = rows.filter(function (row) { return !row.classList.contains("pinned"); });
    // A failure's log row travels with the row above it.
    var groups = [];
    others.forEach(function (row) {
      if (row.classList.contains("log-row") && groups.length) {
        groups[groups.length - 1].push(row);
      } else {
        groups.push([row]);
      }
    });
    groups.sort(function (a, b) { return compareCells(a[0].cells[column], b[0].cells[column], type, descending); });
    pinned.forEach(function (row) { body.appendChild(row); });
    groups.forEach(function (group) { group.forEach(function (row) { body.appendChild(row); }); });
  }

  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("th[data-col]").forEach(function (header) {
      header.tabIndex = 0;
      header.addEventListener("click", function () { sortTable(table, header); });
      header.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          sortTable(table, header);
        }
      });
    });
  });

  // ------------------------------------------------------------------ filtering
  function applyFilter(table) {
    var input = document.querySelector('[data-filter-for="' + table.id + '"]');
    var toggle = document.querySelector('[data-failed-for="' + table.id + '"]');
    var words = input ? input.value.toLowerCase().split(/\s+/).filter(Boolean) : [];
    var showFailed = toggle ? toggle.checked : true;
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      var text = (row.getAttribute("data-search") || row.textContent).toLowerCase();
      var match = words.every(function (word) { return text.indexOf(word) !== -1; });
      row.hidden = !match || (!showFailed && row.classList.contains("failed"));
    });
  }

  document.querySelectorAll("[data-filter-for], [data-failed-for]").forEach(function (control) {
    var id = control.getAttribute("data-filter-for") || control.getAttribute("data-failed-for");
    var table = document.getElementById(id);
    if (table) {
      control.addEventListener("input", function () { applyFilter(table); });
      control.addEventListener("change", function () { applyFilter(table); });
    }
  });

  // ------------------------------------------------------------------ trade-off plot picker
  document.querySelectorAll(".plot-picker").forEach(function (picker) {
    var plots = document.getElementById("plots-" + picker.getAttribute("data-plots"));
    var pickX = picker.querySelector(".pick-x");
    var pickY = picker.querySelector(".pick-y");
    function show() {
      plots.querySelectorAll("figure").forEach(function (figure) {
        figure.hidden = !(figure.getAttribute("data-x") === pickX.value && figure.getAttribute("data-y") === pickY.value);
      });
    }
    pickX.addEventListener("change", show);
    pickY.addEventListener("change", show);
  });

  // ------------------------------------------------------------------ stick figures
  // Joint positions are little-endian int16 (units_per_metre per metre), base64, frame-major: frame f,
  // joint j, axis a at index (f * J + j) * 3 + a; decoded once per clip. The camera is orthographic at 45 degrees azimuth and 12 degrees elevation
  // (benchmark/render.py's three-quarter view), follows the root, and the floor grid is fixed in the world.
  var AZIMUTH = Math.PI / 4;
  var ELEVATION = 12 * Math.PI / 180;
  var TOWARD = [Math.sin(AZIMUTH) * Math.cos(ELEVATION), Math.sin(ELEVATION), Math.cos(AZIMUTH) * Math.cos(ELEVATION)];
  var RIGHT = normalise(cross([0, 1, 0], TOWARD));
  var UP = cross(TOWARD, RIGHT);
  var VIEW_HEIGHT = 2.6;  // metres shown over the canvas height
  var FLOOR_AT = 0.86;    // the floor's height on the canvas, from the top
  var COLOURS = { left: "#1f77b4", right: "#d62728", trunk: "#3c3c3c" };

  function cross(a, b) { return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]; }
  function dot(a, b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
  function normalise(v) { var n = Math.sqrt(dot(v, v)); return [v[0] / n, v[1] / n, v[2] / n]; }

  function decode(packed) {
    var bytes = window.atob(packed);
    var values = new Int16Array(bytes.length / 2);
    for (var i = 0; i < values.length; i++) {
      values[i] = (bytes.charCodeAt(2 * i) | (bytes.charCodeAt(2 * i + 1) << 8)) << 16 >> 16;
    }
    return values;
  }

  function joint(clip, skeleton, frame, index) {
    if (!clip.values) { clip.values = decode(clip.joints); }
    var base = (frame * skeleton.joints + index) * 3;
    var unit = skeleton.units_per_metre;
    return [clip.values[base] / unit, clip.values[base + 1] / unit, clip.values[base + 2] / unit];
  }

  function drawFigure(canvas, clip, skeleton, frame, missing) {
    var ratio = window.devicePixelRatio || 1;
    var width = canvas.clientWidth || canvas.width;
    var height = canvas.clientHeight || canvas.height;
    if (canvas.width !== Math.round(width * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    var ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    if (!clip) {
      ctx.fillStyle = "#8d99ab";
      ctx.font = "13px system-ui, sans-serif";
      ctx.textAlign = "center";
      ctx.fillText(missing, width / 2, height / 2);
      return;
    }
    var f = frame % clip.frames;
    var root = joint(clip, skeleton, f, 0);
    var centre = [root[0], 0, root[2]];
    var scale = height / VIEW_HEIGHT;
    var ox = width / 2, oy = height * FLOOR_AT;
    function project(p) {
      var rel = [p[0] - centre[0], p[1] - centre[1], p[2] - centre[2]];
      return [ox + dot(rel, RIGHT) * scale, oy - dot(rel, UP) * scale];
    }
    // Floor grid: 0.5 m lines around the root, fixed in the world.
    ctx.strokeStyle = "#e1e5eb";
    ctx.lineWidth = 1;
    var spacing = 0.5, extent = 1.5;
    var firstX = Math.floor((centre[0] - extent) / spacing) * spacing;
    var firstZ = Math.floor((centre[2] - extent) / spacing) * spacing;
    for (var k = 0; k <= 2 * extent / spacing + 1; k++) {
      var gx = firstX + k * spacing, gz = firstZ + k * spacing;
      line(ctx, project([gx, 0, centre[2] - extent]), project([gx, 0, centre[2] + extent]));
      line(ctx, project([centre[0] - extent, 0, gz]), project([centre[0] + extent, 0, gz]));
    }
    // The root's path on the floor.
    ctx.strokeStyle = "#b4bcc8";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    for (var t = 0; t < clip.frames; t++) {
      var r = joint(clip, skeleton, t, 0);
      var q = project([r[0], 0, r[2]]);
      if (t === 0) { ctx.moveTo(q[0], q[1]); } else { ctx.lineTo(q[0], q[1]); }
    }
    ctx.stroke();
    // Bones, far ones first.
    var bones = [];
    skeleton.chains.forEach(function (chain, index) {
      var colour = skeleton.left.indexOf(index) !== -1 ? COLOURS.left
        : skeleton.right.indexOf(index) !== -1 ? COLOURS.right : COLOURS.trunk;
      for (var i = 1; i < chain.length; i++) {
        var a = joint(clip, skeleton, f, chain[i - 1]);
        var b = joint(clip, skeleton, f, chain[i]);
        bones.push({ depth: dot(a, TOWARD) + dot(b, TOWARD), a: a, b: b, colour: colour });
      }
    });
    bones.sort(function (x, y) { return x.depth - y.depth; });
    ctx.lineCap = "round";
    ctx.lineWidth = Math.max(2.5, scale * 0.035);
    bones.forEach(function (bone) {
      ctx.strokeStyle = bone.colour;
      line(ctx, project(bone.a), project(bone.b));
    });
    var head = project(joint(clip, skeleton, f, 15));
    ctx.fillStyle = COLOURS.trunk;
    ctx.beginPath();
    ctx.arc(head[0], head[1], Math.max(4, scale * 0.06), 0, 2 * Math.PI);
    ctx.fill();
  }

  function line(ctx, p, q) {
    ctx.beginPath();
    ctx.moveTo(p[0], p[1]);
    ctx.lineTo(q[0], q[1]);
    ctx.stroke();
  }

  // Each run's clips arrive in their own script, motions/<run>.js, which calls hmuMotionsLoaded (a page opened
  // from disk may load scripts but not fetch files). A run is requested once, the first time a player shows it.
  // A script that fails to load, or loads without handing over its clips, leaves the run null: "missing".
  var motionClips = {}, motionWaiting = {};
  function settle(run, clips) {
    if (motionClips[run] !== undefined) { return; }
    motionClips[run] = clips;
    (motionWaiting[run] || []).forEach(function (callback) { callback(); });
    delete motionWaiting[run];
  }
  window.hmuMotionsLoaded = settle;
  function loadMotions(run, src, callback) {
    if (motionClips[run] !== undefined) { return; }
    if (motionWaiting[run]) { motionWaiting[run].push(callback); return; }
    motionWaiting[run] = [callback];
    var script = document.createElement("script");
    script.src = src;
    script.onload = script.onerror = function () { settle(run, null); };
    document.head.appendChild(script);
  }

  function Player(block) {
    var data = JSON.parse(block.querySelector("script.motion-data").textContent);
    var root = block.getAttribute("data-root") || "";
    var canvases = Array.prototype.slice.call(block.querySelectorAll("canvas.figure"));
    var button = block.querySelector(".play");
    var scrub = block.querySelector(".scrub");
    var label = block.querySelector(".frame-label");
    var choice = block.querySelector(".motion-choice");
    var frame = 0, playing = false, last = null, carry = 0;

    function runFor(role) {
      var selected = data.choices[parseInt(choice.value, 10) || 0];
      return role === "unlearned" ? selected.run : selected[role];
    }
    function clipOf(canvas) {
      var run = runFor(canvas.getAttribute("data-role"));
      var clips = run ? motionClips[run] : null;
      return clips ? clips[canvas.getAttribute("data-sample")] || null : null;
    }
    function load() {
      ["original", "unlearned", "reference"].forEach(function (role) {
        var run = runFor(role);
        if (run && data.scripts[run]) { loadMotions(run, root + data.scripts[run], draw); }
      });
    }
    function longest() {
      return canvases.reduce(function (most, canvas) {
        var clip = clipOf(canvas);
        return clip ? Math.max(most, clip.frames) : most;
      }, 1);
    }
    function draw() {
      canvases.forEach(function (canvas) {
        var role = canvas.getAttribute("data-role");
        var run = runFor(role), clip = clipOf(canvas);
        var missing = !run ? (role === "reference" ? "no reference run" : "no " + role + " run")
          : motionClips[run] === undefined ? "loading" : motionClips[run] === null ? "motion file missing" : "no sample motion";
        canvas.setAttribute("data-state", clip ? "drawn" : missing);
        drawFigure(canvas, clip, data.skeleton, frame, missing);
      });
      block.setAttribute("aria-busy", ["original", "unlearned", "reference"].some(function (role) {
        var run = runFor(role);
        return run && data.scripts[run] && motionClips[run] === undefined;
      }) ? "true" : "false");
      var shown = frame % longest();
      scrub.max = String(longest() - 1);
      scrub.value = String(shown);
      label.textContent = "frame " + shown + " · " + (shown / data.fps).toFixed(1) + " s";
    }
    function tick(now) {
      if (!playing) { return; }
      if (last !== null) {
        carry += (now - last) / 1000 * data.fps;
        var steps = Math.floor(carry);
        if (steps > 0) {
          carry -= steps;
          frame = (frame + steps) % longest();
          draw();
        }
      }
      last = now;
      window.requestAnimationFrame(tick);
    }
    function setPlaying(on) {
      playing = on;
      button.textContent = on ? "Pause" : "Play";
      button.setAttribute("aria-pressed", on ? "true" : "false");
      last = null;
      if (on) { window.requestAnimationFrame(tick); }
    }
    button.addEventListener("click", function () { setPlaying(!playing); });
    scrub.addEventListener("input", function () { frame = parseInt(scrub.value, 10) || 0; draw(); });
    choice.addEventListener("change", function () { frame = 0; load(); draw(); });
    load();
    draw();
    var reduced = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    setPlaying(!reduced);
  }

  document.querySelectorAll(".motion-block").forEach(function (block) { Player(block); });
})();
