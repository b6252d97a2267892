// The console's only script, loaded as a file so the Content-Security-Policy can forbid
// inline scripts. It copies values to the clipboard, and keeps a shown secret out of the
// browser's back/forward cache.
"use strict";

(function () {
  // Screen readers hear what a button did through one polite live region (base_site.html).
  function announce(text) {
    var region = document.getElementById("console-announcer");
    if (!region) {
      return;
    }
    region.textContent = "";
    window.setTimeout(function () { region.textContent = text; }, 50);
  }

  function copy(button) {
    var target = document.getElementById(button.dataset.copy);
    if (!target) {
      return;
    }
    var text = target.textContent;
    var done = function () {
      var label = button.dataset.label || button.textContent;
      button.dataset.label = label;
      button.textContent = "Copied";
      announce("Copied");
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

  // On a phone the list's filters come first (console.css); start them closed, except those
  // in use, so the rows are one scroll away.
  document.addEventListener("DOMContentLoaded", function () {
    if (!window.matchMedia("(max-width: 767px)").matches) {
      return;
    }
    document.querySelectorAll("#changelist-filter details[open]").forEach(function (details) {
      var inUse = details.querySelector("li.selected:not(:first-child), [selected], input[value]:not([type=hidden]):not([value=''])");
      if (!inUse) {
        details.removeAttribute("open");
      }
    });
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (button) {
      copy(button);
    }
  });

  // A form that creates a secret is sent once: a double click would otherwise send it twice,
  // the browser would show the answer to the second (refused) submission, and the secret in
  // the answer to the first would be lost. The server refuses a second submission anyway.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches("form[data-submit-once]")) {
      return;
    }
    if (form.dataset.submitted) {
      event.preventDefault();
      return;
    }
    form.dataset.submitted = "1";
  });

  // Leaving the page that shows a secret removes the secret from it, so a page restored
  // from the back/forward cache has nothing to show; such a restore then moves on to the
  // credential's page.
  window.addEventListener("pagehide", function () {
    document.querySelectorAll("[data-secret]").forEach(function (node) { node.remove(); });
  });
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) {
      return;
    }
    var page = document.querySelector("[data-secret-page]");
    if (page) {
      window.location.replace(page.dataset.after);
    }
    document.querySelectorAll("form[data-submitted]").forEach(function (form) {
      delete form.dataset.submitted;
    });
  });
})();
