// TokenGuard dashboard behaviour. Kept in a static file so the Content-Security-Policy can forbid
// inline scripts and eval. Every feature here is an enhancement: pages work without it.
(function () {
  "use strict";

  // Copy buttons: <button data-copy-target="ID"> copies the text of element ID.
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest("[data-copy-target]");
    if (!btn) return;
    var el = document.getElementById(btn.getAttribute("data-copy-target"));
    if (!el) return;
    var text = el.value !== undefined && el.tagName === "INPUT" ? el.value : el.textContent;
    var done = function () {
      var old = btn.textContent;
      btn.textContent = "Copied";
      btn.classList.add("copied");
      setTimeout(function () { btn.textContent = old; btn.classList.remove("copied"); }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { selectText(el); });
    } else {
      selectText(el);
      try { document.execCommand("copy"); done(); } catch (e) { /* selected for manual copy */ }
    }
  });

  function selectText(el) {
    if (el.select) { el.select(); return; }
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  // Full-page forms with data-confirm ask before submitting (HTMX requests use hx-confirm).
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var msg = form.getAttribute && form.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) ev.preventDefault();
  }, true);

  // Typed-name confirmation: the submit button of a form with data-confirm-name stays disabled
  // until the exact name is typed. The server checks it again.
  document.addEventListener("input", function (ev) {
    var form = ev.target.form;
    if (!form || !form.hasAttribute("data-confirm-name")) return;
    var want = form.getAttribute("data-confirm-name");
    var btn = form.querySelector("button[type=submit]");
    if (btn) btn.disabled = ev.target.value !== want;
  });

  // Phone menu: the nav folds behind the menu button (CSS does so only under the "js" class, so
  // without script the nav stays open). Escape closes the menu and any open <details> menu
  // (the workspace switcher), returning focus to what opened it; a click outside closes them.
  document.documentElement.classList.add("js");
  function setMenu(open) {
    var btn = document.querySelector("[data-menu-toggle]");
    if (!btn) return;
    btn.setAttribute("aria-expanded", open ? "true" : "false");
    btn.closest(".topbar").classList.toggle("menu-open", open);
  }
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest("[data-menu-toggle]");
    if (btn) {
      setMenu(btn.getAttribute("aria-expanded") !== "true");
      return;
    }
    if (!ev.target.closest(".topbar nav")) setMenu(false);
    document.querySelectorAll("details[open]").forEach(function (d) {
      if (d.classList.contains("switcher") && !d.contains(ev.target)) d.open = false;
    });
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key !== "Escape") return;
    var btn = document.querySelector("[data-menu-toggle][aria-expanded=true]");
    if (btn) {
      setMenu(false);
      btn.focus();
    }
    document.querySelectorAll("details.switcher[open]").forEach(function (d) {
      d.open = false;
      d.querySelector("summary").focus();
    });
  });

  // Every table in a page becomes card rows on a phone (CSS, table.cards). Tables not written as
  // cards get their column headers as the cells' labels, so each value shows what it is; tables
  // written as cards keep their own. Run on load and on every HTMX swap.
  function cardTables(root) {
    root.querySelectorAll("table:not(.cards)").forEach(function (table) {
      var heads = table.tHead ? [].map.call(table.tHead.rows[0].cells, function (th) { return th.textContent.trim(); }) : [];
      [].forEach.call(table.tBodies, function (body) {
        [].forEach.call(body.rows, function (tr) {
          var col = 0;
          [].forEach.call(tr.cells, function (td) {
            if (!td.hasAttribute("data-label") && heads[col] && td.colSpan === 1) td.setAttribute("data-label", heads[col]);
            col += td.colSpan;
          });
        });
      });
      table.classList.add("cards");
    });
  }
  cardTables(document);
  document.addEventListener("htmx:afterSettle", function (ev) { cardTables(ev.target); });

  // The usage filters submit on change for quick exploration (the Apply button still works).
  document.addEventListener("change", function (ev) {
    var form = ev.target.form;
    if (form && form.hasAttribute("data-autosubmit") && window.htmx) {
      window.htmx.trigger(form, "submit");
    }
  });
})();
