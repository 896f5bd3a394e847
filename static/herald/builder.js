// Campaign builder: a live preview of what the form would send, posted as the user types.
// Without this script the page still saves; the preview panel simply stays hidden.
(function () {
  "use strict";
  // The page's one-time token in its address too: coming back to it (the back button
  // reloads it, as every page is no-store) finds the campaign it made instead of a blank form.
  var token = document.querySelector("input[name=form_token]");
  if (token && window.history.replaceState) {
    var address = new URL(window.location.href);
    if (address.searchParams.get("form") !== token.value) {
      address.searchParams.set("form", token.value);
      window.history.replaceState(window.history.state, "", address.toString());
    }
  }
  var panel = document.getElementById("preview");
  var form = panel && panel.closest("form");
  if (!panel || !form || !window.fetch) { return; }
  panel.hidden = false;
  var timer = null;
  var latest = 0;

  function text(id, value) { document.getElementById(id).textContent = value; }

  function item(content, className) {
    var li = document.createElement("li");
    if (className) { li.className = className; }
    li.textContent = content;
    return li;
  }

  function sample(s) {
    var li = document.createElement("li");
    var head = document.createElement("p");
    head.textContent = s.contact + " · " + s.segments + " segment" + (s.segments === 1 ? "" : "s") +
      " · " + (s.encoding === "ucs2" ? "UCS-2" : "GSM-7");
    var body = document.createElement("blockquote");
    body.className = "sample";
    var forcing = new Set(s.ucs2_characters);
    Array.from(s.body).forEach(function (c) {
      if (forcing.has(c)) {
        var mark = document.createElement("mark");
        mark.textContent = c;
        mark.title = "U+" + c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
        body.appendChild(mark);
      } else {
        body.appendChild(document.createTextNode(c));
      }
    });
    li.append(head, body);
    return li;
  }

  function show(data) {
    text("preview-segments", data.segments);
    text("preview-cost", data.cost || "–");
    text("preview-audience", data.audience);
    text("preview-opted-out", data.opted_out);
    text("preview-sendable", data.sendable);
    var parts = document.getElementById("preview-parts");
    parts.replaceChildren.apply(parts, data.parts.map(function (p) {
      return item(p.text, p.excluded ? "excluded" : "");
    }));
    text("preview-total", data.total_text);
    var warnings = document.getElementById("preview-warnings");
    warnings.replaceChildren.apply(warnings, data.warnings.map(function (w) { return item(w); }));
    text("preview-cap", data.cap);
    var others = Object.keys(data.skipped_labels).filter(function (r) { return data.skipped[r] && r !== "opted_out"; });
    var skips = others.map(function (r) { return data.skipped_labels[r].toLowerCase() + ": " + data.skipped[r]; });
    text("preview-other-skips", skips.length ? "Also skipped: " + skips.join(", ") + "." : "");
    var forcing = data.ucs2_characters.map(function (c) { return "“" + c.character + "” (" + c.code_point + ")"; });
    text("preview-encoding", forcing.length
      ? "UCS-2 (70 characters a segment) because of " + forcing.join(", ") + "."
      : "GSM-7 (160 characters a segment).");
    var errors = document.getElementById("preview-errors");
    errors.replaceChildren.apply(errors, data.errors.map(function (e) { return item(e); }));
    var missing = document.getElementById("preview-missing");
    missing.replaceChildren.apply(missing, data.missing.map(function (m) { return item(m.text); }));
    var samples = document.getElementById("preview-samples");
    samples.replaceChildren.apply(samples, data.samples.map(sample));
    var variants = document.getElementById("preview-variants");
    variants.hidden = !data.variants.length;
    var rows = variants.querySelector("tbody");
    rows.replaceChildren.apply(rows, data.variants.map(function (v) {
      var tr = document.createElement("tr");
      [v.variant, v.share + "%", v.recipients, v.segments, v.cost, v.sample].forEach(function (value, i) {
        var cell = document.createElement(i === 0 ? "th" : "td");
        if (i === 0) { cell.scope = "row"; }
        if (i > 0 && i < 5) { cell.className = "num"; }
        cell.textContent = value;
        tr.appendChild(cell);
      });
      return tr;
    }));
    text("preview-rest", data.rest_text);
  }

  function refresh() {
    var request = ++latest;
    fetch(panel.dataset.url, {
      method: "POST",
      body: new FormData(form),
      headers: { "X-Requested-With": "fetch" },
      credentials: "same-origin"
    }).then(function (response) {
      if (!response.ok) { throw new Error("preview failed: " + response.status); }
      return response.json();
    }).then(function (data) {
      if (request === latest) { show(data); }  // an older, slower answer must not win
    }).catch(function () {
      if (request === latest) {
        var errors = document.getElementById("preview-errors");
        errors.replaceChildren(item("The preview is unavailable just now; saving still works."));
      }
    });
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 400);
  }

  form.addEventListener("input", schedule);
  form.addEventListener("change", schedule);
  refresh();
})();
