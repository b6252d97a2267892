// The console's only script, loaded as a file so the Content-Security-Policy can forbid
// inline scripts. It copies values to the clipboard, and keeps a shown secret out of the
// browser's back/forward cache.
"use strict";

(function () {
  function copy(button) {
    var target = document.getElementById(button.dataset.copy);
    if (!target) {
      return;
    }
    var text = target.textContent;
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      window.setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done);
      return;
    }
    var range = document.createRange();
    range.selectNodeContents(target);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    if (document.execCommand("copy")) {
      done();
    }
    selection.removeAllRanges();
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (button) {
      copy(button);
    }
  });

  // Leaving the page that shows a secret removes the secret from it, so a page restored
  // from the back/forward cache has nothing to show; such a restore then moves on to the
  // credential's page.
  window.addEventListener("pagehide", function () {
    document.querySelectorAll("[data-secret]").forEach(function (node) { node.remove(); });
  });
  window.addEventListener("pageshow", function (event) {
    var page = document.querySelector("[data-secret-page]");
    if (page && event.persisted) {
      window.location.replace(page.dataset.after);
    }
  });
})();
