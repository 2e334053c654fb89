// The journey editor: the campaign's steps as a list of cards (message, wait, split, tag) kept in
// step with the JSON textarea the form posts (the API's shape). Editing a card rewrites the JSON;
// editing the JSON redraws the cards. Adding, removing, reordering steps (and their keys and a
// split's branches) is turned off while the campaign is active: the server refuses it anyway.
// The server's errors of the last save, named like "steps[1].body", land next to that field.
// It also fills the preview's step and variant picker (and the send test's copy of them).
"use strict";
(function () {
  const CONDITIONS = [
    ["purchased_since_entry", "Purchased since entering"],
    ["clicked_previous", "Clicked the previous message"],
    ["opened_previous", "Opened the previous message"],
    ["tier", "Tier is one of"],
    ["min_total_spent", "Has spent at least"],
    ["has_tag", "Has the tag"],
  ];
  const FLAGS = ["purchased_since_entry", "clicked_previous", "opened_previous"];
  const UNITS = [["days", 1440], ["hours", 60], ["minutes", 1]];
  const MAX_VARIANTS = 4;

  let editor = null;
  let textarea = null;
  let steps = [];
  let locked = false;
  let errors = {};

  // --- Small DOM helpers -------------------------------------------------------------------------

  function el(tag, props, children) {
    const node = document.createElement(tag);
    Object.entries(props || {}).forEach(function ([name, value]) {
      if (value === undefined || value === null || value === false) return;
      if (name === "text") node.textContent = value;
      else if (name === "className") node.className = value;
      else if (name === "value") node.value = value;
      else if (name.indexOf("on") === 0) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  function field(label, control, name, help) {
    const id = "journey-" + Math.random().toString(36).slice(2, 10);
    control.id = control.id || id;
    return el("div", {className: "journey-field", "data-field": name}, [
      el("label", {for: control.id, text: label}),
      control,
      help ? el("div", {className: "help", text: help}) : null,
    ]);
  }

  function select(options, value, onchange, props) {
    const node = el("select", props || {});
    options.forEach(function ([optionValue, label]) {
      node.appendChild(el("option", {value: optionValue, text: label, selected: optionValue === value}));
    });
    node.value = value;
    node.addEventListener("change", onchange);
    return node;
  }

  function textInput(value, oninput, props) {
    return el("input", Object.assign({type: "text", value: value === undefined || value === null ? "" : String(value),
      oninput: oninput, autocomplete: "off", className: "vTextField"}, props || {}));
  }

  function tags(text) {
    return text.split(",").map(function (tag) { return tag.trim(); }).filter(Boolean);
  }

  // --- The state and the JSON ----------------------------------------------------------------------

  function sync() {
    textarea.value = steps.length ? JSON.stringify(steps, null, 2) : "";
    afterChange();
  }

  function afterChange() {
    toggleSingleMessage();
    fillPicker();
    // The live preview (editor.js) renders the chosen step again.
    if (textarea.form) textarea.form.dispatchEvent(new CustomEvent("journey:changed"));
  }

  function unusedKey(kind) {
    const used = new Set(steps.map(function (step) { return step.key; }));
    for (let n = 1; ; n++) {
      if (!used.has(kind + "-" + n)) return kind + "-" + n;
    }
  }

  function newStep(kind) {
    const key = unusedKey(kind);
    if (kind === "message") {
      const first = !steps.some(function (step) { return step.type === "message"; });
      const subject = first && document.getElementById("id_subject") ? document.getElementById("id_subject").value : "";
      const body = first && document.getElementById("id_body") ? document.getElementById("id_body").value : "";
      return {key: key, type: "message", subject: subject, body: body};
    }
    if (kind === "wait") return {key: key, type: "wait", minutes: 1440};
    if (kind === "split") return {key: key, type: "split", condition: {purchased_since_entry: true}, yes: "exit", no: "exit"};
    return {key: key, type: "tag", add: []};
  }

  function structural(change) {
    if (locked) return;
    change();
    errors = {};  // the last save's errors name positions that may have moved
    render();
    sync();
  }

  // --- The cards -----------------------------------------------------------------------------------

  function messageFields(step, index) {
    const channel = document.getElementById("id_channel");
    const channels = [["", "the campaign's channel"]].concat(
      channel ? Array.from(channel.options).map(function (o) { return [o.value, o.textContent]; }) : []);
    const parts = [];
    parts.push(field("Channel", select(channels, step.channel || "", function (event) {
      if (event.target.value) step.channel = event.target.value; else delete step.channel;
      sync();
    }, {className: "step-channel"}), "channel"));
    const hasVariants = Array.isArray(step.variants) && step.variants.length > 0;
    parts.push(field("Subject", textInput(step.subject, function (event) { step.subject = event.target.value; sync(); },
      {className: "vTextField step-subject"}), "subject", hasVariants ? "Used by a variant without its own subject." : ""));
    const body = el("textarea", {rows: 4, className: "step-body campaign-template", spellcheck: "false",
      oninput: function (event) { step.body = event.target.value; sync(); }});
    body.value = step.body || "";
    parts.push(field("Body", body, "body", hasVariants ? "Used by a variant without its own body." : ""));
    parts.push(offerFields(step));
    parts.push(variantFields(step, index));
    return parts;
  }

  function offerFields(step) {
    const offer = step.offer || {};
    function setter(name, number) {
      return function (event) {
        const value = event.target.value.trim();
        const next = Object.assign({}, step.offer || {});
        if (value === "") delete next[name]; else next[name] = number && /^\d+$/.test(value) ? Number(value) : value;
        if (Object.keys(next).length) step.offer = next; else delete step.offer;
        sync();
      };
    }
    return el("div", {className: "journey-inline", "data-field": "offer"}, [
      field("Bonus points", textInput(offer.bonus_points, setter("bonus_points", true), {className: "vIntegerField step-bonus"}),
        "offer.bonus_points"),
      field("Discount %", textInput(offer.discount_percent, setter("discount_percent", true),
        {className: "vIntegerField step-discount"}), "offer.discount_percent"),
      field("Code prefix", textInput(offer.code_prefix, setter("code_prefix", false), {className: "vIntegerField step-prefix"}),
        "offer.code_prefix"),
    ]);
  }

  function variantFields(step, index) {
    const box = el("div", {className: "journey-variants", "data-field": "variants"});
    const variants = Array.isArray(step.variants) ? step.variants : [];
    if (!variants.length) {
      box.appendChild(el("button", {type: "button", className: "button step-add-ab", text: "Add an A/B test",
        onclick: function () {
          step.variants = ["a", "b"].map(function (key) {
            return {key: key, weight: 1, subject: step.subject || "", body: step.body || ""};
          });
          render(); sync();
        }}));
      return box;
    }
    box.appendChild(el("h4", {text: "A/B variants (each customer always gets the same one)"}));
    variants.forEach(function (variant, number) {
      const body = el("textarea", {rows: 3, className: "variant-body campaign-template", spellcheck: "false",
        oninput: function (event) { variant.body = event.target.value; sync(); }});
      body.value = variant.body || "";
      box.appendChild(el("div", {className: "journey-variant", "data-variant": variant.key,
        "data-field": "variants[" + number + "]"}, [
        el("div", {className: "journey-inline"}, [
          field("Variant", textInput(variant.key, function (event) { variant.key = event.target.value.trim(); sync(); },
            {className: "vIntegerField variant-key"}), "variants[" + number + "].key"),
          field("Weight", el("input", {type: "number", min: 1, max: 1000, value: variant.weight || 1,
            className: "vIntegerField variant-weight",
            oninput: function (event) { variant.weight = Number(event.target.value) || event.target.value; sync(); }}),
            "variants[" + number + "].weight"),
          variants.length > 2 ? el("button", {type: "button", className: "button variant-remove",
            "aria-label": "Remove variant " + variant.key, text: "Remove variant",
            onclick: function () { variants.splice(number, 1); render(); sync(); }}) : null,
        ]),
        field("Subject", textInput(variant.subject, function (event) { variant.subject = event.target.value; sync(); },
          {className: "vTextField variant-subject"}), "variants[" + number + "].subject"),
        field("Body", body, "variants[" + number + "].body"),
      ]));
    });
    const tools = el("div", {className: "journey-inline"});
    if (variants.length < MAX_VARIANTS) {
      tools.appendChild(el("button", {type: "button", className: "button variant-add", text: "Add a variant",
        onclick: function () {
          const used = new Set(variants.map(function (v) { return v.key; }));
          const key = "abcdefgh".split("").find(function (letter) { return !used.has(letter); });
          variants.push({key: key, weight: 1, subject: step.subject || "", body: step.body || ""});
          render(); sync();
        }}));
    }
    tools.appendChild(el("button", {type: "button", className: "button step-remove-ab", text: "Remove the A/B test",
      onclick: function () {
        step.subject = step.subject || variants[0].subject;
        step.body = step.body || variants[0].body;
        delete step.variants; delete step.auto_winner;
        render(); sync();
      }}));
    box.appendChild(tools);
    const auto = step.auto_winner;
    const minimum = auto && typeof auto === "object" && auto.min_per_variant ? auto.min_per_variant : 500;
    const checkbox = el("input", {type: "checkbox", className: "step-auto-winner", checked: Boolean(auto),
      onchange: function (event) {
        if (event.target.checked) step.auto_winner = {min_per_variant: minimum}; else delete step.auto_winner;
        render(); sync();
      }});
    const row = el("div", {className: "journey-inline journey-auto-winner", "data-field": "auto_winner"}, [
      el("label", {className: "vCheckboxLabel"}, [checkbox, document.createTextNode(" Pick a winner automatically")]),
    ]);
    if (auto) {
      row.appendChild(field("once every variant has sent", el("input", {type: "number", min: 10, value: minimum,
        className: "vIntegerField step-min-per-variant",
        oninput: function (event) { step.auto_winner = {min_per_variant: Number(event.target.value) || event.target.value}; sync(); }}),
        "auto_winner.min_per_variant", "then the best converting variant (p < 0.05) goes to every new arrival"));
    }
    box.appendChild(row);
    return box;
  }

  function waitFields(step) {
    const mode = "until" in step ? "until" : "minutes";
    const parts = [field("Wait", select([["minutes", "for"], ["until", "until a time of day"]], mode, function (event) {
      if (event.target.value === "until") { delete step.minutes; step.until = "10:00"; }
      else { delete step.until; step.minutes = 1440; }
      render(); sync();
    }, {className: "wait-mode"}), "mode")];
    if (mode === "until") {
      parts.push(field("Time (the customer's time zone)", el("input", {type: "time", value: step.until || "",
        className: "wait-until", oninput: function (event) { step.until = event.target.value; sync(); }}), "until"));
      return [el("div", {className: "journey-inline"}, parts)];
    }
    const minutes = Number(step.minutes) || 0;
    const unit = UNITS.find(function ([, size]) { return minutes && minutes % size === 0; }) || UNITS[2];
    const amount = el("input", {type: "number", min: 1, value: minutes ? minutes / unit[1] : (step.minutes || ""),
      className: "vIntegerField wait-amount"});
    const units = select(UNITS.map(function ([name]) { return [name, name]; }), unit[0], update, {className: "wait-unit"});
    function update() {
      const size = UNITS.find(function ([name]) { return name === units.value; })[1];
      const number = Number(amount.value);
      step.minutes = amount.value.trim() && Number.isFinite(number) ? Math.round(number * size) : amount.value;
      sync();
    }
    amount.addEventListener("input", update);
    parts.push(field("Amount", amount, "minutes"), field("Unit", units, "minutes"));
    return [el("div", {className: "journey-inline"}, parts)];
  }

  function branchOptions(step, current) {
    const options = [["exit", "exit the journey"]];
    steps.forEach(function (other) {
      if (other !== step) options.push([other.key, "go to " + other.key]);
    });
    if (current && !options.some(function ([value]) { return value === current; })) {
      options.push([current, current + " (no such step)"]);
    }
    return options;
  }

  function splitFields(step) {
    const condition = step.condition && typeof step.condition === "object" ? step.condition : {};
    const name = Object.keys(condition)[0] || "purchased_since_entry";
    const parts = [field("If the customer", select(CONDITIONS, name, function (event) {
      const chosen = event.target.value;
      step.condition = {};
      step.condition[chosen] = FLAGS.indexOf(chosen) >= 0 ? true : chosen === "tier" ? [] : "";
      render(); sync();
    }, {className: "split-condition"}), "condition")];
    if (FLAGS.indexOf(name) < 0) {
      const raw = condition[name];
      const shown = Array.isArray(raw) ? raw.join(", ") : raw;
      const help = name === "tier" ? "comma-separated tier codes" : name === "has_tag" ? "a tag" : "an amount";
      parts.push(field("Value", textInput(shown, function (event) {
        const value = event.target.value;
        step.condition = {};
        step.condition[name] = name === "tier" ? tags(value) : value.trim();
        sync();
      }, {className: "vTextField split-value"}), "condition." + name, help));
    }
    const branches = ["yes", "no"].map(function (branch) {
      return field(branch === "yes" ? "Yes:" : "No:", select(branchOptions(step, step[branch]), step[branch] || "exit",
        function (event) { step[branch] = event.target.value; sync(); },
        {className: "split-" + branch, disabled: locked}), branch);
    });
    return [el("div", {className: "journey-inline"}, parts), el("div", {className: "journey-inline"}, branches)];
  }

  function tagFields(step) {
    function setter(name) {
      return function (event) {
        const list = tags(event.target.value);
        if (list.length) step[name] = list; else delete step[name];
        sync();
      };
    }
    return [el("div", {className: "journey-inline"}, [
      field("Add tags", textInput((step.add || []).join(", "), setter("add"), {className: "vTextField tag-add"}), "add",
        "comma-separated"),
      field("Remove tags", textInput((step.remove || []).join(", "), setter("remove"), {className: "vTextField tag-remove"}),
        "remove", "comma-separated"),
    ])];
  }

  function card(step, index) {
    const kind = ["message", "wait", "split", "tag"].indexOf(step.type) >= 0 ? step.type : "unknown";
    let keyBefore = step.key;
    const key = textInput(step.key, function (event) { step.key = event.target.value.trim(); sync(); },
      {className: "vTextField step-key", disabled: locked, id: "journey-key-" + index});
    key.addEventListener("focus", function () { keyBefore = step.key; });
    key.addEventListener("change", function () {
      // Splits that went to the old key follow the rename.
      steps.forEach(function (other) {
        ["yes", "no"].forEach(function (branch) { if (other[branch] === keyBefore) other[branch] = step.key; });
      });
      render(); sync();
    });
    const tool = function (className, text, label, disabled, onclick) {
      return el("button", {type: "button", className: "button " + className, text: text, title: label,
        "aria-label": label, disabled: locked || disabled, onclick: onclick});
    };
    const head = el("div", {className: "journey-step-head"}, [
      el("span", {className: "journey-step-number", text: String(index + 1)}),
      el("span", {className: "journey-kind journey-kind-" + kind, text: step.type}),
      el("label", {className: "journey-key-label", for: key.id, text: "Key"}),
      key,
      el("span", {className: "journey-step-tools"}, [
        tool("step-up", "↑", "Move step " + (index + 1) + " up", index === 0, function () {
          structural(function () { steps.splice(index - 1, 0, steps.splice(index, 1)[0]); });
        }),
        tool("step-down", "↓", "Move step " + (index + 1) + " down", index === steps.length - 1, function () {
          structural(function () { steps.splice(index + 1, 0, steps.splice(index, 1)[0]); });
        }),
        tool("step-remove", "Remove", "Remove step " + (index + 1), false, function () {
          structural(function () { steps.splice(index, 1); });
        }),
      ]),
    ]);
    let body = [];
    if (kind === "message") body = messageFields(step, index);
    else if (kind === "wait") body = waitFields(step);
    else if (kind === "split") body = splitFields(step);
    else if (kind === "tag") body = tagFields(step);
    else body = [el("p", {className: "help", text: "Unknown kind: edit it in the JSON below."})];
    return el("li", {className: "journey-step journey-step-" + kind, "data-index": index, "data-key": step.key}, [
      head,
      el("div", {className: "journey-step-errors", "data-field": ""}),
      el("div", {className: "journey-step-body"}, body),
    ]);
  }

  function render() {
    const list = document.getElementById("journey-steps");
    list.replaceChildren.apply(list, steps.map(card));
    document.getElementById("journey-empty").hidden = steps.length > 0;
    editor.querySelectorAll(".journey-add").forEach(function (button) { button.disabled = locked; });
    placeErrors();
  }

  // --- The server's errors -------------------------------------------------------------------------

  function errorList(messages) {
    return el("ul", {className: "errorlist"}, messages.map(function (text) { return el("li", {text: text}); }));
  }

  function placeErrors() {
    const top = document.getElementById("journey-list-errors");
    top.replaceChildren();
    // The admin's own list of these errors (for a page without script) would say it all twice.
    const row = editor.closest(".form-row");
    const adminList = row && row.querySelector(":scope > ul.errorlist");
    if (adminList) adminList.hidden = Object.keys(errors).length > 0;
    Object.entries(errors).forEach(function ([name, messages]) {
      const match = /^steps\[(\d+)\](?:\.(.*))?$/.exec(name);
      const item = match && document.querySelector('#journey-steps > li[data-index="' + match[1] + '"]');
      if (!item) { top.appendChild(errorList(messages)); return; }
      let path = match[2] || "";
      let target = null;
      while (path && !target) {
        target = item.querySelector('[data-field="' + CSS.escape(path) + '"]');
        if (!target) path = path.replace(/(\.[^.[\]]*|\[\d+\])$/, "");
      }
      target = target || item.querySelector(".journey-step-errors");
      target.appendChild(errorList(messages));
      item.classList.add("has-errors");
    });
  }

  // --- The rest of the page ----------------------------------------------------------------------------

  function toggleSingleMessage() {
    // A journey's messages are its steps': the campaign's own message and offer do not apply.
    document.querySelectorAll("fieldset.campaign-message, fieldset.campaign-offer").forEach(function (fieldset) {
      fieldset.hidden = steps.length > 0;
    });
  }

  function fillPicker() {
    const stepPicker = document.getElementById("preview-step");
    const variantPicker = document.getElementById("preview-variant");
    if (!stepPicker || !variantPicker) return;
    const messages = steps.filter(function (step) { return step && step.type === "message"; });
    const row = document.getElementById("preview-step-row");
    if (row) row.hidden = messages.length === 0;
    const wantedStep = stepPicker.value || stepPicker.dataset.initial || "";
    stepPicker.replaceChildren.apply(stepPicker, messages.map(function (step) {
      return el("option", {value: step.key, text: step.key});
    }));
    if (messages.some(function (step) { return step.key === wantedStep; })) stepPicker.value = wantedStep;
    const chosen = messages.find(function (step) { return step.key === stepPicker.value; });
    const variants = chosen && Array.isArray(chosen.variants) ? chosen.variants : [];
    const wantedVariant = variantPicker.value || variantPicker.dataset.initial || "";
    variantPicker.replaceChildren.apply(variantPicker, variants.map(function (variant) {
      return el("option", {value: variant.key, text: variant.key});
    }));
    if (variants.some(function (variant) { return variant.key === wantedVariant; })) variantPicker.value = wantedVariant;
    variantPicker.disabled = variants.length === 0;
    document.getElementById("preview-variant-field").hidden = variants.length === 0;
    stepPicker.dataset.initial = "";
    variantPicker.dataset.initial = "";
    copyPicker();
  }

  function copyPicker() {
    // The send test posts its own form: it gets the chosen step and variant too.
    const stepPicker = document.getElementById("preview-step");
    const variantPicker = document.getElementById("preview-variant");
    document.querySelectorAll("input.carries-preview-step").forEach(function (input) {
      input.value = stepPicker && !stepPicker.closest("[hidden]") ? stepPicker.value : "";
    });
    document.querySelectorAll("input.carries-preview-variant").forEach(function (input) {
      input.value = variantPicker && !variantPicker.disabled ? variantPicker.value : "";
    });
  }

  function readJson() {
    const error = document.getElementById("journey-json-error");
    const text = textarea.value.trim();
    try {
      const parsed = text ? JSON.parse(text) : [];
      if (!Array.isArray(parsed)) throw new Error("the steps must be a list [...]");
      steps = parsed;
      error.hidden = true;
      editor.classList.remove("journey-json-invalid");
      return true;
    } catch (problem) {
      error.textContent = "The JSON is not valid yet (" + problem.message + "); the list shows the last valid steps.";
      error.hidden = false;
      editor.classList.add("journey-json-invalid");
      return false;
    }
  }

  function toggleReentryDays() {
    // The number of days means something only for "again, N days after".
    const mode = document.getElementById("id_reentry_mode");
    const days = document.getElementById("id_reentry_days");
    if (mode && days) days.disabled = mode.value !== "after_days";
  }

  document.addEventListener("DOMContentLoaded", function () {
    toggleReentryDays();
    const reentry = document.getElementById("id_reentry_mode");
    if (reentry) reentry.addEventListener("change", toggleReentryDays);
    editor = document.getElementById("journey-editor");
    textarea = document.getElementById("id_steps_json");
    if (!editor || !textarea) return;
    locked = editor.dataset.locked === "true";
    try { errors = JSON.parse(editor.dataset.errors || "{}"); } catch (problem) { errors = {}; }
    editor.querySelectorAll(".journey-add").forEach(function (button) {
      button.addEventListener("click", function () {
        structural(function () { steps.push(newStep(button.dataset.kind)); });
      });
    });
    textarea.addEventListener("input", function () {
      if (readJson()) { render(); afterChange(); }
    });
    const raw = document.getElementById("journey-raw");
    if (readJson()) {
      render();
      if (raw) raw.open = false;  // the list is the editor; the JSON is there for power users
    }
    afterChange();
    const stepPicker = document.getElementById("preview-step");
    if (stepPicker) stepPicker.addEventListener("change", function () {
      document.getElementById("preview-variant").value = "";  // the new step's first variant
      fillPicker();
    });
    const variantPicker = document.getElementById("preview-variant");
    if (variantPicker) variantPicker.addEventListener("change", copyPicker);
  });
})();
