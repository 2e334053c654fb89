// The campaign editor: show only the chosen trigger's parameters, and render a live preview of
// the (unsaved) templates for a chosen customer through the admin's preview endpoint.
"use strict";
(function () {
  function showTriggerParams() {
    const select = document.getElementById("id_trigger");
    if (!select) return;
    document.querySelectorAll("fieldset.trigger-params").forEach(function (fieldset) {
      fieldset.hidden = !fieldset.classList.contains("trigger-params-" + select.value);
    });
  }

  let timer = null;
  let sequence = 0;

  function renderPreview() {
    const box = document.getElementById("campaign-preview");
    const form = document.querySelector("#campaign_form");
    if (!box || !form) return;
    const data = new FormData(form);
    const customer = document.getElementById("preview-customer");
    data.set("preview_customer", customer ? customer.value : "");
    const hidden = document.getElementById("send-test-customer");
    if (hidden && customer) hidden.value = customer.value;
    const mine = ++sequence;
    fetch(box.dataset.previewUrl, {method: "POST", body: data, credentials: "same-origin"})
      .then(function (response) { return response.json(); })
      .then(function (answer) {
        if (mine !== sequence) return; // a newer keystroke's answer is on its way
        const error = document.getElementById("preview-error");
        if (answer.error) {
          error.hidden = false;
          error.textContent = answer.error.message;
          return;
        }
        error.hidden = true;
        document.getElementById("preview-subject").textContent = answer.subject;
        document.getElementById("preview-body").textContent = answer.body;
      })
      .catch(function () { /* offline or logged out: keep the last preview */ });
  }

  function schedulePreview() {
    clearTimeout(timer);
    timer = setTimeout(renderPreview, 300);
  }

  document.addEventListener("DOMContentLoaded", function () {
    showTriggerParams();
    const select = document.getElementById("id_trigger");
    if (select) select.addEventListener("change", function () { showTriggerParams(); schedulePreview(); });
    const form = document.querySelector("#campaign_form");
    if (form) form.addEventListener("input", schedulePreview);
    const customer = document.getElementById("preview-customer");
    if (customer) customer.addEventListener("input", schedulePreview);
    renderPreview();
  });
})();
