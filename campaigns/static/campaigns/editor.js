// The campaign editor: show only the chosen trigger's parameters, render a live preview of the
// (unsaved) templates for a chosen customer, say whether that customer is eligible now, and
// estimate who would enter now — all through the admin's preview and audience endpoints.
"use strict";
(function () {
  function showTriggerParams() {
    const select = document.getElementById("id_trigger");
    if (!select) return;
    document.querySelectorAll("fieldset.trigger-params").forEach(function (fieldset) {
      fieldset.hidden = !fieldset.classList.contains("trigger-params-" + select.value);
    });
  }

  function formData(box) {
    const form = document.querySelector("#campaign_form");
    const data = new FormData(form);
    if (box.dataset.campaignId) data.set("campaign_id", box.dataset.campaignId);
    return data;
  }

  // The chosen preview customer rides along with every button of the page (save, run, status,
  // send test), so it is still chosen on the page that comes back.
  function carryPreviewCustomer() {
    const customer = document.getElementById("preview-customer");
    if (!customer) return;
    document.querySelectorAll("input.carries-preview-customer").forEach(function (input) {
      input.value = customer.value;
    });
  }

  let previewTimer = null;
  let previewSequence = 0;

  function renderPreview() {
    const box = document.getElementById("campaign-preview");
    if (!box || !document.querySelector("#campaign_form")) return;
    const data = formData(box);
    const customer = document.getElementById("preview-customer");
    data.set("preview_customer", customer ? customer.value : "");
    carryPreviewCustomer();
    const mine = ++previewSequence;
    fetch(box.dataset.previewUrl, {method: "POST", body: data, credentials: "same-origin"})
      .then(function (response) { return response.json(); })
      .then(function (answer) {
        if (mine !== previewSequence) return; // a newer keystroke's answer is on its way
        const error = document.getElementById("preview-error");
        const eligibility = document.getElementById("preview-eligibility");
        if (answer.error) {
          error.textContent = answer.error.message;
          error.hidden = false;
          eligibility.hidden = true;
          return;
        }
        error.hidden = true;
        error.textContent = "";
        const which = document.getElementById("preview-which");
        const picker = document.getElementById("preview-step-row");
        if (which) {  // a journey: say which step (and variant) this is
          which.textContent = picker && !picker.hidden
            ? "Step " + answer.step + (answer.variant ? ", variant " + answer.variant : "") : "";
        }
        document.getElementById("preview-subject").textContent = answer.subject;
        document.getElementById("preview-body").textContent = answer.body;
        const frame = document.getElementById("preview-html");
        if (frame) {  // the HTML email, in a sandboxed frame: no scripts, no navigation, no cookies
          if (answer.html) {
            if (frame.srcdoc !== answer.html) frame.srcdoc = answer.html;
            frame.hidden = false;
          } else {
            frame.hidden = true;
            frame.removeAttribute("srcdoc");
          }
        }
        if (answer.eligibility) {
          eligibility.textContent = answer.eligibility.text;
          eligibility.classList.toggle("eligible", answer.eligibility.eligible === true);
          eligibility.classList.toggle("not-eligible", answer.eligibility.eligible === false);
          eligibility.hidden = false;
        } else {
          eligibility.hidden = true;
        }
      })
      .catch(function () { /* offline or logged out: keep the last preview */ });
  }

  function schedulePreview() {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(renderPreview, 300);
  }

  let estimateTimer = null;
  let estimateSequence = 0;

  function countAudience() {
    const box = document.getElementById("campaign-estimate");
    if (!box || !document.querySelector("#campaign_form")) return;
    const output = document.getElementById("audience-estimate");
    const mine = ++estimateSequence;
    fetch(box.dataset.audienceUrl, {method: "POST", body: formData(box), credentials: "same-origin"})
      .then(function (response) { return response.json(); })
      .then(function (answer) {
        if (mine !== estimateSequence) return;
        output.classList.toggle("estimate-error", Boolean(answer.error));
        output.textContent = answer.error ? "No estimate until the form is fixed: " + answer.error.message : answer.text;
      })
      .catch(function () { /* keep the last estimate */ });
  }

  function scheduleCount() {
    clearTimeout(estimateTimer);
    estimateTimer = setTimeout(countAudience, 500);
  }

  // Fields that change who enters (the rest, subject and body, only change the preview).
  function changesAudience(target) {
    const name = target.name || "";
    return name === "trigger" || name === "channel" || name === "holdout_percent" ||
      name.indexOf("param__") === 0 || name.indexOf("audience_") === 0;
  }

  document.addEventListener("DOMContentLoaded", function () {
    showTriggerParams();
    const select = document.getElementById("id_trigger");
    if (select) select.addEventListener("change", function () { showTriggerParams(); schedulePreview(); });
    const form = document.querySelector("#campaign_form");
    if (form) {
      form.addEventListener("input", function (event) {
        schedulePreview();
        if (changesAudience(event.target)) scheduleCount();
      });
      form.addEventListener("change", function (event) {
        if (changesAudience(event.target)) scheduleCount();
      });
      form.addEventListener("journey:changed", schedulePreview);  // journey.js: a step or the picker changed
    }
    const customer = document.getElementById("preview-customer");
    if (customer) customer.addEventListener("input", carryPreviewCustomer);
    carryPreviewCustomer();
    renderPreview();
    countAudience();
  });
})();
