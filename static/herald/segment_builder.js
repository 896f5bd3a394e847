// Segment builder: rows of rules added and removed in place, each row offering the
// operators and suggested values of its field, and a live count of who the rules as typed
// match (posted 400 ms after the last change). Without this script the page still saves:
// its rows and text box are a plain form, and the count panel stays hidden.
(function () {
  "use strict";
  const form = document.getElementById("segment-form");
  const panel = document.getElementById("segment-count");
  const list = document.getElementById("rule-rows");
  if (!form || !panel || !list || !window.fetch) return;
  const opsOf = JSON.parse(form.dataset.ops || "{}");
  const addButton = document.getElementById("add-rule");
  let timer = null;
  let latest = 0;

  function rows() { return Array.from(list.querySelectorAll(".rule-row")); }
  function part(row, name) { return row.querySelector(`[data-part="${name}"]`); }

  // Ids, labels and button names follow the row's place, so each control keeps a name of
  // its own ("Rule 2: Value") after rows come and go.
  function renumber() {
    rows().forEach(function (row, index) {
      const n = index + 1;
      for (const name of ["field", "op", "value", "error"]) {
        part(row, name).id = `rule-${n}-${name}`;
      }
      row.querySelectorAll("label").forEach(function (label) {
        const control = label.parentElement.querySelector("[data-part]");
        label.htmlFor = control.id;
      });
      row.querySelectorAll(".rule-number").forEach(function (number) {
        number.textContent = number.closest("label") ? `Rule ${n}: ` : ` rule ${n}`;
      });
      const value = part(row, "value");
      if (value.hasAttribute("aria-describedby")) value.setAttribute("aria-describedby", `rule-${n}-error`);
    });
  }

  // The operators the chosen field takes (campaigns.segments.OPS_OF), and its values list.
  function fit(row) {
    const field = part(row, "field");
    const op = part(row, "op");
    const value = part(row, "value");
    const chosen = field.selectedOptions[0];
    const allowed = chosen && opsOf[chosen.dataset.kind];
    Array.from(op.options).forEach(function (option) {
      option.disabled = Boolean(allowed) && !allowed.includes(option.value);
      option.hidden = option.disabled;
    });
    if (allowed && !allowed.includes(op.value)) op.value = allowed[0];
    const values = chosen && chosen.dataset.values;
    if (values) value.setAttribute("list", values); else value.removeAttribute("list");
    // "is set" takes no value: emptied, and read-only (a disabled input would not be posted,
    // and the rows' fields, operators and values are read in step).
    const noValue = op.value === "set" || op.value === "unset";
    if (noValue) value.value = "";
    value.readOnly = noValue;
  }

  function clear(row) {
    part(row, "field").value = "";
    part(row, "op").value = "=";
    part(row, "value").value = "";
    showError(row, "");
    fit(row);
  }

  function addRow() {
    const last = rows()[rows().length - 1];
    const row = last.cloneNode(true);
    list.appendChild(row);
    clear(row);
    renumber();
    part(row, "field").focus();
    schedule();
  }

  function removeRow(row) {
    if (rows().length === 1) {
      clear(row);
      part(row, "field").focus();
    } else {
      const next = row.nextElementSibling || row.previousElementSibling;
      row.remove();
      renumber();
      part(next, "field").focus();
    }
    schedule();
  }

  function showError(row, text) {
    const error = part(row, "error");
    const value = part(row, "value");
    error.textContent = text;
    row.classList.toggle("invalid", Boolean(text));
    if (text) {
      value.setAttribute("aria-invalid", "true");
      value.setAttribute("aria-describedby", error.id);
    } else {
      value.removeAttribute("aria-invalid");
      value.removeAttribute("aria-describedby");
    }
  }

  function item(text) {
    const li = document.createElement("li");
    li.textContent = text;
    return li;
  }

  function show(data) {
    const count = document.getElementById("segment-count-value");
    const label = document.getElementById("segment-count-label");
    if (data.count === null) {
      count.textContent = "–";
      label.textContent = data.errors.length
        ? "Correct the rules marked to see who matches."
        : "Add a rule to see who matches.";
    } else {
      count.textContent = data.count.toLocaleString("en-GB");
      label.textContent = data.count === 1 ? "contact matches" : "contacts match";
    }
    rows().forEach(function (row, index) { showError(row, data.row_errors[index] || ""); });
    const others = data.errors.filter(function (e) { return !data.row_errors.includes(e); });
    document.getElementById("segment-errors").replaceChildren(...others.map(item));
    document.getElementById("segment-warnings").replaceChildren(...data.warnings.map(item));
    const samples = data.samples.map(function (s) { return item(`${s.name} · ${s.phone}`); });
    document.getElementById("segment-samples").replaceChildren(...samples);
  }

  function refresh() {
    const request = ++latest;
    fetch(panel.dataset.url, {
      method: "POST",
      body: new FormData(form),
      headers: { "X-Requested-With": "fetch" },
      credentials: "same-origin",
    }).then(function (response) {
      if (!response.ok) throw new Error(`count failed: ${response.status}`);
      return response.json();
    }).then(function (data) {
      if (request === latest) show(data); // an older, slower answer must not win
    }).catch(function () {
      if (request === latest) {
        document.getElementById("segment-errors")
          .replaceChildren(item("The count is unavailable just now; saving still works."));
      }
    });
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 400);
  }

  list.addEventListener("change", function (event) {
    const row = event.target.closest(".rule-row");
    if (row && event.target.dataset.part !== "value") fit(row);
  });
  list.addEventListener("click", function (event) {
    const button = event.target.closest(".remove-rule");
    if (button) removeRow(button.closest(".rule-row"));
  });
  addButton.addEventListener("click", addRow);
  form.addEventListener("input", schedule);
  form.addEventListener("change", schedule);

  panel.hidden = false;
  addButton.hidden = false;
  form.querySelectorAll(".remove-rule").forEach(function (button) { button.hidden = false; });
  rows().forEach(fit);
  refresh();
})();
