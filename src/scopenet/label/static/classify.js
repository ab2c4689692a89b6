// Keyboard shortcuts of the classify page: 1-9 toggle (or choose) a category, Enter submits,
// S skips. Keys typed into text fields are left alone.
(function () {
  "use strict";
  var form = document.getElementById("classify-form");
  if (!form) { return; }
  var boxes = Array.prototype.slice.call(form.querySelectorAll("input[name=categories]"));
  var sent = false;
  function send(action) {
    if (sent) { return; }
    sent = true;
    var button = document.getElementById(action === "skip" ? "skip" : "submit");
    if (form.requestSubmit) { form.requestSubmit(button); } else { button.click(); }
  }
  form.addEventListener("submit", function () { sent = true; });
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    var t = ev.target;
    if (t && (t.tagName === "TEXTAREA" || (t.tagName === "INPUT" && t.type === "text"))) { return; }
    if (/^[1-9]$/.test(ev.key)) {
      var box = boxes[parseInt(ev.key, 10) - 1];
      if (box) {
        box.checked = box.type === "radio" ? true : !box.checked;
        ev.preventDefault();
      }
    } else if (ev.key === "Enter") {
      ev.preventDefault();
      send("submit");
    } else if (ev.key === "s" || ev.key === "S") {
      ev.preventDefault();
      send("skip");
    }
  });
})();
