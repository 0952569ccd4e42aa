// sluice console: the one script. It only keeps a page of a running sync up to date: every
// `data-refresh` seconds it fetches the page again and swaps in its <main>, unless the person
// is typing in a field of it (a search would lose its text). Without script, <noscript>'s meta
// refresh does the same by reloading. No other behaviour depends on script.
(function () {
  "use strict";
  function schedule() {
    var main = document.querySelector("main[data-refresh]");
    if (!main) return;
    var seconds = parseFloat(main.getAttribute("data-refresh")) || 2;
    setTimeout(refresh, seconds * 1000);
  }
  function refresh() {
    var active = document.activeElement;
    if (active && active.matches("main input, main textarea, main select")) { schedule(); return; }
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.redirected || !r.ok) { window.location.reload(); return null; }
        return r.text();
      })
      .then(function (html) {
        if (html === null) return;
        var next = new DOMParser().parseFromString(html, "text/html").querySelector("main");
        var main = document.querySelector("main");
        if (!next || !main) return;
        main.innerHTML = next.innerHTML;
        if (next.hasAttribute("data-refresh")) {
          main.setAttribute("data-refresh", next.getAttribute("data-refresh"));
        } else {
          main.removeAttribute("data-refresh");
        }
        schedule();
      })
      .catch(function () { schedule(); });
  }
  document.addEventListener("DOMContentLoaded", schedule);
})();
